"""help() on a config shows its fields: each with its default and the help the command line's --help
shows (both come from the field's metadata), so a user in a REPL or an editor sees what a field means
without the docs."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pydoc
import re

import pytest

from nextword.runtime.field_help import with_field_help

CONFIGS = [
    ("nextword.runtime.generation", "GenerationConfig"),
    ("nextword.runtime.limits", "LoadLimits"),
    ("nextword.runtime.tokenizer", "TokenizerConfig"),
    ("nextword.corpus.config", "CorpusConfig"),
    ("nextword.train.config", "ModelConfig"),
    ("nextword.train.config", "TrainConfig"),
    ("nextword.export.config", "ExportConfig"),
    ("nextword.serve.config", "ServeConfig"),
    ("nextword.corpus.patentsview.config", "PatentsViewConfig"),
]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("module", "name"), CONFIGS)
def test_every_field_with_help_is_in_the_docstring_with_its_default(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(cls)
    assert doc is not None and "Fields (name = default: meaning):" in doc, name
    shown = _flat(pydoc.render_doc(cls, renderer=pydoc.plaintext))
    helped = [item for item in dataclasses.fields(cls) if item.metadata.get("help")]
    assert helped, name
    for item in helped:
        assert re.search(rf"(?m)^{item.name} = ", doc), item.name
        assert _flat(item.metadata["help"].replace("%%", "%")) in _flat(doc), item.name
    assert _flat(doc.splitlines()[0]) in shown  # the class's own first line is kept, above the fields


def test_the_section_lists_defaults_as_code_writes_them() -> None:
    @with_field_help
    @dataclasses.dataclass
    class Example:
        """An example."""

        count: int = dataclasses.field(default=3, metadata={"help": "how many, 5%% at most"})
        names: tuple[str, ...] = dataclasses.field(default_factory=tuple, metadata={"help": "the names"})
        inner: Example | None = dataclasses.field(default=None)  # no help: not listed

    doc = inspect.getdoc(Example)
    assert doc == (
        "An example.\n\nFields (name = default: meaning):\n\n"
        "count = 3\n    how many, 5% at most\nnames = ()\n    the names"
    )


def test_a_class_without_helped_fields_keeps_its_docstring() -> None:
    @with_field_help
    @dataclasses.dataclass
    class Bare:
        """Nothing to add."""

        value: int = 0

    assert Bare.__doc__ == "Nothing to add."
