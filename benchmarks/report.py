"""Markdown tables and the number formats the benchmark reports share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["fmt_bytes", "fmt_num", "fmt_stat", "markdown_table", "met", "spread_label"]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub Markdown table. ``align`` holds one letter per column, ``l`` or ``r``; by default the
    first column is left-aligned and the others (numbers) right-aligned."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(headers)} columns")
    rules = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rules) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_num(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, no exponent for ordinary magnitudes."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
    return f"{value:.{decimals}f}"


def fmt_stat(stat: dict[str, float] | None, digits: int = 3) -> str:
    """``median (q1–q3)``: the median with the spread it came with (min–max under 4 values)."""
    if not stat:
        return "–"
    if stat["n"] == 1:
        return fmt_num(stat["median"], digits)
    low, high = (stat["q1"], stat["q3"]) if stat["n"] >= 4 else (stat["min"], stat["max"])
    return f"{fmt_num(stat['median'], digits)} ({fmt_num(low, digits)}–{fmt_num(high, digits)})"


def spread_label(n: int) -> str:
    """What :func:`fmt_stat`'s parentheses hold for ``n`` values."""
    return "interquartile range" if n >= 4 else "min–max"


def fmt_bytes(n: float | None) -> str:
    """``n`` bytes in B, kB, MB or GB (powers of 1,000)."""
    if n is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if n < 100 * size else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def met(ok: bool) -> str:
    """How a report says whether a target was reached."""
    return "met" if ok else "not met"


def verdict_line(check: dict[str, Any]) -> str:
    """A report's bullet for one target check (``target``, ``measured``, ``met``, optional ``why``):
    "- target: **measured**, met. Why." with the reason as a sentence of its own."""
    line = f"- {check['target']}: **{check['measured']}**, {met(check['met'])}."
    why = check.get("why")
    return f"{line} {why[0].upper()}{why[1:]}." if why else line
