"""The value ranges of the request bodies, as the OpenAPI schema states them.

The server checks ranges itself (the runtime's :class:`~nextword.runtime.GenerationConfig`, and the
caps of ``nextword serve`` in ``options.py`` and ``routes.py``), so that its 400 answers name the flag
or the range in its own words; pydantic validating them would answer with its messages instead. The
schema therefore only *states* the ranges: :func:`bounds` adds fixed ones to a field's schema, and
:func:`document_caps` fills in this server's caps (``--max-words``, ``--max-rows``,
``--max-suggestions``, ``--max-prompt-chars``), which differ from one server to the next. A client or
validator driven by the schema then sends nothing the server refuses for its range alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # schemas.py imports this module: it needs none of the server's settings
    from .config import ServeConfig

__all__ = ["bounds", "document_caps"]

JsonSchema = dict[str, Any]
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def bounds(**by_type: JsonSchema) -> Callable[[JsonSchema], None]:
    """A field's ``json_schema_extra``: JSON Schema keywords for each JSON type the field takes
    (``integer={"minimum": 0}``). An optional field is an ``anyOf`` of its type and ``null``: the
    keywords go into its type's branch, where a client generator reads them, not beside the ``anyOf``."""

    def add(schema: JsonSchema) -> None:
        _add(schema, copy.deepcopy(by_type))  # a copy: each app's schema is edited by its caps

    return add


def _add(schema: JsonSchema, by_type: dict[str, JsonSchema]) -> None:
    """Add ``by_type``'s keywords to the branches of ``schema`` of their types; an object value
    (``items``) is merged into the one there, which keeps its ``type``."""
    for branch in schema.get("anyOf", [schema]):
        for key, value in by_type.get(branch.get("type"), {}).items():
            if isinstance(value, dict):
                branch.setdefault(key, {}).update(value)
            else:
                branch[key] = value


def document_caps(app: Any, config: ServeConfig, vocab_size: int) -> None:
    """Write this server's caps into the request bodies of the app's OpenAPI schema, as ``maximum``,
    ``maxLength`` and ``maxItems``; ``vocab_size`` bounds ``k`` too (a ``k`` past the model's
    vocabulary gets 400 whatever ``--max-suggestions`` says)."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()
            _fill(schema.get("components", {}).get("schemas", {}), config, vocab_size)
        return app.openapi_schema

    app.openapi = openapi


def _fill(schemas: dict[str, JsonSchema], config: ServeConfig, vocab_size: int) -> None:
    """Add the caps to the request bodies among the schema's ``components.schemas``, and write their
    integer bounds as integers."""
    text: JsonSchema = {"maxLength": config.max_prompt_chars}
    caps: dict[str, dict[str, dict[str, JsonSchema]]] = {
        "CompletionRequest": {
            "max_tokens": {"integer": {"maximum": config.max_words}},
            # min_tokens <= max_tokens <= --max-words, max_tokens left out included (the file's
            # max_words lowered to the cap): a larger min_tokens is always refused
            "min_tokens": {"integer": {"maximum": config.max_words}},
            "n": {"integer": {"maximum": config.max_rows}},
            "num_beams": {"integer": {"maximum": config.max_rows}},
            "best_of": {"integer": {"maximum": config.max_rows}},  # 1 or n
            # n >= 1, so more prompts than --max-rows never fit
            "prompt": {"string": text, "array": {"maxItems": config.max_rows, "items": text}},
        },
        "SuggestRequest": {
            "k": {"integer": {"maximum": min(config.max_suggestions, vocab_size)}},
            "prompt": {"string": text},
        },
        "ScoreRequest": {"text": {"string": text}},
    }
    for name, fields in caps.items():
        for field, by_type in fields.items():
            _add(schemas[name]["properties"][field], by_type)
        for node in schemas[name]["properties"].values():
            for branch in node.get("anyOf", [node]):
                if branch.get("type") == "integer":  # FastAPI's OpenAPI model wrote bounds as floats (1.0)
                    branch.update(
                        {k: int(v) for k, v in branch.items() if k in _BOUNDS and isinstance(v, float)}
                    )
