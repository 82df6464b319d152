"""Sizes as upper bounds in the batch size and the number of positions, for :mod:`.graph_bounds`.

A dimension is a monomial ``c * B**b * T**t``: exactly that when ``exact``, else at most that (B, T >= 1).
That is enough for the step graphs tf2onnx writes, where every size is a constant, the batch, the
positions or a product of them. :class:`Value` is what the walk knows of one tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MAX_VALUES",
    "ONE",
    "Dim",
    "Refused",
    "Value",
    "broadcast",
    "normalize_axis",
    "plus",
    "product",
    "saturated",
    "shape_text",
    "upper",
]

SATURATE = 1 << 80  # coefficients stop growing here: far over any limit, and keeps arithmetic cheap
MAX_POWER = 4  # powers of B and T stop growing here (anything over 1 is refused anyway)
MAX_VALUES = 64  # longest integer tensor whose values are followed (shape vectors are a few long)


class Refused(Exception):
    """A reason to refuse the graph, raised deep in the walk and turned into a ModelFileError once."""


@dataclass(frozen=True)
class Dim:
    """A size ``c * B**b * T**t``: exactly that when ``exact``, else at most that."""

    c: int
    b: int = 0
    t: int = 0
    exact: bool = True

    @property
    def const(self) -> bool:
        return self.b == 0 and self.t == 0

    def __mul__(self, other: Dim) -> Dim:
        return saturated(self.c * other.c, self.b + other.b, self.t + other.t, self.exact and other.exact)

    def __str__(self) -> str:
        terms = [str(self.c)] if self.c != 1 or self.const else []
        terms += [f"B^{self.b}" if self.b > 1 else "B"] * (self.b > 0)
        terms += [f"T^{self.t}" if self.t > 1 else "T"] * (self.t > 0)
        return ("" if self.exact else "<=") + "*".join(terms)


ONE = Dim(1)


def saturated(c: int, b: int, t: int, exact: bool) -> Dim:
    if abs(c) > SATURATE:
        c, exact = (SATURATE if c > 0 else -SATURATE), False
    return Dim(c, min(b, MAX_POWER), min(t, MAX_POWER), exact)


def upper(x: Dim, y: Dim) -> Dim:
    """A bound on either of two sizes (B, T >= 1)."""
    if x == y:
        return x
    return saturated(max(x.c, y.c, 0), max(x.b, y.b), max(x.t, y.t), False)


def plus(x: Dim, y: Dim) -> Dim:
    if (x.b, x.t) == (y.b, y.t):
        return saturated(x.c + y.c, x.b, x.t, x.exact and y.exact)
    return saturated(max(x.c, 0) + max(y.c, 0), max(x.b, y.b), max(x.t, y.t), False)


def product(dims) -> Dim:
    total = ONE
    for d in dims:
        total = total * d
    return total


@dataclass
class Value:
    """What is known of one tensor: its shape (a bound per dimension), element type, small values."""

    shape: tuple[Dim, ...]
    dtype: int
    values: tuple[Dim | None, ...] | None = None  # known integer contents of a rank <= 1 tensor


def shape_text(shape: tuple[Dim, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def normalize_axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise Refused(f"a {op} node uses axis {axis} of a rank-{rank} tensor; the graph is invalid")
    return axis % rank


def broadcast(shapes: list[tuple[Dim, ...]]) -> tuple[Dim, ...]:
    rank = max(len(s) for s in shapes)
    padded = [(ONE,) * (rank - len(s)) + s for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        real = [d for d in dims if d != ONE]
        merged = real[0] if real else ONE
        for d in real[1:]:
            merged = upper(merged, d)
        out.append(merged)
    return tuple(out)
