"""argparse options built from config dataclasses, so the CLI and the API share one list of options.

Each dataclass field becomes ``--field-name`` (or ``metadata["flag"]``), with ``metadata["help"]`` as
its help. Nested dataclass fields are flattened. Defaults are *not* put into the namespace: only the
options the user typed appear there, and :func:`config_from_args` applies them onto a base config, so a
resumed run can tell an explicit ``--epochs`` from the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from typing import Any, TypeVar

__all__ = ["add_config_arguments", "config_flags", "config_from_args", "flag_names"]

C = TypeVar("C")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    prefix: str = "",
    defaults_from: str = "",
) -> None:
    """Add one option per field of dataclass ``cls`` (recursively) to ``parser``. ``defaults_from``
    names where the command takes its defaults before ``cls``'s own (``"the model file's"``): the help
    then says so."""
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for field in dataclasses.fields(cls):
        dest = prefix + field.name
        if field.name in skip or dest in skip:
            continue
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            group = field.metadata.get("group")
            target = parser.add_argument_group(group) if group else parser
            add_config_arguments(  # type: ignore[arg-type]
                target, hint, skip=skip, prefix=dest + ".", defaults_from=defaults_from
            )
            continue
        default = getattr(defaults, field.name)
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
        help_text = field.metadata.get("help", "")
        base = _base_type(hint)
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) in (tuple, list):
            (kwargs["type"],) = {a for a in typing.get_args(base) if a is not Ellipsis}
            if field.metadata.get("positional"):
                kwargs["nargs"] = "*"
            else:  # one value a flag, repeated for more: a list flag would take the prompts after it too
                kwargs["action"] = "append"
                help_text += "; repeat the flag for more"
        else:
            kwargs["type"] = base
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        shown = ("on" if default else "off") if base is bool else default
        if default not in (None, (), "") or base is bool:
            help_text += (
                f" (default: {defaults_from}, else {shown})" if defaults_from else f" (default: {shown})"
            )
        elif defaults_from and default == ():  # a file's stop strings; nothing where the default is None
            help_text += f" (default: {defaults_from})"
        kwargs["help"] = help_text
        if field.metadata.get("positional"):
            del kwargs["dest"]
            parser.add_argument(dest, metavar=field.metadata.get("metavar", field.name.upper()), **kwargs)
            continue
        flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
        if base is not bool:
            kwargs["metavar"] = field.metadata.get("metavar", field.name.upper())
        parser.add_argument(flag, **kwargs)


def config_flags(cls: type, prefix: str = "") -> dict[str, str]:
    """``{dotted field path: command-line flag}`` for every field of dataclass ``cls``, e.g.
    ``{"model.lstm_units": "--lstm-units", "corpus.paths": "CORPUS", ...}``."""
    hints = typing.get_type_hints(cls)
    flags: dict[str, str] = {}
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            flags |= config_flags(hints[field.name], prefix + field.name + ".")
        elif field.metadata.get("positional"):
            flags[prefix + field.name] = field.metadata.get("metavar", field.name.upper())
        else:
            flags[prefix + field.name] = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
    return flags


def config_from_args(base: C, options: dict[str, Any], prefix: str = "") -> C:
    """``base`` with every typed option of ``options`` applied; dataclass validation runs again.

    A refusal names the options by their flags (``--top-k must be in ...``, ``set --num-beams=1``),
    not by the API's field names, which the user of the command line never typed."""
    try:
        return _apply(base, options, prefix)
    except ValueError as exc:
        if prefix:
            raise
        raise ValueError(flag_names(str(exc), type(base))) from None


def flag_names(message: str, cls: type) -> str:
    """``message`` with the field names of dataclass ``cls`` that it uses as option names (the name it
    starts with, and every ``name=value``) written as their flags; a name two flags share stays."""
    by_name: dict[str, set[str]] = {}
    for path, flag in config_flags(cls).items():
        if flag.startswith("--"):
            by_name.setdefault(path.rsplit(".", 1)[-1], set()).add(flag)
    for name, flags in by_name.items():
        if len(flags) == 1:
            (flag,) = flags
            name = re.escape(name)
            message = re.sub(rf"^{name}(?=[= ])|(?<=[\s(,]){name}(?==)", flag, message)
    return message


def _apply(base: C, options: dict[str, Any], prefix: str) -> C:
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(base):
        key = prefix + field.name
        value = getattr(base, field.name)
        if dataclasses.is_dataclass(value):
            changes[field.name] = _apply(value, options, key + ".")
        elif key in options:
            new = options[key]
            changes[field.name] = tuple(new) if isinstance(new, list) else new
    # a config that resolves options against its defaults (GenerationConfig: --max-words under a file's
    # min_words, --num-beams over a file's top_k) does so here too
    resolve = getattr(type(base), "from_options", None)
    return resolve(base, **changes) if callable(resolve) else dataclasses.replace(base, **changes)


def _base_type(hint: Any) -> Any:
    """``int`` for ``int | None``; the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint
