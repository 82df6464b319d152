"""Damaged and doctored model files, and what the Python runtime says about each, for nextword-web's
model-file parity test (tests/test_web.py runs web/test/parity-files.test.js against it)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(key: bytes, value: bytes) -> bytes:
    return _field(14, _field(1, key) + _field(2, value))


def model_file_reference(model_path: Path, examples: int = 300) -> dict[str, Any]:
    """Damaged and doctored model files, and what the Python runtime says about each.

    ``files``: whole loads (``load``), including what read_model_info checks after onnxruntime; ``checks``:
    truncations and bit flips through ``check_model_file`` alone (onnxruntime-web and onnxruntime may
    disagree on a damaged graph that passes the checks, which is not this package's to mirror).
    """
    import onnx

    from nextword.runtime import LoadLimits, ModelFileError, load
    from nextword.runtime.model_check import check_model_file

    valid = model_path.read_bytes()

    def proto() -> onnx.ModelProto:
        return onnx.load_from_string(valid)

    def with_meta(key: str, value: str | None, **more: str) -> bytes:
        changes = {key: value, **{k.replace("_", "."): v for k, v in more.items()}}  # nextword_cache=...
        p = proto()
        kept = [(m.key, m.value) for m in p.metadata_props if m.key not in changes]
        del p.metadata_props[:]
        for k, v in kept + [(k, v) for k, v in changes.items() if v is not None]:
            p.metadata_props.add(key=k, value=v)
        return p.SerializeToString()

    def doctored(change: Callable[[onnx.ModelProto], None]) -> bytes:
        p = proto()
        change(p)
        return p.SerializeToString()

    tok = json.loads(next(m.value for m in proto().metadata_props if m.key == "nextword.tokenizer"))
    files: list[tuple[str, bytes, dict[str, Any]]] = [
        ("valid", valid, {}),
        ("format 4", with_meta("nextword.format_version", "4"), {}),
        ("format x", with_meta("nextword.format_version", "x" * 100), {}),
        ("format 1 with logits_from", with_meta("nextword.format_version", "1"), {}),
        ("format 10 digits", with_meta("nextword.format_version", "0000000002"), {}),
        ("no format", with_meta("nextword.format_version", None), {}),
        ("no tokenizer", with_meta("nextword.tokenizer", None), {}),
        ("tokenizer not JSON", with_meta("nextword.tokenizer", "{nope"), {}),
        ("tokenizer nested", with_meta("nextword.tokenizer", "[" * 100_000), {}),
        (
            "tokenizer duplicate",
            with_meta("nextword.tokenizer", json.dumps({**tok, "tokens": tok["tokens"] + ["the"]})),
            {},
        ),
        (
            "tokenizer short",
            with_meta("nextword.tokenizer", json.dumps({**tok, "tokens": tok["tokens"][:-1]})),
            {},
        ),
        ("tokenizer over cap", valid, {"max_tokenizer_bytes": 100}),
        ("file over cap", valid, {"max_file_bytes": 1000}),
        ("config not JSON", with_meta("nextword.config", "{"), {}),
        ("config nested", with_meta("nextword.config", "[" * 100_000), {}),
        ("config huge int", with_meta("nextword.config", "1" * 5000), {}),
        ("config a list", with_meta("nextword.config", "[1, 2]"), {}),
        ("metrics over cap", with_meta("nextword.metrics", json.dumps({"x": "é" * 600_000})), {}),
        (
            "metrics cap raised",
            with_meta("nextword.metrics", json.dumps({"x": "é" * 600_000})),
            {"max_metadata_bytes": 4 * 2**20},
        ),
        ("metrics NaN", with_meta("nextword.metrics", '{"loss": NaN}'), {}),
        (
            "value not UTF-8",
            with_meta("nextword.metrics", None) + _entry(b"nextword.metrics", b'{"a": "\xff"}'),
            {},
        ),
        ("key not UTF-8", valid + _entry(b"bad\xc3(", b"x"), {}),
        ("duplicate key", valid + _entry(b"nextword.format_version", b"2"), {}),
        ("IR 9", doctored(lambda p: setattr(p, "ir_version", 9)), {}),
        ("IR 9 allowed", doctored(lambda p: setattr(p, "ir_version", 9)), {"ir_versions": (7, 9)}),
        (
            "opset 12",
            doctored(
                lambda p: [
                    o.__setattr__("version", 12) for o in p.opset_import if o.domain in ("", "ai.onnx")
                ]
            ),
            {},
        ),
        (
            "no default opset",
            doctored(
                lambda p: [
                    o.__setattr__("domain", "x.y") for o in p.opset_import if o.domain in ("", "ai.onnx")
                ]
            ),
            {},
        ),
        ("op Softmax", doctored(lambda p: setattr(p.graph.node[0], "op_type", "Softmax")), {}),
        (
            "op Softmax allowed",
            doctored(lambda p: setattr(p.graph.node[0], "op_type", "Softmax")),
            {"allowed_ops": frozenset({("", "Softmax")})},
        ),
        ("external data", doctored(_externalize), {}),
        ("function", doctored(lambda p: p.functions.add(name="f", domain="x")), {}),
        ("training info", doctored(lambda p: p.training_info.add()), {}),
        ("no graph", doctored(lambda p: p.ClearField("graph")), {}),
        ("groups", valid + b"\x0b\x0c", {}),
        ("wrong wire type", valid + b"\x38\x01", {}),
        ("long varint", valid + b"\x08" + b"\xff" * 10 + b"\x01", {}),
        ("field 0", valid + b"\x02\x00", {}),
        ("empty", b"", {}),
        ("random", bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8)), {}),
    ]
    files += _crafted(proto, model_path)
    files += tool_files(model_path)
    files += _not_utf8_names(proto)
    for name, value in [
        ("missing key", '{"theta": 1.0, "mix": 0.2}'),
        ("unknown key", '{"theta": 1.0, "mix": 0.2, "window": 8, "Lambda": 1, "alpha": 2}'),
        ("mix 1", '{"theta": 1.0, "mix": 1, "window": 8}'),
        ("mix 1.5", '{"theta": 1.0, "mix": 1.5, "window": 8}'),
        ("negative theta", '{"theta": -2, "mix": 0.2, "window": 8}'),
        ("bool theta", '{"theta": true, "mix": 0.2, "window": 8}'),
        ("NaN mix", '{"theta": 1.0, "mix": NaN, "window": 8}'),
        ("string theta", '{"theta": "' + "x" * 100 + '", "mix": 0.2, "window": 8}'),
        ("float window", '{"theta": 1.0, "mix": 0.2, "window": 8.0}'),
        ("window 0", '{"theta": 1.0, "mix": 0.2, "window": 0}'),
        ("window 5000", '{"theta": 1.0, "mix": 0.2, "window": 5000}'),
        ("tuning a list", '{"theta": 1.0, "mix": 0.2, "window": 8, "tuning": []}'),
        ("tuning null", '{"theta": 1.0, "mix": 0.2, "window": 8, "tuning": null}'),
        ("a list", "[]"),
        ("empty", "{}"),
        ("good", '{"theta": 0.5, "mix": 0.1, "window": 64, "tuning": {"words": 10}}'),
        ("no tuning", '{"theta": 0.5, "mix": 0.1, "window": 64}'),
        ("similarity euclid", '{"theta": 1.0, "mix": 0.2, "window": 8, "similarity": "euclid"}'),
        ("similarity null", '{"theta": 1.0, "mix": 0.2, "window": 8, "similarity": null}'),
        ("similarity a list", '{"theta": 1.0, "mix": 0.2, "window": 8, "similarity": ["cosine"]}'),
        ("mix and gate", '{"theta": 1.0, "mix": 0.2, "gate": [-1, 0.5], "window": 8}'),
        ("neither mix nor gate", '{"theta": 1.0, "window": 8}'),
        ("null mix, null gate", '{"theta": 1.0, "mix": null, "gate": null, "window": 8}'),
        ("gate a number", '{"theta": 1.0, "gate": 3, "window": 8}'),
        ("gate a string", '{"theta": 1.0, "gate": "ab", "window": 8}'),
        ("gate an object", '{"theta": 1.0, "gate": {"a": 1, "b": 2}, "window": 8}'),
        ("gate of three", '{"theta": 1.0, "gate": [1, 2, 3], "window": 8}'),
        ("gate NaN", '{"theta": 1.0, "gate": [NaN, 1], "window": 8}'),
        ("gate bool", '{"theta": 1.0, "gate": [0, true], "window": 8}'),
        ("gate nested", '{"theta": 1.0, "gate": [[1], 2], "window": 8}'),
        ("gate with a bad mix", '{"theta": 1.0, "gate": [1, 2], "mix": 2, "window": 8}'),
        ("gate with a bad theta", '{"theta": "x", "gate": [1, 2], "window": 8}'),
        ("good gated cosine", '{"theta": 10, "gate": [-7.62, 0.814], "window": 256, "similarity": "cosine"}'),
        ("good gate, null mix", '{"theta": 2, "mix": null, "gate": [1, 0], "window": 8, "tuning": {}}'),
        ("good cosine mix", '{"theta": 3.5, "mix": 0.25, "window": 16, "similarity": "cosine"}'),
        ("theta of 401 digits", '{"theta": 1' + "0" * 400 + ', "mix": 0.2, "window": 8}'),
        ("mix of 401 digits", '{"theta": 1.0, "mix": -1' + "0" * 400 + ', "window": 8}'),
        ("gate of 401 digits", '{"theta": 1.0, "gate": [1, 9' + "0" * 400 + '], "window": 8}'),
    ]:
        files.append((f"cache: {name}", with_meta("nextword.cache", value), {}))
    gated = '{"theta": 10, "gate": [-7.62, 0.814], "window": 256, "similarity": "cosine"}'
    files.append(
        ("format 3, gated cosine", with_meta("nextword.format_version", "3", nextword_cache=gated), {})
    )
    for name, value in [
        ("float max_words", '{"max_words": 1.5}'),
        ("unknown option", '{"max_words": 5, "beam": 2, "Zed": 1}'),
        ("fixed seed", '{"seed": 3}'),
        ("empty stop", '{"stop": ["a", ""]}'),
        ("one empty stop", '{"stop": [""]}'),
        ("stop string", '{"stop": ".", "min_words": 3}'),
        ("NaN temperature", '{"temperature": NaN}'),
        ("temperature of 401 digits", '{"temperature": 1' + "0" * 400 + "}"),
        ("length_penalty of 401 digits", '{"length_penalty": -1' + "0" * 400 + "}"),
        ("top_k 0", '{"top_k": 0}'),
        ("top_k -1", '{"top_k": -1}'),
        ("bool top_k", '{"top_k": true}'),
        ("min over max", '{"max_words": 10, "min_words": 11}'),
        ("beams and sampling", '{"num_beams": 2, "top_k": 5, "temperature": 0.5}'),
        ("beams returns", '{"num_beams": 2, "num_return_sequences": 4}'),
        ("string penalty", '{"repetition_penalty": "1.2"}'),
        ("null stop_at_end", '{"stop_at_end": null}'),
        ("list", "[]"),
        ("good", '{"no_repeat_ngram_size": 3, "top_p": 0.9, "temperature": 0.7, "stop": ["\\n"]}'),
    ]:
        files.append((f"generation: {name}", with_meta("nextword.generation", value), {}))
    out_files = []
    for name, data, limits in files:
        read = None  # what a file that loads says about itself
        try:
            loaded = load(data, limits=LoadLimits(**limits))
            message = None
        except ModelFileError as exc:
            message = str(exc)
        else:
            settings = loaded.cache_settings
            read = {
                "format_version": loaded.info.format_version,
                "cache": None if settings is None else settings.to_dict(),
            }
            try:
                loaded.generate("the network", max_words=3, temperature=0)
            except ModelFileError as exc:  # a ModelRunError: the graph breaks after the probe
                message = f"generate: {exc}"
        limits = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in limits.items()}
        out_files.append(
            {
                "name": name,
                "data": base64.b64encode(data).decode(),
                "limits": limits,
                "message": message,
                "read": read,
            }
        )

    rng = np.random.default_rng(17)
    damaged = [valid[: int(cut)] for cut in rng.integers(1, len(valid), examples // 3)]
    for _ in range(examples - len(damaged)):
        flipped = bytearray(valid)
        for _ in range(int(rng.integers(1, 4))):
            where = rng.random()  # the header and graph start, the metadata at the end, anywhere
            low = 0 if where < 0.4 else max(0, len(valid) - 8192) if where < 0.8 else 0
            high = 2048 if where < 0.4 else len(valid)
            position = int(rng.integers(low, high))
            flipped[position] ^= 1 << int(rng.integers(0, 8))
        damaged.append(bytes(flipped))
    checks = []
    for data in damaged:
        try:
            check_model_file(data)
            message = None
        except ModelFileError as exc:
            message = str(exc)
        try:
            load(data)
            loads, refusal = True, None
        except ModelFileError as exc:
            loads, refusal = False, str(exc)
        checks.append(
            {"data": base64.b64encode(data).decode(), "message": message, "loads": loads, "refusal": refusal}
        )
    return {"files": out_files, "checks": checks}


def _crafted(proto: Callable, model_path: Path) -> list[tuple[str, bytes, dict[str, Any]]]:
    """Graphs that pass the file checks and are caught by the probe step, or later (tests/crafted.py),
    with the graph bounds off in both runtimes (``bound_graph=False``, nextword-web's ``boundGraph:
    false``): the probe must catch what the bounds would have."""
    import crafted

    from nextword.runtime import load

    vocab = load(model_path).vocab_size
    unbounded = {"bound_graph": False}
    cases = [
        ("crafted: logits wider than declared", crafted.hidden_logits_width(proto(), vocab - 10)),
        ("crafted: embedding shorter than the vocabulary", crafted.short_embedding(proto(), vocab - 5)),
        ("crafted: fails below a batch of two", crafted.fails_below_batch_two(proto())),
        ("crafted: declared widths disagree", crafted.declare_width(proto(), ("c_0",), 24)),
        ("crafted: scores no trained model makes", crafted.huge_scores(proto())),
    ]
    return [(name, p.SerializeToString(), unbounded) for name, p in cases]


_MARK = b"zzNOTUTF8zz"  # written as a name by onnx, then made invalid UTF-8 in the bytes
_BAD = b"zz\xffOTUTF8zz"


def _not_utf8_names(proto: Callable) -> list[tuple[str, bytes, dict[str, Any]]]:
    """Graph input/output names and dimension names that are not UTF-8: the Python runtime refuses those
    its signature check decodes (session inputs and outputs, the shapes it looks at) and no others. (A
    session input or output whose own name is not UTF-8 is refused before, by the graph analysis, with a
    message of its own.)"""
    import onnx

    def named(p, name):
        return next(v for v in (*p.graph.input, *p.graph.output) if v.name == name)

    def dim_param(name: str, index: int = 0) -> Callable:
        return lambda p: setattr(
            named(p, name).type.tensor_type.shape.dim[index], "dim_param", _MARK.decode()
        )

    def extra_input(p) -> None:
        p.graph.input.append(onnx.helper.make_tensor_value_info(_MARK.decode(), onnx.TensorProto.FLOAT, [1]))

    def initializer_input(p) -> None:
        extra_input(p)
        p.graph.initializer.append(
            onnx.helper.make_tensor(_MARK.decode(), onnx.TensorProto.FLOAT, [1], [0.5])
        )

    cases = [
        ("dimension of h_0", dim_param("h_0")),
        ("dimension of c_0", dim_param("c_0")),
        ("dimension of logits", dim_param("logits", 1)),
        ("dimension of c_1_out", dim_param("c_1_out")),
        ("dimension of input_ids", dim_param("input_ids")),
        ("an initializer's input name", initializer_input),
    ]
    out = []
    for name, change in cases:
        p = proto()
        change(p)
        data = p.SerializeToString()
        assert _MARK in data
        out.append((f"not UTF-8: {name}", data.replace(_MARK, _BAD), {}))
    return out


def _externalize(p) -> None:
    from onnx.external_data_helper import set_external_data

    tensor = max(p.graph.initializer, key=lambda t: len(t.raw_data))
    set_external_data(tensor, location="weights.bin")
    tensor.data_location = 1  # EXTERNAL


def retyped_io(p, names: list[str] | None = None, elem_type: int = 10) -> None:
    """Declare the graph inputs and outputs ``names`` (default: every float one) as ``elem_type``
    (float16), with a Cast to or from the graph's own type beside each: the signature
    onnxconverter-common's convert_float_to_float16(keep_io_types=False) writes, by hand."""
    from onnx import helper

    declared = [*p.graph.input, *p.graph.output]
    if names is None:
        names = [v.name for v in declared if v.type.tensor_type.elem_type == 1]
    inputs = {v.name for v in p.graph.input}
    before, after = [], []
    for value in [v for v in declared if v.name in names]:
        inner, own = f"{value.name}__inner", value.type.tensor_type.elem_type
        for node in p.graph.node:
            node.input[:] = [inner if n == value.name else n for n in node.input]
            node.output[:] = [inner if n == value.name else n for n in node.output]
        if value.name in inputs:
            before.append(helper.make_node("Cast", [value.name], [inner], to=own))
        else:
            after.append(helper.make_node("Cast", [inner], [value.name], to=elem_type))
        value.type.tensor_type.elem_type = elem_type
    nodes = before + list(p.graph.node) + after
    del p.graph.node[:]
    p.graph.node.extend(nodes)


def tool_outputs(model_path: Path, folder: Path) -> dict[str, Path]:
    """The tiny model through onnxruntime's tools, as users run them: quantize_dynamic (signed int8
    weights, as it writes them), `nextword export --int8`'s quantization re-saved by onnxruntime's graph
    optimizer (optimized_model_filepath, basic and extended levels), static quantization (QDQ and
    QOperator formats), and 4-bit MatMulNBits
    where onnxruntime's quantizer for it can be imported (it needs onnx_ir)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from nextword.export.quantize import quantize_int8

    names = ("int8", "nextword int8", "ort basic", "ort extended", "qdq", "qoperator", "4bit")
    out = {name: folder / f"{name}.onnx" for name in names}
    quantize_dynamic(str(model_path), str(out["int8"]), weight_type=QuantType.QInt8)
    exported = quantize_int8(onnx_load(model_path))  # what `nextword export --int8` writes
    exported.metadata_props.extend(onnx_load(model_path).metadata_props)
    onnx.save(exported, str(out["nextword int8"]))
    for level in ("basic", "extended"):
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level.upper()}")
        options.optimized_model_filepath = str(out[f"ort {level}"])
        ort.InferenceSession(str(out["nextword int8"]), options, providers=["CPUExecutionProvider"])
    for name, form in (("qdq", QuantFormat.QDQ), ("qoperator", QuantFormat.QOperator)):
        quantize_static(str(model_path), str(out[name]), _Calibration(model_path), quant_format=form)
    try:  # needs onnx_ir, which onnxruntime does not require
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError:
        del out["4bit"]
        return out
    quantizer = MatMulNBitsQuantizer(onnx_load(model_path), block_size=16, is_symmetric=True)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out["4bit"]), False)
    return out


def onnx_load(path: Path):
    import onnx

    return onnx.load(str(path))


class _Calibration:
    """Calibration steps for quantize_static: a few token ids, zero state, every position's logits."""

    def __init__(self, model_path: Path) -> None:
        import onnxruntime as ort

        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = []
        for _ in range(4):
            feed = {}
            for item in session.get_inputs():
                if item.name == "input_ids":
                    feed[item.name] = rng.integers(0, 20, (1, 6)).astype(np.int64)
                elif item.name == "logits_from":
                    feed[item.name] = np.array(0, np.int64)
                else:
                    feed[item.name] = np.zeros((1, item.shape[-1]), np.float32)
            feeds.append(feed)
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def ids_to_logits() -> bytes:
    """Another toolkit's language model: input_ids in, logits out, no LSTM state, no nextword metadata."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)],
        "other",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def tool_files(model_path: Path) -> list[tuple[str, bytes, dict[str, Any]]]:
    """Files common ONNX tools make of the tiny model, with their refusals (or not) in both runtimes."""
    import tempfile

    import onnx

    from nextword.runtime.limits import DEFAULT_ALLOWED_OPS

    original = onnx_load(model_path)

    def edited(change: Callable) -> bytes:
        p = onnx_load(model_path)
        change(p)
        return p.SerializeToString()

    def rebuilt(p) -> None:  # onnx.helper.make_model(graph): no metadata, the newest IR version
        p.CopyFrom(onnx.helper.make_model(p.graph, opset_imports=list(p.opset_import)))

    def logits_renamed(p) -> None:
        del p.metadata_props[:]
        next(v for v in p.graph.output if v.name == "logits").name = "scores"

    def with_metadata(p) -> None:
        rebuilt(p)
        p.metadata_props.extend(original.metadata_props)

    def initializers_as_inputs(p) -> None:  # keep_initializers_as_inputs (IR 3 exporters), metadata lost
        del p.metadata_props[:]
        listed = {v.name for v in p.graph.input}
        for tensor in p.graph.initializer:
            if tensor.name not in listed:
                p.graph.input.append(
                    onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
                )

    files: list[tuple[str, bytes, dict[str, Any]]] = [
        ("tool: metadata dropped", edited(lambda p: p.ClearField("metadata_props")), {}),
        ("tool: initializers listed as inputs, metadata dropped", edited(initializers_as_inputs), {}),
        ("tool: input_ids to logits alone, no metadata", ids_to_logits(), {}),
        ("tool: float64 c_0", edited(lambda p: retyped_io(p, ["c_0"], 11)), {}),
        ("tool: rebuilt with make_model", edited(rebuilt), {}),
        ("tool: metadata dropped, not a step graph", edited(logits_renamed), {}),
        ("tool: make_model, metadata copied back", edited(with_metadata), {}),
        ("tool: IR 6", edited(lambda p: setattr(p, "ir_version", 6)), {}),
        ("tool: float16 inputs and outputs", edited(retyped_io), {}),
        ("tool: float16 c_0_out", edited(lambda p: retyped_io(p, ["c_0_out"])), {}),
        ("tool: int32 input_ids", edited(lambda p: retyped_io(p, ["input_ids"], 6)), {}),
    ]
    with tempfile.TemporaryDirectory() as folder:
        out = tool_outputs(model_path, Path(folder))
        for name, path in out.items():
            files.append((f"tool: {name}", path.read_bytes(), {}))
        widened = {"allowed_ops": DEFAULT_ALLOWED_OPS | {("", "QuantizeLinear")}}
        files.append(("tool: ort basic, allowed_ops widened", out["ort basic"].read_bytes(), widened))
        widened["bound_graph"] = False
        files.append(("tool: ort basic, both limits widened", out["ort basic"].read_bytes(), widened))
    return files
