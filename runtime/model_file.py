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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .cache import CacheConfig
from .errors import ModelFileError, shorten
from .generation import GenerationConfig, check_option_names
from .limits import MAX_JSON_DEPTH, LoadLimits
from .provenance import Provenance, read_provenance
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
    "Metadata",
    "ModelInfo",
    "format_version_for",
    "is_step_graph",
    "parse_metadata",
    "read_model_info",
    "state_input_names",
    "state_output_names",
]

FORMAT_VERSION = 2  # written unless a newer feature needs more; bump when an older reader could misread
SUPPORTED_FORMAT_VERSIONS = frozenset({1, 2, 3})
LOGITS_FROM_SINCE = 2  # the format version that added the logits_from input
CACHE_SETTINGS_SINCE = 3  # the version whose cache settings may use similarity and gate

KEY_FORMAT_VERSION = "nextword.format_version"  # "2", or "3" (format_version_for)
KEY_TOKENIZER = "nextword.tokenizer"  # Tokenizer.to_json()
KEY_CONFIG = "nextword.config"  # {"model": ..., "train": ..., "export": ..., "provenance": Provenance}
KEY_METRICS = "nextword.metrics"  # training metrics (metrics.json of the run)
KEY_PARITY = "nextword.parity"  # export-time parity figures
KEY_VERSIONS = "nextword.versions"  # versions of the packages that trained and exported the model
KEY_QUALITY = "nextword.quality"  # validation perplexity and accuracy measured at export, per precision
KEY_GENERATION = "nextword.generation"  # decoding defaults: GenerationConfig fields that differ from its own
KEY_CACHE = "nextword.cache"  # continuous-cache settings (CacheConfig) tuned at export; absent: no cache
JSON_KEYS = (KEY_CONFIG, KEY_METRICS, KEY_PARITY, KEY_VERSIONS, KEY_QUALITY, KEY_GENERATION, KEY_CACHE)

INPUT_IDS = "input_ids"
LOGITS_FROM = "logits_from"  # format 2: first position whose logits are computed (negative: from the end)
LOGITS = "logits"
_STATE_INPUT = re.compile(r"([hc])_(\d+)")
_FORMAT_VERSION = re.compile(r"[0-9]{1,9}")


def format_version_for(cache: CacheConfig | None) -> int:
    """The format version a file with these cache settings is written with: 3 when they use cosine
    similarities or a gate (a version-2 reader would refuse them), :data:`FORMAT_VERSION` otherwise."""
    return CACHE_SETTINGS_SINCE if cache is not None and cache.needs_format_3 else FORMAT_VERSION


def state_input_names(num_layers: int) -> list[str]:
    """Graph input names of the LSTM state, in the order the runtime passes state around."""
    return [f"{kind}_{layer}" for layer in range(num_layers) for kind in ("h", "c")]


def state_output_names(num_layers: int) -> list[str]:
    """Graph output names of the new LSTM state, matching :func:`state_input_names`."""
    return [f"{name}_out" for name in state_input_names(num_layers)]


def is_step_graph(inputs: Iterable[str], outputs: Iterable[str]) -> bool:
    """Whether a graph whose inputs (initializers left out) and outputs have these names is a nextword
    step function, of any format: a file that has one and no metadata was re-saved by a tool."""
    names_in, names_out = set(inputs), set(outputs)
    layers = len({name for name in names_in if name.isascii() and _STATE_INPUT.fullmatch(name)}) // 2
    return (
        layers > 0
        and names_in - {LOGITS_FROM} == {INPUT_IDS, *state_input_names(layers)}
        and names_out == {LOGITS, *state_output_names(layers)}
    )


_DICT_FIELDS = ("config", "metrics", "parity", "versions", "quality")


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
    provenance: Provenance | None = None  # corpus, split, counts, commands; None if the file records none
    cache: CacheConfig | None = None  # continuous-cache settings; None: the file has none

    def __repr__(self) -> str:
        """Short, as a notebook shows it: the dictionaries by their keys, the provenance by its corpus
        (the fields hold all of it; the whole repr ran to 12,000 characters)."""

        def keys(d: dict[str, Any]) -> str:
            return "{" + ", ".join(f"{k!r}: \u2026" for k in d) + "}"

        corpus = "None" if self.provenance is None else f"<corpus {list(self.provenance.corpus_files)}>"
        return (
            f"ModelInfo(format_version={self.format_version}, vocab_size={self.vocab_size}, "
            f"state_sizes={self.state_sizes}, tokenizer={self.tokenizer!r}, generation={self.generation!r}, "
            f"cache={self.cache!r}, provenance={corpus}, "
            + ", ".join(f"{name}={keys(getattr(self, name))}" for name in _DICT_FIELDS)
            + ")"
        )

    @property
    def has_logits_from(self) -> bool:
        """Whether the graph takes ``logits_from`` (format 2 on), so positions can be skipped."""
        return self.format_version >= LOGITS_FROM_SINCE


@dataclass(frozen=True)
class Metadata:
    """A model file's metadata, checked: every entry as text, and the JSON entries parsed."""

    format_version: int
    values: dict[str, str]  # every metadata entry, decoded
    json: dict[str, dict[str, Any]]  # each of JSON_KEYS parsed ({} when absent)


def parse_metadata(
    entries: Iterable[tuple[bytes, bytes]],
    source: str,
    limits: LoadLimits | None = None,
    *,
    step_graph: bool = False,
) -> Metadata:
    """Check a model file's raw metadata entries (key, value as UTF-8 bytes) and parse them.

    The one reader of nextword metadata: the file check uses it on the raw protobuf entries before
    onnxruntime runs, and :func:`read_model_info` keeps its result. Raises :class:`ModelFileError`
    naming ``source`` for invalid UTF-8, a key given twice, a missing or unsupported format version, a
    missing tokenizer, an entry over its size cap (``limits``), and JSON entries that are not a JSON
    object Python can read or that nest more than :data:`~.limits.MAX_JSON_DEPTH` levels deep.
    ``step_graph``: the file's graph is a nextword step function (:func:`is_step_graph`), so a missing
    format version means a tool dropped the metadata, and the message says how to copy it back.
    """
    limits = limits or LoadLimits()
    values: dict[str, str] = {}
    for raw_key, raw_value in entries:
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            shown = shorten(raw_key.decode("utf-8", errors="replace"))
            raise ModelFileError(
                f"{source}: a metadata key ({shown}) is not valid UTF-8; the file is corrupted or was not "
                "written by nextword: re-export it"
            ) from None
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFileError(
                f"{source}: metadata {shorten(key)} is not valid UTF-8 (byte {exc.start}); the file is "
                "corrupted or was not written by nextword: re-export it"
            ) from None
        if key in values:
            raise ModelFileError(
                f"{source}: metadata key {shorten(key)} appears more than once, so readers could disagree "
                "on its value; re-export the model with `nextword export`"
            )
        values[key] = value
    version = _format_version(values, source, step_graph)
    if KEY_TOKENIZER not in values:
        raise ModelFileError(f"{source} has no tokenizer ({KEY_TOKENIZER!r} metadata); re-export the model")
    _check_size(source, "the embedded tokenizer", values[KEY_TOKENIZER], limits, "max_tokenizer_bytes")
    parsed: dict[str, dict[str, Any]] = {}
    for key in JSON_KEYS:
        text = values.get(key, "{}")
        _check_size(source, f"metadata {key!r}", text, limits, "max_metadata_bytes")
        try:  # json.loads can raise RecursionError, or ValueError for huge integers
            value = json.loads(text)
        except RecursionError:
            raise ModelFileError(
                f"{source}: metadata {key!r} is JSON nested too deeply to read; the file was not "
                "written by nextword: re-export it"
            ) from None
        except ValueError as exc:
            raise ModelFileError(
                f"{source}: metadata {key!r} is not valid JSON ({shorten(str(exc))}); re-export the "
                "model with `nextword export`"
            ) from None
        if not isinstance(value, dict):
            raise ModelFileError(f"{source}: metadata {key!r} must be a JSON object")
        if _too_deep(value):
            raise ModelFileError(
                f"{source}: metadata {key!r} is JSON nested more than {MAX_JSON_DEPTH} levels deep, "
                "which nextword metadata never is; the file was not written by nextword: re-export it"
            )
        parsed[key] = value
    return Metadata(format_version=version, values=values, json=parsed)


def _too_deep(value: Any) -> bool:
    """Whether objects and lists nest more than MAX_JSON_DEPTH deep in ``value`` (the object itself is
    level 1). A stack, not recursion: the value may nest as deep as ``json.loads`` allows."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth == MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _format_version(values: dict[str, str], source: str, step_graph: bool) -> int:
    if KEY_FORMAT_VERSION not in values and step_graph:
        raise ModelFileError(
            f"{source} has a nextword graph but no nextword metadata (no {KEY_FORMAT_VERSION!r}): a tool "
            "that re-saved it dropped its metadata_props, which hold the tokenizer and settings "
            "(onnx-graphsurgeon, onnx.utils.Extractor and onnx.helper.make_model(graph) do); copy them "
            'back from the original file before saving: new.metadata_props.extend(onnx.load("ORIGINAL.onnx")'
            ".metadata_props)"
        )
    if KEY_FORMAT_VERSION not in values:
        raise ModelFileError(
            f"{source} is not a nextword model (no {KEY_FORMAT_VERSION!r} metadata); "
            "export models with `nextword export`"
        )
    version = values[KEY_FORMAT_VERSION]
    if not _FORMAT_VERSION.fullmatch(version) or int(version) not in SUPPORTED_FORMAT_VERSIONS:
        shown = version if _FORMAT_VERSION.fullmatch(version) else shorten(version)
        raise ModelFileError(
            f"{source} uses nextword model format {shown}; this nextword reads "
            f"{sorted(SUPPORTED_FORMAT_VERSIONS)}. Upgrade nextword or re-export the model with this version"
        )
    return int(version)


def _check_size(source: str, what: str, text: str, limits: LoadLimits, limit: str) -> None:
    cap = getattr(limits, limit)
    if len(text) > cap // 4 and len(size := text.encode("utf-8", errors="surrogatepass")) > cap:
        raise limits.refuse(f"{source}: {what} is {len(size):,} bytes, over the {cap:,}-byte limit", limit)


def read_model_info(
    session: Any, source: str, metadata: Metadata | None = None, limits: LoadLimits | None = None
) -> ModelInfo:
    """Read and check the metadata and the input/output signature of a loaded session.

    ``source`` names the file in error messages; ``metadata`` is what :func:`parse_metadata` made of
    the file's raw entries (read from the session when not given). Raises :class:`ModelFileError` when
    the file is not a nextword model, has an unsupported format version, or its metadata disagrees with
    its graph.
    """
    if metadata is None:
        entries = session.get_modelmeta().custom_metadata_map.items()
        metadata = parse_metadata(
            ((k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass")) for k, v in entries),
            source,
            limits,
        )
    version, parsed = metadata.format_version, metadata.json
    try:
        tokenizer = Tokenizer.from_json(metadata.values[KEY_TOKENIZER])
    except ValueError as exc:
        raise ModelFileError(f"{source}: the embedded tokenizer is invalid: {exc}") from None

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
        provenance=read_provenance(parsed[KEY_CONFIG], source),
        cache=_cache_settings(parsed[KEY_CACHE], source),
    )


def _cache_settings(data: dict[str, Any], source: str) -> CacheConfig | None:
    """The file's continuous-cache settings, None without them ({}); malformed ones are refused."""
    if not data:
        return None
    try:
        return CacheConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{source}: metadata {KEY_CACHE!r} holds invalid cache settings: {shorten(str(exc))}"
        ) from None


def _generation_defaults(data: dict[str, Any], source: str) -> GenerationConfig:
    """The model's decoding defaults; a file that asks for unknown or invalid options is refused."""
    stop = data.get("stop")
    if isinstance(stop, list):
        data = {**data, "stop": tuple(stop)}
    try:
        check_option_names(data)
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
    try:
        return _signature(session, source, version)
    except UnicodeDecodeError:  # onnxruntime decodes names and dimension names only when asked
        raise ModelFileError(
            f"{source}: a graph input or output declares a name or dimension that is not UTF-8 text; the "
            "file is damaged: re-download or re-export it"
        ) from None


def _signature(session: Any, source: str, version: int) -> tuple[tuple[int, ...], int]:
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
    _check_types(session, source, num_layers)
    state_sizes = tuple(inputs[f"h_{layer}"].shape[-1] for layer in range(num_layers))
    vocab_size = outputs[LOGITS].shape[-1]
    if not all(isinstance(n, int) and n > 0 for n in (*state_sizes, vocab_size)):
        raise ModelFileError(f"{source}: the state widths and the vocabulary size must be fixed in the graph")
    declared = {
        name: (item.shape[-1] if item.shape else None)
        for name, item in (*inputs.items(), *outputs.items())
        if name.startswith(("h_", "c_"))
    }
    for layer, width in enumerate(state_sizes):
        names = (f"c_{layer}", f"h_{layer}_out", f"c_{layer}_out")
        if any(declared[name] != width for name in names):
            raise ModelFileError(
                f"{source}: layer {layer} declares h_{layer} {width} wide but "
                + ", ".join(f"{name} {declared[name]}" for name in names)
                + "; h and c of a layer, in and out, must have one width"
            )
    if has_logits_from and (inputs[LOGITS_FROM].type != "tensor(int64)" or inputs[LOGITS_FROM].shape):
        raise ModelFileError(f"{source}: the graph input {LOGITS_FROM!r} must be an int64 scalar")
    return state_sizes, vocab_size


def _element_type(declared: str) -> str | None:
    """numpy's name for the elements of onnxruntime's ``tensor(float)``...; None for a type that is not
    a tensor's."""
    if not (declared.startswith("tensor(") and declared.endswith(")")):
        return None
    inner = declared[len("tensor(") : -1]
    return {"float": "float32", "double": "float64"}.get(inner, inner)


def _check_types(session: Any, source: str, num_layers: int) -> None:
    """The element types the graph declares for what nextword feeds it and reads back: input_ids int64,
    the state float32 in and out, logits float32 (logits_from: checked with its shape)."""
    inputs = {i.name: i.type for i in session.get_inputs()}
    outputs = {o.name: o.type for o in session.get_outputs()}
    expected = [(INPUT_IDS, "int64", True), *((n, "float32", True) for n in state_input_names(num_layers))]
    expected += [(n, "float32", False) for n in (LOGITS, *state_output_names(num_layers))]
    for name, want, is_input in expected:
        got = _element_type((inputs if is_input else outputs)[name])
        if got == want:
            continue
        fix = (
            "the file was converted to float16 with its inputs and outputs; convert it with "
            "keep_io_types=True (onnxconverter-common's float16.convert_float_to_float16), which keeps "
            "them float32"
            if got == "float16"
            else "a tool changed the types the graph declares; load the file `nextword export` wrote"
        )
        raise ModelFileError(
            f"{source}: the graph's {'input' if is_input else 'output'} {name!r} is "
            f"{got or 'a non-tensor value'}, not {want} (nextword feeds input_ids as int64 and the state "
            f"h_i, c_i as float32, and reads every output as float32): {fix}"
        )
