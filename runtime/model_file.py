"""The nextword model-file format: names, metadata keys, and reading them back through onnxruntime.

A nextword model is one ONNX file. Its graph is a stateful step function::

    input_ids  int64   [batch, time]        h_0, c_0, ..., h_{L-1}, c_{L-1}  float32 [batch, units]
    logits_from int64  []  (format 2)
    logits     float32 [batch, time', vocab] h_0_out, c_0_out, ...            float32 [batch, units]

where ``time'`` is the number of positions from ``logits_from`` on (Python slice semantics: ``-1`` is
the last position only, ``0`` every position).

and its ``metadata_props`` carry everything else (see ``docs/model-format.md``). This module only reads;
the exporter in ``nextword.export`` writes the same keys.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .cache import CacheConfig
from .errors import ModelFileError
from .generation import GenerationConfig
from .tokenizer import Tokenizer

__all__ = [
    "FORMAT_VERSION",
    "INPUT_IDS",
    "KEY_CACHE",
    "KEY_CONFIG",
    "KEY_FORMAT_VERSION",
    "KEY_GENERATION",
    "KEY_METRICS",
    "KEY_PARITY",
    "KEY_QUALITY",
    "KEY_TOKENIZER",
    "KEY_VERSIONS",
    "LOGITS",
    "LOGITS_FROM",
    "ModelInfo",
    "read_model_info",
    "state_input_names",
    "state_output_names",
]

FORMAT_VERSION = 2  # bump when a reader of the previous version could misread a new file
SUPPORTED_FORMAT_VERSIONS = frozenset({1, 2})
LOGITS_FROM_SINCE = 2  # the format version that added the logits_from input

KEY_FORMAT_VERSION = "nextword.format_version"  # "2"
KEY_TOKENIZER = "nextword.tokenizer"  # Tokenizer.to_json()
KEY_CONFIG = "nextword.config"  # {"model": ModelConfig, "train": TrainConfig, "export": ExportConfig}
KEY_METRICS = "nextword.metrics"  # training metrics (metrics.json of the run)
KEY_PARITY = "nextword.parity"  # export-time parity figures
KEY_VERSIONS = "nextword.versions"  # versions of the packages that trained and exported the model
KEY_QUALITY = "nextword.quality"  # validation perplexity and accuracy measured at export, per precision
KEY_GENERATION = "nextword.generation"  # decoding defaults: GenerationConfig fields that differ from its own
KEY_CACHE = "nextword.cache"  # continuous-cache settings (CacheConfig) tuned at export; absent: no cache
JSON_KEYS = (KEY_CONFIG, KEY_METRICS, KEY_PARITY, KEY_VERSIONS, KEY_QUALITY, KEY_GENERATION)

INPUT_IDS = "input_ids"
LOGITS_FROM = "logits_from"  # format 2: first position whose logits are computed (negative: from the end)
LOGITS = "logits"
_STATE_INPUT = re.compile(r"([hc])_(\d+)")


def state_input_names(num_layers: int) -> list[str]:
    """Graph input names of the LSTM state, in the order the runtime passes state around."""
    return [f"{kind}_{layer}" for layer in range(num_layers) for kind in ("h", "c")]


def state_output_names(num_layers: int) -> list[str]:
    """Graph output names of the new LSTM state, matching :func:`state_input_names`."""
    return [f"{name}_out" for name in state_input_names(num_layers)]


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself, validated against its graph."""

    format_version: int
    tokenizer: Tokenizer
    state_sizes: tuple[int, ...]  # width of h and c for each LSTM layer
    vocab_size: int
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    generation: GenerationConfig = field(default_factory=GenerationConfig)  # this model's decoding defaults
    cache: CacheConfig | None = None  # continuous-cache settings; None: the file has none

    @property
    def has_logits_from(self) -> bool:
        """Whether the graph takes ``logits_from`` (format 2 on), so positions can be skipped."""
        return self.format_version >= LOGITS_FROM_SINCE


def read_model_info(session: Any, source: str) -> ModelInfo:
    """Read and check the metadata and the input/output signature of a loaded session.

    ``source`` names the file in error messages. Raises :class:`ModelFileError` when the file is not a
    nextword model, has an unsupported format version, or its metadata disagrees with its graph.
    """
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if KEY_FORMAT_VERSION not in meta:
        raise ModelFileError(
            f"{source} is an ONNX file but not a nextword model (no {KEY_FORMAT_VERSION!r} metadata); "
            "export models with `nextword export`"
        )
    try:
        version = int(meta[KEY_FORMAT_VERSION])
    except ValueError:
        raise ModelFileError(
            f"{source}: format version {meta[KEY_FORMAT_VERSION]!r} is not a number"
        ) from None
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelFileError(
            f"{source} uses nextword model format {version}; this nextword reads "
            f"{sorted(SUPPORTED_FORMAT_VERSIONS)}. Upgrade nextword or re-export the model with this version"
        )
    if KEY_TOKENIZER not in meta:
        raise ModelFileError(f"{source} has no tokenizer ({KEY_TOKENIZER!r} metadata); re-export the model")
    try:
        tokenizer = Tokenizer.from_json(meta[KEY_TOKENIZER])
    except ValueError as exc:
        raise ModelFileError(f"{source}: the embedded tokenizer is invalid: {exc}") from None
    parsed: dict[str, dict[str, Any]] = {}
    for key in JSON_KEYS:
        try:
            value = json.loads(meta.get(key, "{}"))
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{source}: metadata {key!r} is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ModelFileError(f"{source}: metadata {key!r} must be a JSON object")
        parsed[key] = value

    state_sizes, vocab_size = _check_signature(session, source, version)
    if vocab_size != len(tokenizer):
        raise ModelFileError(
            f"{source}: the graph predicts {vocab_size} classes but the tokenizer has {len(tokenizer)} "
            "tokens; the file mixes a graph and a tokenizer from different models"
        )
    return ModelInfo(
        format_version=version,
        tokenizer=tokenizer,
        state_sizes=state_sizes,
        vocab_size=vocab_size,
        config=parsed[KEY_CONFIG],
        metrics=parsed[KEY_METRICS],
        parity=parsed[KEY_PARITY],
        versions=parsed[KEY_VERSIONS],
        quality=parsed[KEY_QUALITY],
        generation=_generation_defaults(parsed[KEY_GENERATION], source),
        cache=_cache_settings(meta.get(KEY_CACHE), source),
    )


def _cache_settings(text: str | None, source: str) -> CacheConfig | None:
    """The file's continuous-cache settings, None without them; malformed ones are refused."""
    if text is None:
        return None
    try:
        return CacheConfig.from_dict(json.loads(text))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{source}: metadata {KEY_CACHE!r} holds invalid cache settings: {exc}"
        ) from None


def _generation_defaults(data: dict[str, Any], source: str) -> GenerationConfig:
    """The model's decoding defaults; a file that asks for unknown or invalid options is refused."""
    stop = data.get("stop")
    if isinstance(stop, list):
        data = {**data, "stop": tuple(stop)}
    try:
        defaults = GenerationConfig.from_options(**data)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{source}: metadata {KEY_GENERATION!r} holds invalid decoding defaults: {exc}"
        ) from None
    if defaults.seed is not None:
        raise ModelFileError(f"{source}: metadata {KEY_GENERATION!r} may not fix a seed")
    return defaults


def _check_signature(session: Any, source: str, version: int) -> tuple[tuple[int, ...], int]:
    """Return (state width per layer, vocabulary size) from the graph, or raise ModelFileError. Format 2
    graphs take ``logits_from``; format 1 graphs do not."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if INPUT_IDS not in inputs or LOGITS not in outputs:
        raise ModelFileError(f"{source}: the graph needs an {INPUT_IDS!r} input and a {LOGITS!r} output")
    layers = sorted({int(m.group(2)) for name in inputs if (m := _STATE_INPUT.fullmatch(name))})
    if not layers or layers != list(range(len(layers))):
        raise ModelFileError(
            f"{source}: the graph's state inputs {sorted(inputs)} are not h_0, c_0, h_1, ..."
        )
    num_layers = len(layers)
    has_logits_from = version >= LOGITS_FROM_SINCE
    expected_inputs = {INPUT_IDS, *state_input_names(num_layers), *([LOGITS_FROM] * has_logits_from)}
    expected_outputs = {LOGITS, *state_output_names(num_layers)}
    if set(inputs) != expected_inputs or set(outputs) != expected_outputs:
        raise ModelFileError(
            f"{source}: graph inputs {sorted(inputs)} / outputs {sorted(outputs)} do not match the nextword "
            f"step signature {sorted(expected_inputs)} / {sorted(expected_outputs)}"
        )
    state_sizes = tuple(inputs[f"h_{layer}"].shape[-1] for layer in range(num_layers))
    vocab_size = outputs[LOGITS].shape[-1]
    if not all(isinstance(n, int) and n > 0 for n in (*state_sizes, vocab_size)):
        raise ModelFileError(f"{source}: the state widths and the vocabulary size must be fixed in the graph")
    if has_logits_from and (inputs[LOGITS_FROM].type != "tensor(int64)" or inputs[LOGITS_FROM].shape):
        raise ModelFileError(f"{source}: the graph input {LOGITS_FROM!r} must be an int64 scalar")
    return state_sizes, vocab_size
