"""The fields of a config dataclass, with their help, in its docstring: what ``help(GenerationConfig)``
and an editor's hover show, written from the ``metadata={"help": ...}`` that the command line's
``--help`` shows too, so the two never part."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from typing import Any, TypeVar

__all__ = ["with_field_help"]

T = TypeVar("T")

_WIDTH = 100
_SHOWN_FACTORIES = (tuple, list, dict, set, frozenset)  # whose empty value is worth writing out


def with_field_help(cls: T) -> T:
    """Class decorator, outside ``@dataclass``: appends to ``cls.__doc__`` a "Fields" section that lists
    each field with a ``help`` in its metadata, its default and that help, in the fields' order."""
    lines = [_entry(item) for item in dataclasses.fields(cls) if item.metadata.get("help")]  # type: ignore[arg-type]
    if lines:
        head = inspect.cleandoc(cls.__doc__ or "")
        section = "Fields (name = default: meaning):\n\n" + "\n".join(lines)
        cls.__doc__ = f"{head}\n\n{section}\n" if head else f"{section}\n"
    return cls


def _entry(item: dataclasses.Field[Any]) -> str:
    """One field's lines: ``name = default`` and its help, indented under it and wrapped."""
    meaning = str(item.metadata["help"]).replace("%%", "%")  # argparse's escape, for --help
    text = textwrap.fill(
        meaning,
        _WIDTH,
        initial_indent="    ",
        subsequent_indent="    ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    return f"{item.name} = {_default(item)}\n{text}"


def _default(item: dataclasses.Field[Any]) -> str:
    """The default as written in code: its ``repr``, an empty container, or ``Factory()``."""
    if item.default is not dataclasses.MISSING:
        return repr(item.default)
    factory = item.default_factory
    if factory is dataclasses.MISSING:
        return "(required)"
    if factory in _SHOWN_FACTORIES:
        return repr(factory())
    return f"{getattr(factory, '__name__', 'a new value')}()"
