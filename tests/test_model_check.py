"""Untrusted model files: each refusal of ``check_model_file``, with its message, before onnxruntime runs.

Bad files are built from the exported tiny model with the ``onnx`` package (tests may use it; the runtime
may not), or byte by byte where ``onnx`` cannot write the defect (invalid UTF-8, duplicate keys, groups).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import run_python
from nextword.runtime import LoadLimits, ModelFileError, load, onnx_proto, wire
from nextword.runtime import model_check as model_check_module
from nextword.runtime.model_check import DEFAULT_ALLOWED_OPS, MiB, check_model_file

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the bad files")
from onnx import TensorProto, helper  # noqa: E402
from onnx.external_data_helper import set_external_data  # noqa: E402

# --------------------------------------------------------------------------- helpers


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _metadata_entry(key: bytes, value: bytes) -> bytes:
    """A ModelProto.metadata_props entry (field 14) with raw key/value bytes."""
    return _field(14, _field(1, key) + _field(2, value))


def _proto(model_path: Path) -> onnx.ModelProto:
    return onnx.load(str(model_path))


def _set_meta(proto: onnx.ModelProto, key: str, value: str) -> onnx.ModelProto:
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
            return proto
    proto.metadata_props.add(key=key, value=value)
    return proto


def _without_meta(proto: onnx.ModelProto, key: str) -> onnx.ModelProto:
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != key]
    del proto.metadata_props[:]
    for k, v in kept:
        proto.metadata_props.add(key=k, value=v)
    return proto


@pytest.fixture
def no_onnxruntime(monkeypatch):
    """Fail the test if anything creates an onnxruntime session."""
    import onnxruntime

    def refuse(*args, **kwargs):
        raise AssertionError("onnxruntime.InferenceSession was called on a file the check should refuse")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


def _refused(data: bytes, match: str, limits: LoadLimits | None = None) -> str:
    """``load`` refuses ``data`` with a message matching ``match``; return the message."""
    with pytest.raises(ModelFileError, match=match) as info:
        load(data, limits=limits)
    return str(info.value)


# --------------------------------------------------------------------------- what passes


def test_exported_model_passes_and_bytes_are_unchanged(model_path):
    data = model_path.read_bytes()
    assert check_model_file(model_path) == data
    assert check_model_file(data) == data
    assert check_model_file(str(model_path)) == data


def test_quantized_model_passes_and_generates(model_path, tmp_path):
    """The allowlist holds what onnxruntime's quantize_dynamic makes of our graph."""
    quantization = pytest.importorskip("onnxruntime.quantization")
    out = tmp_path / "q8.onnx"
    quantization.quantize_dynamic(str(model_path), str(out), weight_type=quantization.QuantType.QInt8)
    ops = {(n.domain, n.op_type) for n in _proto(out).graph.node}
    assert ("com.microsoft", "DynamicQuantizeLSTM") in ops and ("", "MatMulInteger") in ops
    quantized = load(out)
    assert quantized.vocab_size == load(model_path).vocab_size
    assert isinstance(quantized.generate("the network", max_words=5, seed=0), str)


# --------------------------------------------------------------------------- size, empty, corrupt


def test_file_over_the_size_cap_is_refused_from_stat_alone(tmp_path, monkeypatch, no_onnxruntime):
    big = tmp_path / "big.onnx"
    with big.open("wb") as f:
        f.truncate(64 * MiB + 1)  # sparse: costs no disk
    monkeypatch.setattr(model_check_module.os, "open", lambda *a, **k: pytest.fail("the file was opened"))
    with pytest.raises(ModelFileError, match=r"67,108,865 bytes, over the 67,108,864-byte limit") as info:
        load(big)
    assert "max_file_bytes" in str(info.value) and str(big) in str(info.value)


def test_size_cap_applies_to_bytes_and_can_be_raised(model_path, no_onnxruntime):
    data = model_path.read_bytes()
    _refused(data, "over the 1,000-byte limit for model files", LoadLimits(max_file_bytes=1000))
    assert check_model_file(data, LoadLimits(max_file_bytes=len(data))) == data


def test_empty_file(tmp_path, no_onnxruntime):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"empty\.onnx is empty \(0 bytes\); re-download or re-export"):
        load(empty)


def test_an_empty_path_is_named_as_such(no_onnxruntime):
    """Path("") is ".", a folder: the message named "model file ." rather than the empty string given."""
    with pytest.raises(ModelFileError, match=r"^the model file's path is empty; pass the path of a \.onnx"):
        load("")


def test_missing_file_and_folder(tmp_path, no_onnxruntime):
    with pytest.raises(ModelFileError, match=r"missing\.onnx does not exist"):
        load(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match="is not a regular file"):
        load(tmp_path)
    fifo = tmp_path / "fifo.onnx"
    if hasattr(os, "mkfifo"):  # a pipe would block a plain open()
        os.mkfifo(fifo)
        with pytest.raises(ModelFileError, match=r"fifo\.onnx is not a regular file"):
            load(fifo)
    with pytest.raises(ModelFileError) as nul:
        load("bad\x00name.onnx")
    # as nextword-web says it (web/test/unit.test.js)
    assert (
        str(nul.value) == "model file name 'bad\\x00name.onnx' holds a NUL character, which no file name can"
    )


@pytest.mark.parametrize("keep", [1, 10, 100, 0.5, 0.99])
def test_truncated_file(model_path, keep, no_onnxruntime):
    data = model_path.read_bytes()
    cut = data[: keep if isinstance(keep, int) else int(len(data) * keep)]
    message = _refused(cut, "could not be loaded as an ONNX model: it is not a valid ONNX protobuf")
    assert "truncated or corrupted" in message and "<model bytes>" in message


def test_random_bytes(no_onnxruntime):
    rng = np.random.default_rng(0)
    for _ in range(50):
        with pytest.raises(ModelFileError):
            check_model_file(rng.bytes(int(rng.integers(1, 5000))))
    _refused(b"\xff" * 64, "varint longer than 10 bytes")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x0b\x0c", "uses protobuf groups"),  # field 1, wire type 3 (start group)
        (b"\x0c", "uses protobuf groups"),  # field 1, wire type 4 (end group)
        (b"\x0e", "invalid wire type 6"),
        (b"\x3a\x10abc", "runs past the end"),  # graph of 16 bytes, 3 present
        (b"\x3a\xff\xff\xff\xff\x0f", "runs past the end"),  # a 4 GiB length
        (b"\x0a\x01x", "model field 1 has wire type 2, expected 0"),  # ir_version as bytes
        (b"\x00\x01", "invalid field number 0"),
        (b"\x08", "varint runs past the end"),
        (b"\x0d\x01\x02", "fixed-width field 1 runs past the end"),
    ],
)
def test_malformed_wire_format(data, match, no_onnxruntime):
    _refused(data, match)


def test_nesting_depth_is_bounded(no_onnxruntime):
    """Graphs nested through node attributes (the only recursion) stop at MAX_DEPTH."""
    graph = b""
    for _ in range(40):
        attribute = _field(1, b"body") + _field(6, graph)
        graph = _field(1, _field(4, b"Identity") + _field(5, attribute))
    model = (
        b"\x08\x08"  # ir_version 8
        + _field(8, b"\x10\x11")  # opset_import version 17
        + _field(7, graph)
        + _metadata_entry(b"nextword.format_version", b"1")
    )
    _refused(model, f"nested more than {onnx_proto.MAX_DEPTH} deep")


def test_field_count_is_bounded(model_path, monkeypatch, no_onnxruntime):
    monkeypatch.setattr(wire, "MAX_FIELDS", 50)
    _refused(model_path.read_bytes(), "more than 50 protobuf fields")


# --------------------------------------------------------------------------- not ours, wrong version


def test_valid_onnx_that_is_not_a_nextword_model(no_onnxruntime):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    data = helper.make_model(graph).SerializeToString()
    message = _refused(data, "is not a nextword model")
    assert "'nextword.format_version'" in message and "nextword export" in message


@pytest.mark.parametrize(
    ("version", "match"),
    [
        ("4", "uses nextword model format 4; this nextword reads \\[1, 2, 3\\]"),
        ("1_0", "format '1_0'"),
        ("", "''"),
    ],
)
def test_unsupported_format_version(model_path, version, match, no_onnxruntime):
    proto = _set_meta(_proto(model_path), "nextword.format_version", version)
    assert "Upgrade nextword or re-export" in _refused(proto.SerializeToString(), match)


@pytest.mark.parametrize("ir_version", [6, 9, 12])
def test_ir_version_outside_the_tested_range(model_path, ir_version, no_onnxruntime):
    proto = _proto(model_path)
    proto.ir_version = ir_version
    message = _refused(
        proto.SerializeToString(), f"has ONNX IR version {ir_version}; .* accepts IR versions 7-8"
    )
    assert "LoadLimits(ir_versions=...)" in message


@pytest.mark.parametrize("opset", [12, 19, 21])
def test_opset_outside_the_tested_range(model_path, opset, no_onnxruntime):
    proto = _proto(model_path)
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    _refused(proto.SerializeToString(), f"uses ONNX opset {opset}; this nextword accepts opsets 13-18")


def test_a_version_or_operator_refusal_names_the_python_call_and_no_flag_on_the_command_line(
    model_path, tmp_path, capsys
):
    """A limit that --no-size-limits does not lift: load() names the LoadLimits field (a
    ModelLimitError); a command says that no option lifts it, and how to re-export, not LoadLimits alone."""
    from nextword.cli.main import main
    from nextword.runtime import ModelLimitError

    proto = _proto(model_path)
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 19
    path = tmp_path / "opset19.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelLimitError) as refused:
        load(path)
    assert refused.value.limit == "opset_versions"
    assert str(refused.value).endswith(
        "re-export with `nextword export --opset 17`; if you trust the file, widen them with "
        "load(..., limits=LoadLimits(opset_versions=...))"
    )
    for flags in ([], ["--no-size-limits"]):
        assert main(["info", str(path), *flags]) == 2
        err = capsys.readouterr().err
        assert "re-export with `nextword export --opset 17`" in err, err
        assert "no command-line option lifts this check" in err and "--no-size-limits" not in err, err


def test_a_training_run_folder_given_as_the_model_names_the_export_command(run_dir, capsys):
    """load(), info, evaluate and --model on a run folder: the command that makes a model of it, not
    "is not a regular file"."""
    from nextword.cli.main import main

    said = f"{run_dir} is a training run folder, not a model file: export it first, nextword export {run_dir}"
    with pytest.raises(ModelFileError) as refused:
        load(run_dir)
    assert said in str(refused.value)
    for argv in (["info", str(run_dir)], ["generate", "--model", str(run_dir), "a"]):
        assert main(argv) == 2
        assert said in capsys.readouterr().err, argv


def test_a_symbolic_link_loop_as_the_model_is_a_model_file_error(tmp_path, capsys):
    """A link that points to itself: load() says the file cannot be read and why (it said "does not
    exist"), and the commands exit 2 with that (Path.resolve() raised RuntimeError: "failed", exit 1)."""
    from nextword.cli.main import main

    loop = tmp_path / "loop.onnx"
    loop.symlink_to(loop)
    with pytest.raises(ModelFileError, match=rf"model file {loop} cannot be read: \S"):
        load(loop)
    assert main(["generate", "--model", str(loop), "a"]) == 2
    assert f"model file {loop} cannot be read: " in capsys.readouterr().err


def test_an_ort_format_file_is_named_as_one_and_only_a_file_that_is_not_onnx(tmp_path):
    """Bytes 4-8 'ORTM' (onnxruntime's ORT format) in a file that is not protobuf: the format is named;
    the same bytes with one changed are a damaged file, as before (tests/test_ort_format.py converts the
    bundled model)."""
    ort_file = tmp_path / "m.ort"
    ort_file.write_bytes(bytes([0x10, 0, 0, 0]) + b"ORTM" + bytes(4))
    with pytest.raises(ModelFileError, match=r"m\.ort is in onnxruntime's ORT format .*not ONNX"):
        check_model_file(ort_file)
    damaged = tmp_path / "m.onnx"
    damaged.write_bytes(ort_file.read_bytes().replace(b"ORTM", b"OXTM"))
    with pytest.raises(ModelFileError, match="not a valid ONNX protobuf"):
        check_model_file(damaged)


def test_a_cap_the_flag_cannot_lift_is_not_advised_the_flag(tmp_path, capsys):
    """A file over protobuf's 2 GiB with --no-size-limits given: the flag is not advised again."""
    from nextword.cli.main import main

    big = tmp_path / "big.onnx"
    with open(big, "wb") as file:
        file.truncate(3 * 2**30)  # sparse: no disk used
    assert main(["info", str(big), "--no-size-limits"]) == 2
    err = capsys.readouterr().err
    assert "2,147,483,647-byte limit" in err and "add --no-size-limits" not in err, err


def test_missing_default_opset(model_path, no_onnxruntime):
    proto = _proto(model_path)
    kept = [(e.domain, e.version) for e in proto.opset_import if e.domain not in ("", "ai.onnx")]
    del proto.opset_import[:]
    for domain, version in kept:
        proto.opset_import.add(domain=domain, version=version)
    _refused(proto.SerializeToString(), "imports no default ONNX opset")


def test_version_ranges_can_be_widened(model_path):
    proto = _proto(model_path)
    proto.ir_version = 9
    data = proto.SerializeToString()
    with pytest.raises(ModelFileError, match="IR version 9"):
        check_model_file(data)
    assert check_model_file(data, LoadLimits(ir_versions=(7, 9))) == data


# --------------------------------------------------------------------------- external data


def _external_tensor(name: str, location: str) -> onnx.TensorProto:
    """A one-float tensor whose data is said to live in the file ``location``."""
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [1], np.float32([1.0]).tobytes(), raw=True)
    set_external_data(tensor, location=location)
    return tensor


def _with_external_initializer(model_path: Path, location: str) -> bytes:
    proto = _proto(model_path)
    tensor = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    set_external_data(tensor, location=location, offset=0, length=len(tensor.raw_data))
    tensor.ClearField("raw_data")
    return proto.SerializeToString()


def test_external_initializer_escaping_the_folder_never_reaches_onnxruntime(
    model_path, tmp_path, no_onnxruntime
):
    data = _with_external_initializer(model_path, "../../etc/passwd")
    path = tmp_path / "a" / "b" / "evil.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    for source in (path, data):
        with pytest.raises(ModelFileError, match="keeps its data outside the file") as info:
            load(source)
        message = str(info.value)
        assert "(initializer)" in message and "'../../etc/passwd'" in message and "nextword export" in message


def test_external_data_flag_or_entry_alone_is_refused(model_path, no_onnxruntime):
    proto = _proto(model_path)
    proto.graph.initializer[0].data_location = TensorProto.EXTERNAL  # no external_data entries
    _refused(proto.SerializeToString(), "keeps its data outside the file")
    proto = _proto(model_path)
    proto.graph.initializer[0].external_data.add(key="checksum", value="0")  # entry, DEFAULT location
    _refused(proto.SerializeToString(), "keeps its data outside the file")


def test_external_data_in_a_node_attribute(model_path, no_onnxruntime):
    proto = _proto(model_path)
    value = _external_tensor("c", "/etc/shadow")
    proto.graph.node.append(helper.make_node("Constant", [], ["unused_c"], value=value))
    message = _refused(proto.SerializeToString(), r"tensor 'c' \(an attribute of a Constant node\)")
    assert "'/etc/shadow'" in message


def test_external_data_in_a_sparse_initializer(model_path, no_onnxruntime):
    proto = _proto(model_path)
    values = _external_tensor("sv", "secret.bin")
    indices = helper.make_tensor("si", TensorProto.INT64, [1], [0])
    proto.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    _refused(proto.SerializeToString(), r"tensor 'sv' \(sparse initializer\)")


def test_external_data_in_a_subgraph(model_path, no_onnxruntime):
    proto = _proto(model_path)
    inner = _external_tensor("deep", "../x")
    branch = helper.make_graph(
        [], "branch", [], [helper.make_tensor_value_info("deep", TensorProto.FLOAT, [1])], [inner]
    )
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    proto.graph.initializer.append(cond)
    proto.graph.node.append(
        helper.make_node("If", ["cond"], ["unused_if"], then_branch=branch, else_branch=branch)
    )
    limits = LoadLimits(allowed_ops=DEFAULT_ALLOWED_OPS | {("", "If")})  # else If itself is refused
    _refused(proto.SerializeToString(), r"tensor 'deep' \(initializer\) keeps its data outside", limits)


# --------------------------------------------------------------------------- operators, functions


@pytest.mark.parametrize(
    ("domain", "op", "shown"),
    [("", "Loop", "'Loop'"), ("", "Upsample", "'Upsample'"), ("com.evil", "Run", "'com.evil:Run'")],
)
def test_operator_outside_the_allowlist(model_path, domain, op, shown, no_onnxruntime):
    proto = _proto(model_path)
    proto.graph.node.append(helper.make_node(op, ["input_ids"], ["unused"], domain=domain))
    message = _refused(
        proto.SerializeToString(),
        f"uses the operator {shown}, which neither `nextword export` nor onnxruntime's quantize_dynamic "
        "writes",
    )
    widened = "{(" + ", ".join(repr(part) for part in (domain, op)) + ")}"
    assert f"LoadLimits(allowed_ops=DEFAULT_ALLOWED_OPS | {widened}, bound_graph=False)" in message


def test_ai_onnx_domain_is_the_default_domain(model_path):
    proto = _proto(model_path)
    for node in proto.graph.node:
        node.domain = "ai.onnx" if node.domain == "" else node.domain
    check_model_file(proto.SerializeToString())


def test_model_local_functions_and_training_info(model_path, no_onnxruntime):
    proto = _proto(model_path)
    proto.functions.append(
        helper.make_function("custom", "f", ["x"], ["y"], [helper.make_node("Identity", ["x"], ["y"])], [])
    )
    _refused(proto.SerializeToString(), "contains model-local functions, which nextword model files never")
    proto = _proto(model_path)
    proto.training_info.add()
    _refused(proto.SerializeToString(), "contains training information")


def test_model_without_a_graph(model_path, no_onnxruntime):
    proto = _proto(model_path)
    proto.ClearField("graph")
    _refused(proto.SerializeToString(), "has no graph")


# --------------------------------------------------------------------------- metadata


def test_metadata_value_that_is_not_utf8(model_path, no_onnxruntime):
    base = _without_meta(_proto(model_path), "nextword.metrics").SerializeToString()
    data = base + _metadata_entry(b"nextword.metrics", b'{"a": "\xff\xfe"}')
    _refused(data, r"metadata 'nextword.metrics' is not valid UTF-8 \(byte 7\)")


def test_metadata_key_that_is_not_utf8(model_path, no_onnxruntime):
    data = _proto(model_path).SerializeToString() + _metadata_entry(b"bad\xc3", b"x")
    _refused(data, "a metadata key \\('bad\ufffd'\\) is not valid UTF-8")


def test_duplicate_metadata_key(model_path, no_onnxruntime):
    data = _proto(model_path).SerializeToString() + _metadata_entry(b"nextword.format_version", b"1")
    _refused(data, "metadata key 'nextword.format_version' appears more than once")


def test_tokenizer_over_the_cap(model_path, no_onnxruntime):
    proto = _proto(model_path)
    size = len(next(p.value for p in proto.metadata_props if p.key == "nextword.tokenizer").encode())
    message = _refused(
        proto.SerializeToString(),
        f"tokenizer is {size:,} bytes, over the 100-byte limit",
        LoadLimits(max_tokenizer_bytes=100),
    )
    assert "max_tokenizer_bytes" in message
    huge = json.dumps({"format": "nextword.tokenizer", "pad": "x" * (4 * MiB)})
    _refused(
        _set_meta(proto, "nextword.tokenizer", huge).SerializeToString(), "over the 4,194,304-byte limit"
    )


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("[" * 100_000, "is JSON nested too deeply"),
        ("1" * 5000, "is not valid JSON"),
        ("{", "is not valid JSON"),
    ],
)
def test_metadata_json_that_python_cannot_read(model_path, value, match, no_onnxruntime):
    proto = _set_meta(_proto(model_path), "nextword.config", value)
    _refused(proto.SerializeToString(), f"metadata 'nextword.config' {match}")


def test_deeply_nested_tokenizer_json_is_a_model_file_error(model_path):
    proto = _set_meta(_proto(model_path), "nextword.tokenizer", "[" * 100_000)
    with pytest.raises(ModelFileError, match="tokenizer is invalid: tokenizer JSON is nested too deeply"):
        load(proto.SerializeToString())


# --------------------------------------------------------------------------- limits, isolation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_file_bytes": 0},
        {"max_tokenizer_bytes": True},
        {"ir_versions": (8, 7)},
        {"opset_versions": [13, 18]},
        {"allowed_ops": {("", "Add")}},
    ],
)
def test_load_limits_are_validated(kwargs):
    with pytest.raises(ValueError, match=f"LoadLimits.{next(iter(kwargs))}"):
        LoadLimits(**kwargs)


def test_check_runs_without_onnx_or_the_training_stack(model_path):
    code = (
        "import sys\n"
        "from nextword.runtime.model_check import check_model_file\n"
        "data = check_model_file(sys.argv[1])\n"
        "loaded = sorted(m for m in sys.modules if m.partition('.')[0] in {'onnx', 'google', 'tensorflow'})\n"
        "assert not loaded, loaded\n"
        "print('ok', len(data))\n"
    )
    result = run_python(code, str(model_path), block_training_stack=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")
