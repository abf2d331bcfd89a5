"""Writes the marshal seeds (mode 2) of the conversion fuzzer into fuzz/corpus/ (docs/fuzzing.md):
    python3 fuzz/gen_marshal_seeds.py
The other seeds come from fuzz/gen_seeds.escript. Any Python 3 writes loadable data (marshal
format 4 and later are read by 3.13)."""
import hashlib
import marshal
import os

recursive = []
recursive.append(recursive)
values = [
    None, True, False, 0, -1, 2 ** 31, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -2 ** 63 - 1, 2 ** 100, -7 ** 200,
    0.0, -0.0, 1.5, 1e308, float("nan"), float("inf"), -float("inf"), 1 + 2j,
    "", "text", "h\u00e9llo", "\U0001f600", "a\udc80b", "\ud800",
    b"", b"bytes", b"\xff\xfe", bytearray(b"ba"),
    (), (1,), (1, (2, (3,))), [], [1, [2, [3, []]]], [None, True, 1.5, "s", b"b"],
    {}, {"a": 1}, {"a": 1, b"a": 2}, {1: "int", 2.5: "float", (1, 2): "tuple", None: "none"},
    {"k%d" % i: i for i in range(40)},
    dict([("s%d" % i, i) for i in range(20)] + [(("b%d" % i).encode(), i) for i in range(20)]),
    {i: [i] for i in range(130)},
    set(), {1, 2}, frozenset({"a"}), Ellipsis, StopIteration,
    recursive, [recursive, recursive], {"self": recursive},
    [[[[[[[[[[1]]]]]]]]]],
]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(out, exist_ok=True)
for v in values:
    data = b"\x02" + marshal.dumps(v)
    name = "mode2-" + hashlib.sha1(data).hexdigest()[:12]
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(len(values), "seeds in", out)
