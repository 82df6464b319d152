"""Settings given in the wrong place, said with where they belong: the command line takes every option
flat (``--lstm-units 64``), so ``TrainConfig(lstm_units=64)`` is what a user of the Python API tries
first, and Python's own "unexpected keyword argument" does not say that ``lstm_units`` is a setting of
the nested ``ModelConfig``. A stored config (a run's ``config.json``) with a key this version does not
know is named with its close matches, not blamed on the version alone."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from typing import Any, TypeVar

from nextword.runtime.checks import shown

__all__ = ["nested_keywords", "unknown_keys"]

T = TypeVar("T", bound=type)


def nested_keywords(cls: T) -> T:
    """Class decorator, above ``@dataclass``: a keyword argument that is no field of ``cls`` is a
    ``TypeError`` that says which nested config takes it and how
    (``lstm_units belongs to ModelConfig: TrainConfig(model=ModelConfig(lstm_units=64))``), or, for a
    near miss of a field, which field was meant, else that ``cls`` has no such setting; every such
    keyword is named. Any other ``TypeError`` stays as Python raised it."""
    init = vars(cls)["__init__"]  # the one @dataclass wrote

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except TypeError:
            said = [_placed(cls, key, kwargs[key]) for key in kwargs if key not in _fields(cls)]
            if not said:  # not a keyword's fault
                raise
            raise TypeError("; ".join(said)) from None

    setattr(cls, "__init__", __init__)  # noqa: B010 (mypy refuses a method assigned directly)
    return cls


def unknown_keys(data: Any, cls: type, prefix: str = "") -> list[str]:
    """The keys of the mapping ``data`` that name no field of dataclass ``cls``, those of its nested
    configs' mappings too (``'model.lstm_unit'``), each with the fields it may have meant: ``'epochz'
    (did you mean 'epochs'?)``."""
    if not isinstance(data, dict):
        return []
    found, nested = [], _nested(cls)
    for key, value in data.items():
        if key in nested:
            found += unknown_keys(value, nested[key], f"{prefix}{key}.")
        elif key not in _fields(cls):
            close = difflib.get_close_matches(str(key), _fields(cls), n=2, cutoff=0.75)
            meant = f" (did you mean {' or '.join(repr(prefix + c) for c in close)}?)" if close else ""
            found.append(f"{prefix + str(key)!r}{meant}")
    return found


def _placed(cls: type, key: str, value: Any) -> str:
    """Where ``key`` goes: the nested config of ``cls`` that has it, or the field it nearly spells;
    that ``cls`` has no such setting when neither."""
    owners: dict[str, tuple[str, type]] = {}  # a nested setting: its config's field, and its class
    for field, nested in reversed(_nested(cls).items()):  # a name two share: the first config's
        owners |= {name: (field, nested) for name in _fields(nested)}
    if key in owners:
        field, nested = owners[key]
        return f"{key} belongs to {nested.__name__}: {_call(cls, field, nested, key, value)}"
    said = f"{cls.__name__} has no setting {key!r}"
    close = difflib.get_close_matches(key, [*_fields(cls), *owners], n=1, cutoff=0.75)
    if not close:
        return said
    if close[0] not in owners or close[0] in _fields(cls):
        return f"{said}: did you mean {close[0]!r}?"
    field, nested = owners[close[0]]
    return (
        f"{said}: did you mean {close[0]!r}, a setting of {nested.__name__}? "
        f"{_call(cls, field, nested, close[0], value)}"
    )


def _call(cls: type, field: str, nested: type, key: str, value: Any) -> str:
    """``TrainConfig(model=ModelConfig(lstm_units=64))``: where ``key=value`` goes."""
    return f"{cls.__name__}({field}={nested.__name__}({key}={shown(value)}))"


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _nested(cls: type) -> dict[str, type]:
    """``{field name: its dataclass}`` for the fields of ``cls`` that are configs themselves."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])
    }
