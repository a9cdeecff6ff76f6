"""Symbolic dimensions.

A dim is either a plain ``int`` or a :class:`SymDim`, a polynomial with integer
coefficients over named symbols and opaque atoms (floor division, min, max).
The polynomial is kept in canonical form so that two dims that are the same size
compare equal structurally: ``(N * 784) // 784 == N``, ``N + N == 2 * N``.
Compiled code is generic over the symbols; their values are bound at call time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

Dim = Union[int, "SymDim"]


@dataclass(frozen=True)
class Opaque:
    """A dim atom that is not a polynomial: ``kind`` is floordiv, mod, min or max."""

    kind: str
    args: tuple

    def evaluate(self, env: Mapping[str, int]) -> int:
        vals = [evaluate(a, env) for a in self.args]
        if self.kind == "floordiv":
            return vals[0] // vals[1]
        if self.kind == "mod":
            return vals[0] % vals[1]
        if self.kind == "min":
            return min(vals)
        if self.kind == "max":
            return max(vals)
        raise ValueError(f"unknown dim atom {self.kind}")

    def __str__(self) -> str:
        a = [str(x) for x in self.args]
        if self.kind in ("floordiv", "mod"):  # (N + 1) // 2, not N + 1 // 2
            a = [f"({s})" if isinstance(x, SymDim) and len(x.terms) > 1 else s
                 for x, s in zip(self.args, a)]
        if self.kind == "floordiv":
            return f"({a[0]} // {a[1]})"
        if self.kind == "mod":
            return f"({a[0]} % {a[1]})"
        return f"{self.kind}({', '.join(a)})"


def _atom_key(atom) -> str:
    return atom if isinstance(atom, str) else str(atom)


@dataclass(frozen=True, eq=True)
class SymDim:
    """A canonical polynomial: ``terms`` maps sorted monomials (tuples of atoms) to coefficients."""

    terms: tuple  # tuple[(tuple[atom, ...], int)], sorted, no zero coefficients

    # -- construction -------------------------------------------------------------
    @staticmethod
    def symbol(name: str) -> "SymDim":
        return SymDim((((name,), 1),))

    @staticmethod
    def _from_dict(d: dict) -> Dim:
        items = tuple(sorted(((m, c) for m, c in d.items() if c != 0),
                             key=lambda mc: tuple(_atom_key(a) for a in mc[0])))
        if not items:
            return 0
        if len(items) == 1 and items[0][0] == ():
            return items[0][1]
        return SymDim(items)

    def _dict(self) -> dict:
        return dict(self.terms)

    # -- arithmetic -----------------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    __rmul__ = __mul__

    def __floordiv__(self, other):
        return floordiv(self, other)

    def __rfloordiv__(self, other):
        return floordiv(other, self)

    def __neg__(self):
        return mul(self, -1)

    def __index__(self):
        raise TypeError(f"symbolic dim {self} has no value until the function is called")

    def __bool__(self):
        raise TypeError(f"symbolic dim {self} has no truth value until the function is called")

    def __str__(self) -> str:
        parts = []
        for mono, coeff in self.terms:
            factors = [str(a) for a in mono]
            if coeff != 1 or not factors:
                factors.insert(0, str(coeff))
            parts.append("*".join(factors))
        return " + ".join(parts).replace("+ -", "- ")

    __repr__ = __str__

    @property
    def symbols(self) -> frozenset:
        return symbols(self)


def _poly(d: Dim) -> dict:
    if isinstance(d, SymDim):
        return d._dict()
    if isinstance(d, bool) or not isinstance(d, int):
        try:
            d = int(d.__index__())
        except AttributeError:
            raise TypeError(f"a dim must be an int or a symbolic dim, got {d!r}") from None
    return {(): d}


def add(a: Dim, b: Dim) -> Dim:
    if type(a) is int and type(b) is int:
        return a + b
    d = _poly(a)
    for m, c in _poly(b).items():
        d[m] = d.get(m, 0) + c
    return SymDim._from_dict(d)


def sub(a: Dim, b: Dim) -> Dim:
    return add(a, mul(b, -1))


def mul(a: Dim, b: Dim) -> Dim:
    if type(a) is int and type(b) is int:
        return a * b
    out: dict = {}
    for ma, ca in _poly(a).items():
        for mb, cb in _poly(b).items():
            m = tuple(sorted(ma + mb, key=_atom_key))
            out[m] = out.get(m, 0) + ca * cb
    return SymDim._from_dict(out)


def _divide_exact(num: dict, den: dict):
    """num / den when den is a single monomial dividing every term; else None."""
    if len(den) != 1:
        return None
    (dm, dc), = den.items()
    out = {}
    for m, c in num.items():
        if c % dc:
            return None
        rest = list(m)
        for atom in dm:
            if atom not in rest:
                return None
            rest.remove(atom)
        out[tuple(rest)] = c // dc
    return out


def floordiv(a: Dim, b: Dim) -> Dim:
    if type(a) is int and type(b) is int:
        return a // b
    if b == 1:
        return a
    exact = _divide_exact(_poly(a), _poly(b))
    if exact is not None:
        return SymDim._from_dict(exact)
    return SymDim._from_dict({(Opaque("floordiv", (a, b)),): 1})


def mod(a: Dim, b: Dim) -> Dim:
    if type(a) is int and type(b) is int:
        return a % b
    if _divide_exact(_poly(a), _poly(b)) is not None:
        return 0
    return SymDim._from_dict({(Opaque("mod", (a, b)),): 1})


def ceildiv(a: Dim, b: Dim) -> Dim:
    return mul(floordiv(mul(a, -1), b), -1) if not (type(a) is int and type(b) is int) else -(-a // b)


def _minmax(kind: str, a: Dim, b: Dim) -> Dim:
    if type(a) is int and type(b) is int:
        return min(a, b) if kind == "min" else max(a, b)
    if a == b:
        return a
    diff = sub(a, b)
    if type(diff) is int:  # the two differ by a constant: the order is known
        return (b if diff > 0 else a) if kind == "min" else (a if diff > 0 else b)
    args = tuple(sorted((a, b), key=str))
    return SymDim._from_dict({(Opaque(kind, args),): 1})


def dmin(a: Dim, b: Dim) -> Dim:
    return _minmax("min", a, b)


def dmax(a: Dim, b: Dim) -> Dim:
    return _minmax("max", a, b)


def evaluate(d: Dim, env: Mapping[str, int]) -> int:
    """The value of ``d`` once every symbol is bound in ``env``."""
    if type(d) is int:
        return d
    total = 0
    for mono, coeff in d.terms:
        v = coeff
        for atom in mono:
            v *= env[atom] if isinstance(atom, str) else atom.evaluate(env)
        total += v
    return total


def symbols(d: Dim) -> frozenset:
    if type(d) is int:
        return frozenset()
    out = set()
    for mono, _ in d.terms:
        for atom in mono:
            if isinstance(atom, str):
                out.add(atom)
            else:
                for a in atom.args:
                    out |= symbols(a)
    return frozenset(out)


def is_static(d: Dim) -> bool:
    return type(d) is int


def as_symbol(d: Dim):
    """The symbol's name when ``d`` is a bare symbol, else None."""
    if isinstance(d, SymDim) and len(d.terms) == 1:
        (mono, coeff), = d.terms
        if coeff == 1 and len(mono) == 1 and isinstance(mono[0], str):
            return mono[0]
    return None


def normalize(d) -> Dim:
    """Accept ints, numpy ints and SymDims as dims; reject anything else clearly."""
    if isinstance(d, SymDim):
        return d
    if isinstance(d, bool):
        raise TypeError(f"a dim must be an int or a symbolic dim, got {d!r}")
    try:
        return int(d.__index__())
    except AttributeError:
        raise TypeError(f"a dim must be an int or a symbolic dim, got {d!r}") from None


def fmt(d: Dim) -> str:
    return str(d)


def product(dims) -> Dim:
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


def to_data(d):
    """A JSON-able form of a dim (for artifact manifests)."""
    if type(d) is int:
        return d
    return {"terms": [[[_atom_to_data(a) for a in mono], c] for mono, c in d.terms]}


def _atom_to_data(atom):
    if isinstance(atom, str):
        return atom
    return {"kind": atom.kind, "args": [to_data(x) for x in atom.args]}


def from_data(x) -> Dim:
    if isinstance(x, int):
        return x
    terms = tuple((tuple(_atom_from_data(a) for a in mono), int(c)) for mono, c in x["terms"])
    return SymDim(terms)


def _atom_from_data(a):
    if isinstance(a, str):
        return a
    return Opaque(a["kind"], tuple(from_data(v) for v in a["args"]))
