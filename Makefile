# erlang_python: set-up, build, test, demo, bench.
#   make demo    install what is missing (apt-get), build, run examples/basic_example
#   make example NAME=x   build, run examples/x;   make examples   build, run every example
#   make test    install what is missing, build, run every Common Test suite
#   make bench   build and run the benchmark harness (figures for docs/performance.md)
#   make elixir-smoke   build, then run test/elixir/smoke.exs with Debian's elixir
#   make fuzz    build the conversion fuzzer (clang, libFuzzer, ASan + UBSan) and run it for
#                FUZZ_SECONDS (60); non-zero on a finding (docs/fuzzing.md)
#   make docs    the API reference as HTML in doc/ (EDoc)
#   make check   static checks: xref, dialyzer, edoc, a -spec on every export, clang-format and
#                clang-tidy over the C++ (scripts/check.sh); non-zero on any finding
# Python: PYTHON_CONFIG=/path/to/python3.X-config picks one; otherwise see c_src/select_python.sh.

SHELL := /bin/bash
REBAR ?= rebar3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Compiler warnings are errors in this repository's builds (c_src/build.sh), not in a user's.
export PY_WERROR ?= ON
# An Erlang already on PATH that Debian did not install (kerl, asdf, a source build) is used as
# it is: then Debian's Erlang packages, and those that depend on them, are not installed.
HAVE_OWN_ERL := $(shell command -v erl >/dev/null 2>&1 && ! dpkg -S "$$(readlink -f "$$(command -v erl)")" >/dev/null 2>&1 && echo yes)
ERLANG_PKGS := erlang-nox erlang-dev erlang-common-test erlang-dialyzer erlang-proper erlang-proper-dev \
               erlang-eunit erlang-tools erlang-edoc rebar3 elixir
PKGS := $(if $(HAVE_OWN_ERL),,$(ERLANG_PKGS)) cmake g++ make python3-dev
CT_OPTS ?=
# What c_src/build.sh writes to priv/; removed around the builds of other configurations.
NIF_OUTPUTS := priv/py_nif.so priv/py_boot.so priv/py_child priv/python_build.txt

.PHONY: docs all deps build test test-py311 test-asan demo example examples elixir-smoke bench fuzz check clean

all: build

deps:
	@missing=$$(for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(REBAR) compile

test: build
	$(REBAR) ct $(CT_OPTS)

# The same suites against Debian's Python 3.11 (OWN_GIL cases skip there), in a separate
# build directory so the default build is left alone.
test-py311: deps
	rm -f $(NIF_OUTPUTS)
	PYTHON_CONFIG=/usr/bin/python3-config CMAKE_BUILD_DIR=_build/cmake-py311 $(REBAR) ct $(CT_OPTS); \
	  rc=$$?; rm -f $(NIF_OUTPUTS); exit $$rc

# Every suite against a NIF built with ASan + UBSan, the runtimes preloaded into the BEAM.
# PYTHONMALLOC=malloc lets ASan see Python's allocations; leak checking is off (CPython keeps
# its arenas and interned strings for the life of the process). allocator_may_return_null: an
# impossible size (bytes.center(2**62) in py_hardening_SUITE) gets NULL and a MemoryError, as
# with the C library's malloc, instead of ASan's abort.
ASAN_ENV = CMAKE_BUILD_DIR=_build/cmake-asan CMAKE_BUILD_TYPE=Debug CMAKE_EXTRA_ARGS=-DPY_SANITIZE=ON
test-asan: deps
	rm -f $(NIF_OUTPUTS)
	$(ASAN_ENV) sh c_src/build.sh
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so) \
	  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PYTHONMALLOC=malloc \
	  $(ASAN_ENV) $(REBAR) ct $(CT_OPTS); rc=$$?; rm -f $(NIF_OUTPUTS); exit $$rc

# The conversion fuzzer: a NIF library of its own, built with clang in _build/cmake-fuzz, run
# inside the BEAM by fuzz/run.sh (which documents FUZZ_REPLAY, FUZZ_ARGS and PY_FUZZ_KNOWN).
FUZZ_PKGS := clang-14 libclang-rt-14-dev llvm-14
FUZZ_SECONDS ?= 60
fuzz: PKGS += $(FUZZ_PKGS)
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

# Static checks (scripts/check.sh lists them; CHECK_STEPS picks some). clang-format and
# clang-tidy are Debian 12's 14 (.clang-format, .clang-tidy).
CHECK_PKGS := clang-format-14 clang-tidy-14
check: PKGS += $(CHECK_PKGS)
check: deps
	bash scripts/check.sh

demo: build
	escript examples/basic_example

# The examples are escripts run from the repository root (their -pa names the built ebin).
EXAMPLES := basic_example callbacks_example gen_server_example stream_example \
            asyncio_echo_example owngil_map_example distributed_example worker_pool_example

example: build
	@if [ -z "$(NAME)" ] || [ ! -f examples/$(NAME) ]; then \
	  echo "usage: make example NAME=x, x one of: $(EXAMPLES)"; exit 2; fi
	escript examples/$(NAME)

# Every example, one after the other; fails (after running all) if any failed.
examples: build
	@failed=""; \
	for e in $(EXAMPLES); do \
	  echo "== examples/$$e =="; t0=$$(date +%s%N); \
	  if escript examples/$$e; then rc=ok; else rc=FAILED; failed="$$failed $$e"; fi; \
	  echo "== examples/$$e: $$rc in $$(( ($$(date +%s%N) - t0) / 1000000 )) ms =="; \
	done; \
	if [ -n "$$failed" ]; then echo "examples failed:$$failed"; exit 1; fi; \
	echo "all $(words $(EXAMPLES)) examples passed"

elixir-smoke: build
	elixir test/elixir/smoke.exs _build/default/lib/erlang_python/ebin

# The harness is compiled beside the application, not into its ebin (dialyzer reads that).
bench: build
	mkdir -p _build/bench
	erlc -o _build/bench bench/py_bench.erl
	erl -noshell -pa _build/default/lib/erlang_python/ebin -pa _build/bench -eval 'py_bench:main(), halt().'

# The API reference as HTML in doc/ (the beams carry the same docs as EEP-48 chunks).
docs: build
	$(REBAR) edoc
	@echo "API reference: doc/index.html"

clean:
	$(REBAR) clean
	rm -rf _build/cmake _build/cmake-py311 _build/cmake-fuzz _build/cmake-tidy $(NIF_OUTPUTS) priv/python
