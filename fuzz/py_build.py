"""Python objects for mode 4 of the conversion fuzzer (fuzz/py_fuzz_nif.cpp, docs/fuzzing.md).

build(data) reads data as a little program and returns the object it describes, for to_erlang.
Besides plain values it makes what marshal cannot: subclasses of int, str, float, list, tuple and
dict, bytearray, cycles and shared objects, deep nesting, str with lone surrogates, opaque
objects, erlang.Pid and erlang.Term objects, and ints whose hooks run code while to_erlang
converts them. to_erlang calls `obj < 0`, `abs(obj)`, `.bit_length()` and `.to_bytes()` on an int
too big for 64 bits; a Hostile int's hooks mutate the containers being built around it or return
odd values from abs().
"""
import collections
import enum
import struct

SAMPLES = []  # the harness appends the sample terms converted to Python (Pid, Term, ...)
KNOWN = ""    # the harness sets it to $PY_FUZZ_KNOWN: known findings not to make again
OPAQUE = [object(), frozenset({1, "a"}), set(), complex(1, -2), range(3), Ellipsis, NotImplemented,
          type, len, memoryview(b"ab"), {1, 2}.__iter__()]  # the harness makes references to these


class MyInt(int):
    pass


class MyStr(str):
    pass


class MyFloat(float):
    pass


class MyList(list):
    pass


class MyTuple(tuple):
    pass


class MyDict(dict):
    pass


class Color(enum.IntEnum):
    RED = 1
    HUGE = 2 ** 70


Point = collections.namedtuple("Point", "x y")


class Liar(int):
    """An int whose bit_length() and to_bytes() say what the input chose."""

    def bit_length(self):
        return self.bits

    def to_bytes(self, *args, **kwargs):
        return self.digits


class Hostile(int):
    """A big int whose `<` and abs() first run an effect chosen by the input."""

    def __lt__(self, other):
        self.effect()
        return int.__lt__(self, other)

    def __abs__(self):
        self.effect()
        return self.absolute


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def done(self):
        return self.pos >= len(self.data)

    def byte(self):
        if self.pos < len(self.data):
            self.pos += 1
            return self.data[self.pos - 1]
        return 0

    def take(self, n):
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk

    def signed(self, n):
        return int.from_bytes(self.take(n), "little", signed=True)


BUDGET = 50000  # nodes that sharing may add to an input's objects, seen as trees


def tree_size(obj, cap):
    """The number of nodes of obj as a tree (what to_erlang walks), counted up to cap."""
    todo, count = [obj], 0
    while todo and count <= cap:
        o = todo.pop()
        count += 1
        if isinstance(o, (list, tuple, set, frozenset)):
            todo.extend(o)
        elif isinstance(o, dict):
            todo.extend(o.keys())
            todo.extend(o.values())
    return count


class Builder:
    def __init__(self, data):
        self.r = Reader(data)
        self.made = []   # every object so far, for sharing
        self.open = []   # the lists being filled, innermost last (targets of hostile effects)
        self.shared = 0  # nodes added by sharing (kind 16), up to BUDGET
        self.deep_done = False  # only the first deep nesting of an input is deep

    def effect(self):
        """A callable run by a Hostile hook: mutates a list being built, or raises."""
        r = self.r
        kind = r.byte() % 8
        target = self.open[r.byte() % len(self.open)] if self.open else []
        count = r.byte()
        if "hook-mutates-list" in KNOWN.split(",") and kind != 5:
            kind = 0  # known finding: to_erlang reads a list that a hook has changed
        if kind == 0:
            return lambda: None
        if kind == 1:
            return target.clear
        if kind == 2:
            return lambda: target.extend([None] * (count * 64))
        if kind == 3:
            def drop_first():
                if target:
                    del target[0]
            return drop_first
        if kind == 4:
            def replace_all():
                target[:] = [count] * (count % 4)
            return replace_all
        if kind == 5:
            def fail():
                raise ValueError("hostile")
            return fail
        if kind == 6:
            return lambda: target.insert(0, "x" * count)
        return lambda: target.reverse()

    def hostile(self, depth):
        r = self.r
        value = Hostile((1 << (64 + r.byte())) * (-1 if r.byte() & 1 else 1) + r.byte())
        value.effect = self.effect()
        kind = r.byte() % 7
        if "bignum-trusts-abs" in KNOWN.split(",") and kind in (1, 2, 3, 5, 6):
            kind = 0  # known finding: to_erlang trusts what abs() returns
        if kind == 0:
            value.absolute = int.__abs__(value)
        elif kind == 1:
            liar = Liar(int.__abs__(value))
            liar.bits = r.signed(8) if r.byte() & 1 else int.__abs__(value).bit_length() + r.signed(1)
            digits = r.take(r.byte() % 24)
            liar.digits = [digits, bytearray(digits), digits.decode("latin-1"), None, len(digits)][r.byte() % 5]
            value.absolute = liar
        elif kind == 2:
            value.absolute = float(r.signed(2))
        elif kind == 3:
            value.absolute = "not a number"
        elif kind == 4:
            value.absolute = value
        elif kind == 5:
            value.absolute = MyInt(r.signed(16))
        else:
            value.absolute = self.build(depth + 1)
        return value

    def text(self, n):
        raw = self.r.take(n)
        how = self.r.byte() % 4
        if how == 0:
            return raw.decode("utf-8", "surrogateescape")  # invalid bytes become lone surrogates
        if how == 1:  # encoded surrogates stay surrogates
            try:
                return raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return raw.decode("utf-8", "replace")
        if how == 2:
            return raw.decode("latin-1")
        return "".join(chr(b * 257 % 0x110000) for b in raw)

    def key(self, depth):
        k = self.build(depth + 1)
        try:
            hash(k)
            return k
        except TypeError:
            return repr(type(k))

    def build(self, depth=0):
        r = self.r
        if r.done() or depth > 300:
            return None
        op = r.byte()
        kind = op % 24
        n = r.byte() % 32 if kind in (9, 10, 11, 12, 19) else 0
        if kind == 0:
            obj = [None, True, False, Ellipsis][op // 24 % 4]
        elif kind == 1:
            obj = r.signed(1)
        elif kind == 2:
            obj = r.signed(r.byte() % 48)
        elif kind == 3:
            obj = struct.unpack("<d", r.take(8).ljust(8, b"\0"))[0]  # nan and inf too
        elif kind == 4:
            obj = self.text(r.byte())
        elif kind == 5:
            obj = r.take(r.byte())
        elif kind == 6:
            obj = bytearray(r.take(r.byte()))
        elif kind == 7:
            obj = [MyInt(r.signed(9)), MyStr(self.text(r.byte() % 16)), MyFloat(r.signed(2) / 7),
                   Color.RED, Color.HUGE, True][op // 24 % 6]
        elif kind == 8:
            obj = self.hostile(depth)
        elif kind in (9, 19):
            obj = MyList() if kind == 19 else []
            self.open.append(obj)
            for _ in range(n):
                obj.append(self.build(depth + 1))
            self.open.pop()
        elif kind == 10:
            obj = tuple(self.build(depth + 1) for _ in range(n))
            if op // 24 % 3 == 1:
                obj = MyTuple(obj)
            elif op // 24 % 3 == 2:
                obj = Point(*(obj + (None, None))[:2])
        elif kind == 11:
            obj = [dict, MyDict, collections.OrderedDict][op // 24 % 3]()
            for _ in range(n):
                k = self.key(depth)
                obj[k] = self.build(depth + 1)
        elif kind == 12:
            items = [self.key(depth) for _ in range(n)]
            obj = frozenset(items) if op & 1 else set(items)
        elif kind == 13:
            obj = OPAQUE[r.byte() % len(OPAQUE)]
        elif kind == 14:
            obj = SAMPLES[r.byte() % len(SAMPLES)] if SAMPLES else None
        elif kind == 15:  # a container that holds itself
            obj = [None]
            obj[0] = obj
            if op // 24 % 2:
                obj = {"self": obj}
        elif kind == 16:  # an object made before (shared), within the budget
            obj = self.made[r.byte() % len(self.made)] if self.made else None
            size = tree_size(obj, BUDGET - self.shared)
            if self.shared + size > BUDGET:
                obj = None
            else:
                self.shared += size
        elif kind == 17:  # nesting: up to 255 levels, or around the conversion's limit of 10000
            deep = op // 72 and not self.deep_done
            self.deep_done = self.deep_done or deep
            levels = 9990 + r.byte() if deep else r.byte()
            obj = self.build(depth + 1)
            wrap = op // 24 % 3
            for _ in range(levels):
                obj = [obj] if wrap == 0 else (obj,) if wrap == 1 else {"k": obj}
        elif kind == 18:  # a list that a later hostile int may target
            obj = []
            self.open.append(obj)
            obj.append(self.hostile(depth))
            obj.extend(self.build(depth + 1) for _ in range(r.byte() % 8))
            self.open.pop()
        elif kind == 20:  # a small list appended to itself (to_erlang goes round the cycle until
            # its depth limit, converting the rest of the list at every turn: a big one costs
            # seconds, which would slow the fuzzer down, not find more)
            if self.open and tree_size(self.open[-1], 8) <= 4:
                self.open[-1].append(self.open[-1])
            obj = None
        elif kind == 21:
            obj = r.signed(8) / (r.signed(1) or 1)
        elif kind == 22:
            obj = 1 << (r.byte() * 64 + r.byte())  # up to 2**16383
        else:
            obj = -(1 << 63) - r.byte() if op & 1 else (1 << 64) - r.byte()
        self.made.append(obj)
        return obj


def build(data):
    return Builder(data).build()
