"""Model files through the common ONNX tools: what keeps a file loadable, with the same greedy text, and
what does not, refused with a message that names what the tool did and the fix.

nextword-web gives the same refusals in the same words: tests/web_files_reference.py's ``tool_files``
puts these files through both runtimes (tests/test_web.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from web_files_reference import ids_to_logits, retyped_io, tool_outputs

from nextword.runtime import LoadLimits, ModelFileError, ModelLimitError, load
from nextword.runtime.limits import DEFAULT_ALLOWED_OPS

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to transform the files")
ort = pytest.importorskip("onnxruntime")

PROMPTS = ("the network", "a neural network")
GREEDY = {"temperature": 0, "max_words": 12, "seed": 0, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
CHECK_LOGGER = "nextword.runtime.model_check"


def greedy(source: Path | bytes, limits: LoadLimits | None = None) -> list[str]:
    model = load(source, limits=limits)
    return [model.generate(prompt, **GREEDY) for prompt in PROMPTS]


def refusal(source: Path | bytes, limits: LoadLimits | None = None) -> str:
    with pytest.raises(ModelFileError) as refused:
        load(source, limits=limits)
    return str(refused.value)


def saved(proto, path: Path) -> Path:
    onnx.save(proto, str(path))
    return path


def optimized(source: Path, out: Path, level: str) -> Path:
    """``source`` as onnxruntime's graph optimizer saves it (SessionOptions.optimized_model_filepath)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level.upper()}")
    options.optimized_model_filepath = str(out)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return out


@pytest.fixture(scope="module")
def tools(model_path, tmp_path_factory) -> dict[str, Path]:
    return tool_outputs(model_path, tmp_path_factory.mktemp("tools"))


@pytest.fixture(scope="module")
def text(model_path) -> list[str]:
    return greedy(model_path)


# --------------------------------------------------------------------------- what keeps a file loadable


def test_common_transformations_keep_the_file_loadable_with_the_same_text(model_path, text, tmp_path, caplog):
    from onnx import shape_inference, version_converter

    original = str(model_path)
    made = {
        "load and save": saved(onnx.load(original), tmp_path / "rt.onnx"),
        "infer_shapes": saved(shape_inference.infer_shapes(onnx.load(original)), tmp_path / "shapes.onnx"),
        "opset 18": saved(version_converter.convert_version(onnx.load(original), 18), tmp_path / "18.onnx"),
    }
    for level in ("basic", "extended", "all"):
        made[f"optimized ({level})"] = optimized(model_path, tmp_path / f"ort-{level}.onnx", level)
    with caplog.at_level("WARNING", logger=CHECK_LOGGER):
        for what, path in made.items():
            assert greedy(path) == text, what
    assert not caplog.records


def test_quantize_dynamic_keeps_the_file_loadable_and_store_weights_unsigned_ends_the_warning(
    tools, text, tmp_path, caplog
):
    """quantize_dynamic's output loads with the float file's text, warning that its int8 weights are
    signed and naming store_weights_unsigned, which stores them unsigned: no warning, the same text."""
    from nextword.export.quantize import store_weights_unsigned

    with caplog.at_level("WARNING", logger=CHECK_LOGGER):
        signed = greedy(tools["int8"])
    warning = caplog.text
    assert "stores the int8 weights of its integer products as signed int8" in warning
    assert "`nextword export --int8`" in warning
    assert "nextword.export.quantize.store_weights_unsigned(proto)" in warning
    assert signed == text
    proto = onnx.load(str(tools["int8"]))
    assert store_weights_unsigned(proto)  # the names of the weights it converted, in place
    caplog.clear()
    with caplog.at_level("WARNING", logger=CHECK_LOGGER):
        assert greedy(saved(proto, tmp_path / "unsigned.onnx")) == signed
    assert not caplog.records


def test_the_exported_int8_file_optimized_by_onnxruntime_at_the_basic_level_is_refused_but_not_its_source(
    tools,
):
    assert greedy(tools["nextword int8"])  # the file `nextword export --int8` writes loads
    assert "operator 'QuantizeLinear'" in refusal(tools["ort basic"])


# --------------------------------------------------------------------------- metadata dropped (F1)


def _extracted(proto):
    from onnx.utils import Extractor

    inputs, outputs = [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    return Extractor(proto).extract_model(inputs, outputs)


def _rebuilt(proto):
    return onnx.helper.make_model(proto.graph, opset_imports=list(proto.opset_import))


@pytest.mark.parametrize("tool", [_extracted, _rebuilt], ids=["Extractor", "make_model"])
def test_a_tool_that_dropped_the_metadata_is_named_with_how_to_copy_it_back(model_path, text, tool, tmp_path):
    new = tool(onnx.load(str(model_path)))
    assert not new.metadata_props
    message = refusal(saved(new, tmp_path / "new.onnx"))
    assert message == (
        f"{tmp_path / 'new.onnx'} has a nextword graph but no nextword metadata (no "
        "'nextword.format_version'): a tool that re-saved it dropped its metadata_props, which hold the "
        "tokenizer and settings (onnx-graphsurgeon, onnx.utils.Extractor and onnx.helper.make_model(graph) "
        "do); copy them back from the original file before saving: "
        'new.metadata_props.extend(onnx.load("ORIGINAL.onnx").metadata_props)'
    )
    new.metadata_props.extend(onnx.load(str(model_path)).metadata_props)  # the fix it names
    new.ir_version = min(new.ir_version, 8)  # make_model writes the newest IR version: the next refusal
    assert greedy(saved(new, tmp_path / "fixed.onnx")) == text


def test_a_graph_that_is_not_nextword_s_without_metadata_keeps_the_plain_refusal(model_path):
    proto = onnx.load(str(model_path))
    proto.ClearField("metadata_props")
    next(o for o in proto.graph.output if o.name == "logits").name = "scores"
    message = refusal(proto.SerializeToString())
    assert message.endswith(
        "is not a nextword model (no 'nextword.format_version' metadata); export models "
        "with `nextword export`"
    )


# --------------------------------------------------------------------------- input and output types (F2)


FLOAT16_FIX = (
    "the file was converted to float16 with its inputs and outputs; convert it with keep_io_types=True "
    "(onnxconverter-common's float16.convert_float_to_float16), which keeps them float32"
)


@pytest.mark.parametrize(
    ("names", "elem_type", "said"),
    [
        (None, 10, f"input 'h_0' is float16, not float32 {{feeds}}: {FLOAT16_FIX}"),
        (["c_0"], 10, f"input 'c_0' is float16, not float32 {{feeds}}: {FLOAT16_FIX}"),
        (["logits"], 10, f"output 'logits' is float16, not float32 {{feeds}}: {FLOAT16_FIX}"),
        (
            ["input_ids"],
            6,
            "input 'input_ids' is int32, not int64 {feeds}: a tool changed the types the graph declares; "
            "load the file `nextword export` wrote",
        ),
    ],
)
def test_inputs_and_outputs_of_another_type_are_named_before_the_probe(model_path, names, elem_type, said):
    """What onnxconverter-common's convert_float_to_float16(keep_io_types=False) does to the signature
    (float16 inputs and outputs, Casts inside), by hand: refused naming the tensor and the fix, where
    the probe step said only that the file was damaged."""
    proto = onnx.load(str(model_path))
    retyped_io(proto, names, elem_type)
    feeds = (
        "(nextword feeds input_ids as int64 and the state h_i, c_i as float32, and reads every output as "
        "float32)"
    )
    assert refusal(proto.SerializeToString()) == f"<model bytes>: the graph's {said.format(feeds=feeds)}"


# --------------------------------------------------------------------------- operators a tool wrote (F3)


def test_the_graph_bounds_model_exactly_the_default_allowlist():
    """The operator refusal says widening allowed_ops alone is refused next by the graph bounds: true
    while their rules cover the default allowlist and nothing else."""
    from nextword.runtime.shape_rules import RULES

    assert set(RULES) == {f"{domain}:{op}" if domain else op for domain, op in DEFAULT_ALLOWED_OPS}


def _suggested(message: str) -> frozenset[tuple[str, str]]:
    found = re.search(r"allowed_ops=DEFAULT_ALLOWED_OPS \| (\{.*\}), bound_graph=False\)\)", message)
    assert found, message
    return frozenset(ast.literal_eval(found.group(1)))


@pytest.mark.parametrize(
    ("tool", "ops"),
    [
        ("ort basic", {("", "QuantizeLinear")}),
        ("ort extended", {("com.microsoft", "DynamicQuantizeMatMul")}),
        ("qdq", {("", "QuantizeLinear")}),
        ("qoperator", {("", "QuantizeLinear"), ("", "QLinearMatMul"), ("com.microsoft", "QLinearAdd")}),
        ("4bit", {("com.microsoft", "MatMulNBits")}),
    ],
)
def test_an_operator_a_tool_wrote_names_the_tool_and_both_limits_to_widen(tools, tool, ops, capsys):
    from nextword.cli.main import main

    if tool not in tools:
        pytest.skip("onnxruntime's MatMulNBits quantizer needs onnx_ir")
    path = tools[tool]
    with pytest.raises(ModelLimitError) as refused:
        load(path)
    message = str(refused.value)
    assert refused.value.limit == "allowed_ops"
    assert _suggested(message) == ops  # every operator of the graph the defaults leave out
    assert (
        "which neither `nextword export` nor onnxruntime's quantize_dynamic writes: if a tool rewrote the "
        "graph (onnxruntime's optimized_model_filepath, static or QDQ quantization, 4-bit quantization...), "
        "load the file `nextword export` wrote, which onnxruntime optimizes as it loads; if you trust the "
        "file, widen two limits at once: load(..., limits=LoadLimits(allowed_ops=DEFAULT_ALLOWED_OPS | {"
    ) in message
    assert message.endswith(
        "}, bound_graph=False)) (DEFAULT_ALLOWED_OPS: from nextword.runtime.limits); with allowed_ops alone "
        "the graph bounds refuse it next, as they do not model those operators' sizes"
    )
    assert "re-export" not in message
    # what it says: allowed_ops alone is refused by the bounds; both limits load the file
    widened = DEFAULT_ALLOWED_OPS | _suggested(message)
    assert "are not modelled" in refusal(path, LoadLimits(allowed_ops=widened))
    assert load(path, limits=LoadLimits(allowed_ops=widened, bound_graph=False))
    # a command cannot widen them: it names the same call
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no command-line option lifts this check; if you trust the file, load it in Python with " in err
    assert "bound_graph=False)) (DEFAULT_ALLOWED_OPS: from nextword.runtime.limits)" in err, err


def test_a_4_bit_operator_is_named_without_its_quantizer(model_path):
    """MatMulNBits (onnxruntime's 4-bit quantizer, which needs onnx_ir) put in by hand: the checks refuse
    it before onnxruntime reads the node."""
    proto = onnx.load(str(model_path))
    node = next(n for n in proto.graph.node if n.op_type == "MatMul")
    node.op_type, node.domain = "MatMulNBits", "com.microsoft"
    message = refusal(proto.SerializeToString())
    assert "uses the operator 'com.microsoft:MatMulNBits', which neither `nextword export` nor" in message
    assert _suggested(message) == {("com.microsoft", "MatMulNBits")}


def test_an_operator_left_out_of_a_narrower_allowlist_is_named_as_such(model_path):
    narrower = LoadLimits(allowed_ops=DEFAULT_ALLOWED_OPS - {("", "LSTM")})
    message = refusal(model_path, narrower)
    assert message.endswith(
        "uses the operator 'LSTM', which the limits given do not allow; if you trust the file, widen them "
        "with load(..., limits=LoadLimits(allowed_ops=...))"
    )


# --------------------------------------------------------------------------- IR versions (F4)


@pytest.mark.parametrize("ir_version", [None, 6])
def test_an_ir_version_a_tool_wrote_names_the_version_to_set(model_path, text, ir_version, tmp_path):
    """onnx.helper.make_model writes the newest IR version (None here); a file set to it or to 6 loads
    once `model.ir_version` is set as the message says, and the default range stays 7-8."""
    proto = onnx.load(str(model_path))
    if ir_version is None:
        proto = _rebuilt(proto)
        proto.metadata_props.extend(onnx.load(str(model_path)).metadata_props)
        ir_version = proto.ir_version
        fix = (
            "the tool that saved it wrote a newer one (onnx.helper.make_model writes the newest); where the "
            "file uses nothing newer, set `model.ir_version = 8` before saving it"
        )
    else:
        proto.ir_version = ir_version
        fix = "set `model.ir_version = 7` before saving it (newer IR versions read older files)"
    assert ir_version not in (7, 8)
    assert LoadLimits().ir_versions == (7, 8)
    message = refusal(proto.SerializeToString())
    assert message == (
        f"<model bytes> has ONNX IR version {ir_version}; this nextword accepts IR versions 7-8 (what its "
        f"exporter writes): {fix}; if you trust the file, widen them with "
        "load(..., limits=LoadLimits(ir_versions=...))"
    )
    proto.ir_version = int(re.search(r"model\.ir_version = (\d+)", message).group(1))
    assert greedy(saved(proto, tmp_path / "fixed.onnx")) == text


# --------------------------------------------------------------------------- external data (F5)


def test_external_data_names_onnx_load_and_save_as_the_fix(model_path, text, tmp_path):
    path = tmp_path / "external.onnx"
    onnx.save(
        onnx.load(str(model_path)),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="external.onnx.data",
        size_threshold=0,
    )
    message = refusal(path)
    assert "keeps its data outside the file (location 'external.onnx.data')" in message
    assert message.endswith(
        "nextword models are one self-contained file and never read other files. If you trust the file, "
        "bring its data in with onnx, onnx.save(onnx.load(PATH), OUT) (onnx.load reads the external data), "
        "or re-export the model with `nextword export`"
    )
    fixed = tmp_path / "fixed.onnx"
    onnx.save(onnx.load(str(path)), str(fixed))  # the fix it names
    assert greedy(fixed) == text


FEEDS = (
    "(nextword feeds input_ids as int64 and the state h_i, c_i as float32, and reads every output as float32)"
)
OTHER_TOOL = "a tool changed the types the graph declares; load the file `nextword export` wrote"


@pytest.mark.parametrize(
    ("names", "elem_type", "said"),
    [
        (["h_0_out"], 10, "output 'h_0_out' is float16, not float32"),  # the state read back, too
        (
            ["c_0"],
            11,
            f"input 'c_0' is float64, not float32 {FEEDS}: {OTHER_TOOL}",
        ),  # numpy's name for double
    ],
)
def test_every_declared_type_is_checked_and_named_as_numpy_names_it(model_path, names, elem_type, said):
    proto = onnx.load(str(model_path))
    retyped_io(proto, names, elem_type)
    assert refusal(proto.SerializeToString()).startswith(f"<model bytes>: the graph's {said}")


def test_initializers_listed_as_inputs_still_make_a_nextword_graph(model_path, tmp_path):
    """keep_initializers_as_inputs (older exporters, IR 3) lists every weight among the graph's inputs:
    a file that also lost its metadata is still told how to copy it back."""
    proto = onnx.load(str(model_path))
    proto.ClearField("metadata_props")
    listed = {i.name for i in proto.graph.input}
    for tensor in proto.graph.initializer:
        if tensor.name not in listed:
            proto.graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            )
    assert "has a nextword graph but no nextword metadata" in refusal(proto.SerializeToString())


def test_a_graph_of_input_ids_to_logits_alone_is_not_called_a_nextword_graph():
    """A language model of another toolkit (input_ids in, logits out, no LSTM state) without nextword's
    metadata is not told to copy metadata back from an "original" nextword file it never had."""
    message = refusal(ids_to_logits())
    assert "is not a nextword model (no 'nextword.format_version' metadata)" in message, message
