# Elixir smoke test of erlang_python: run from the repository root after `make build`,
#
#     elixir test/elixir/smoke.exs [EBIN_DIR]
#
# EBIN_DIR defaults to _build/default/lib/erlang_python/ebin (the priv/ directory beside it
# holds the NIF). Prints one line per check and "elixir smoke: N passed, N failed"; exits 1
# when a check fails. test/py_elixir_SUITE.erl runs it under Common Test.

ebin =
  case System.argv() do
    [dir | _] -> dir
    [] -> Path.expand("../../_build/default/lib/erlang_python/ebin", __DIR__)
  end

true = Code.prepend_path(ebin)
{:ok, _} = Application.ensure_all_started(:erlang_python)

defmodule Smoke do
  def check(name, fun) do
    try do
      case fun.() do
        true ->
          IO.puts("ok   #{name}")
          :ok

        other ->
          IO.puts("FAIL #{name}: #{inspect(other)}")
          :failed
      end
    rescue
      e ->
        IO.puts("FAIL #{name}: #{Exception.format(:error, e, __STACKTRACE__)}")
        :failed
    catch
      kind, reason ->
        IO.puts("FAIL #{name}: #{inspect({kind, reason})}")
        :failed
    end
  end
end

checks = [
  {"call: :py.call(:math, :sqrt, [16])", fn -> :py.call(:math, :sqrt, [16]) == {:ok, 4.0} end},
  {"call with keyword arguments (a map with atom keys)",
   fn -> :py.call(:builtins, :int, ["ff"], %{base: 16}) == {:ok, 255} end},
  {"eval with locals given as a map with atom keys",
   fn -> :py.eval("x * y", %{x: 10, y: 10}) == {:ok, 100} end},
  {"exec, then call the function it defined",
   fn ->
     :ok = :py.exec("def double(x): return x * 2")
     :py.call(:__main__, :double, [21]) == {:ok, 42}
   end},
  {"a Python exception is an error tuple (message as a charlist)",
   fn -> :py.eval("1/0") == {:error, {:ZeroDivisionError, ~c"division by zero"}} end},
  {"an unknown module is an error tuple",
   fn -> match?({:error, {:ModuleNotFoundError, _}}, :py.call(:no_such_module_xyz, :f, [])) end},
  {"callback: an Elixir fn registered with :py.register_function",
   fn ->
     :ok = :py.register_function(:ex_double, fn [x] -> x * 2 end)
     result = :py.eval("__import__('erlang').ex_double(21)")
     :ok = :py.unregister_function(:ex_double)
     result == {:ok, 42}
   end},
  {"callback: an exception in the fn reaches Python as erlang.ErlangError",
   fn ->
     :ok = :py.register_function(:ex_fail, fn [] -> raise ArgumentError, "nope" end)
     result = :py.eval("__import__('erlang').ex_fail()")
     :ok = :py.unregister_function(:ex_fail)
     match?({:error, {:ErlangError, _}}, result)
   end},
  {"String (UTF-8 binary) round trip: Elixir string -> str -> Elixir string",
   fn -> :py.call(:builtins, :str, ["héllo wörld ✓"]) == {:ok, "héllo wörld ✓"} end},
  {"String methods on the Python side",
   fn -> :py.call(:builtins, :"str.upper", ["héllo"]) == {:ok, "HÉLLO"} end},
  {"a binary that is not UTF-8 -> bytes -> the same binary",
   fn -> :py.eval("b", %{b: <<255, 0, 1>>}) == {:ok, <<255, 0, 1>>} end},
  {"a charlist is a list of integers in Python",
   fn -> :py.eval("c", %{c: ~c"abc"}) == {:ok, ~c"abc"} and :py.eval("c", %{c: ~c"abc"}) == {:ok, [97, 98, 99]} end},
  {"atoms become str; nil becomes None and comes back as :none",
   fn -> :py.eval("(a, n)", %{a: :hello, n: nil}) == {:ok, {"hello", :none}} end},
  {"maps: atom keys become str keys, which come back as binaries",
   fn -> :py.eval("d", %{d: %{name: "Alice", n: 1}}) == {:ok, %{"name" => "Alice", "n" => 1}} end},
  {"a context of one's own",
   fn ->
     {:ok, ctx} = :py_context.new(%{mode: :worker})
     result = :py.call(ctx, :operator, :add, [1, 2])
     :ok = :py_context.stop(ctx)
     result == {:ok, 3}
   end},
  {"a generator streamed into a list",
   fn -> :py.stream_eval("(x**2 for x in range(5))") == {:ok, [0, 1, 4, 9, 16]} end}
]

results = for {name, fun} <- checks, do: Smoke.check(name, fun)
failed = Enum.count(results, &(&1 == :failed))
IO.puts("elixir smoke: #{length(results) - failed} passed, #{failed} failed")
:ok = Application.stop(:erlang_python)
System.halt(if failed == 0, do: 0, else: 1)
