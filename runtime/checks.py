"""Checks of configuration values, shared by every stage's config: a wrong value is a ``ValueError``
that names the field and what it takes, raised when the config is made, before any work; a value of
the wrong type is a :class:`~.errors.WrongTypeError` (a ``TypeError`` that is a ``ValueError`` too)."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Set
from typing import Any, SupportsFloat

import numpy as np

from .errors import WrongTypeError

__all__ = [
    "as_path",
    "check_bool",
    "check_int",
    "check_iterable",
    "check_real",
    "finite",
    "plain_numbers",
    "shown",
    "wrong_type",
]


def plain_numbers(config: Any) -> None:
    """Replace numbers of other types in the fields of dataclass ``config`` (a numpy ``int64`` from
    ``np.arange``, a ``float32``) by Python's ``int`` and ``float`` of the same value, before its checks:
    a config then checks, compares and writes to JSON (a run's config.json, a model file's metadata) as
    one made of plain values does; a numpy ``bool_`` becomes ``bool``. A float narrower than Python's
    becomes the float its shortest decimal form reads (``np.float32(0.01)`` is 0.01, as typed, not
    0.009999999776..., which a range from 0.01 would refuse). Python's bools, and values that are not
    numbers, stay as given."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if type(value) in (int, float, bool):
            continue
        if isinstance(value, np.bool_):
            object.__setattr__(config, item.name, bool(value))
        elif isinstance(value, numbers.Integral):
            object.__setattr__(config, item.name, int(value))
        elif isinstance(value, np.floating) and np.finfo(value.dtype).bits < 64:
            object.__setattr__(config, item.name, float(str(value)))  # numpy's shortest round-trip form
        elif isinstance(value, numbers.Real):
            object.__setattr__(config, item.name, float(value))


def check_bool(name: str, value: Any) -> None:
    """``value`` must be ``True`` or ``False``: a string such as ``"no"`` is truthy, and taken as True
    it would turn the setting on."""
    if not isinstance(value, bool):
        raise wrong_type(name, "True or False", value)


def as_path(name: str, value: Any, *, empty: bool = True) -> str:
    """A file path given as ``str`` or ``os.PathLike``, as the ``str`` a config stores (and writes into
    JSON); ``empty``: whether ``""`` (not set) is allowed."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise wrong_type(name, "a file path (str or pathlib.Path)", value)
    if not empty and not value:
        raise ValueError(f"{name} is an empty string, which names no file: give the file's path")
    return value


def check_int(name: str, value: Any, low: int, high: int | None, wanted: str = "") -> None:
    """``value`` must be an integer (not a bool) in ``low..high`` (``high`` None: no upper bound);
    ``wanted``, if given, says what the field takes in both refusals (``"a positive integer"``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise wrong_type(name, wanted or "an integer", value)
    if int(value) < low or (high is not None and int(value) > high):
        allowed = wanted or (f"in {low}..{high}" if high is not None else f"an integer >= {low}")
        raise ValueError(f"{name} must be {allowed}, got {shown(int(value))}")


def check_iterable(name: str, value: Any, wanted: str, one: str = "", ordered: bool = False) -> None:
    """``value`` must be an iterable of several items (a list, a tuple, a generator), ``wanted``
    saying of what: not a ``str`` or ``bytes`` (iterated, each character would be an item), and not
    ``None`` or a number (``"'int' object is not iterable"`` would name no parameter). ``one``: the
    advice added for a single ``str`` or ``bytes`` (``"pass [text] to evaluate one document"``).
    ``ordered``: the items' order means something (ids, prompts), so not a set or a dict either."""
    text = isinstance(value, str | bytes | bytearray)
    if text and one:
        raise WrongTypeError(f"{name} must be {wanted}, got one {type(value).__name__}; {one}")
    if text or not isinstance(value, Iterable) or (ordered and isinstance(value, Set | Mapping)):
        raise wrong_type(name, wanted, value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float,
    low_open: bool,
    high: float = math.inf,
    high_open: bool = False,
    note: str = "",
    wanted: str = "",
) -> None:
    """``value`` must be a finite real number (not a bool) above ``low`` (or at it, unless
    ``low_open``) and at most ``high`` (below it with ``high_open``); ``note`` is added to the refusal,
    and ``wanted``, if given, says what the field takes in its place (``"a positive number"``)."""
    if not wanted:
        lower = "" if low == -math.inf else f"{'>' if low_open else '>='} {low:g}"
        upper = "" if high == math.inf else f"{'<' if high_open else '<='} {high:g}"
        bounds = " and ".join(b for b in (lower, upper) if b)
        wanted = f"a finite number{' ' + bounds if bounds else ''}{f' ({note})' if note else ''}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise wrong_type(name, wanted, value)
    number = float(value) if finite(value) else math.nan
    if not (number > low if low_open else number >= low) or not (
        number < high if high_open else number <= high
    ):
        raise ValueError(f"{name} must be {wanted}, got {shown(value)}")


def finite(value: SupportsFloat) -> bool:
    """``math.isfinite`` that answers False, not OverflowError, for integers beyond a float's range (a
    JSON file can hold a 400-digit number)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: Any) -> str:
    """``repr(value)`` cut to 60 characters (a file can hold a number thousands of digits long)."""
    try:
        text = repr(value)
    except ValueError:  # an integer over Python's 4,300-digit conversion limit
        return "an integer of more than 4,300 digits"
    return text if len(text) <= 60 else text[:57] + "..."


def wrong_type(name: str, wanted: str, value: Any) -> WrongTypeError:
    """The error to raise for ``value`` given as ``name``, which takes ``wanted`` (``"an integer"``):
    ``"NAME must be WANTED, got VALUE"``, VALUE as :func:`shown` quotes it."""
    return WrongTypeError(f"{name} must be {wanted}, got {shown(value)}")
