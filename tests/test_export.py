"""Export: graph structure, metadata, parity, atomic writes."""

import itertools
import json

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

import onnx

from benchmarks.int8_storage import exact_product, integer_product, saturating_activations, signed_form
from nextword.export import ExportConfig, export, exporter
from nextword.export.parity import ParityError
from nextword.runtime import Tokenizer, load
from nextword.runtime.model_file import KEY_CONFIG, KEY_METRICS, KEY_PARITY, KEY_TOKENIZER, KEY_VERSIONS

pytestmark = pytest.mark.slow


def test_graph_has_one_fused_lstm_per_layer_and_no_loop(model_path):
    proto = onnx.load(str(model_path))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("LSTM") == 2
    assert not {"Loop", "Scan", "If"} & set(ops) and not any("Cudnn" in op for op in ops)
    onnx.checker.check_model(proto, full_check=True)


def test_signature_is_the_stateful_step(model_path):
    proto = onnx.load(str(model_path))

    def shapes(values):
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    inputs, outputs = shapes(proto.graph.input), shapes(proto.graph.output)
    assert inputs == {
        "input_ids": ["batch", "time"],
        "h_0": ["batch", 32],
        "c_0": ["batch", 32],
        "h_1": ["batch", 32],
        "c_1": ["batch", 32],
        "logits_from": [],  # a scalar
    }
    vocab = outputs["logits"][2]
    assert outputs == {
        "logits": ["batch", "positions", vocab],
        **{f"{k}_{i}_out": ["batch", 32] for i in (0, 1) for k in "hc"},
    }
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_metadata_makes_the_file_self_contained(model_path, run_dir):
    meta = {p.key: p.value for p in onnx.load(str(model_path)).metadata_props}
    assert Tokenizer.from_json(meta[KEY_TOKENIZER]) == Tokenizer.from_json(
        (run_dir / "tokenizer.json").read_text()
    )
    config = json.loads(meta[KEY_CONFIG])
    assert config["model"]["num_layers"] == 2 and config["train"]["corpus"]["paths"] == ["corpus.csv"]
    # How the run was spread over replicas (a multi-worker run's global batch was lost before).
    stored = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["training"] == stored["training"] and stored["training"]["replicas"] == 1
    assert json.loads(meta[KEY_METRICS]) == json.loads((run_dir / "metrics.json").read_text())
    versions = json.loads(meta[KEY_VERSIONS])
    assert {"nextword", "tensorflow", "keras", "tf2onnx", "onnx", "opset"} <= set(versions)
    parity = json.loads(meta[KEY_PARITY])
    assert parity["passed"] and parity["greedy_identical"] == parity["greedy_sequences"] >= 3
    assert parity["real_prompts"] >= 1 and parity["greedy_words"] == 50
    assert (
        max(parity["max_abs_diff_random"], parity["max_abs_diff_real"], parity["max_abs_diff_chunked"])
        <= 1e-4
    )


def test_onnx_logits_match_keras(model_path, run_dir, model):
    import keras

    trained = keras.saving.load_model(run_dir / "model.keras", compile=False)
    ids = np.asarray([model.prompt_ids("the network (12) receives the weights. the processor")])
    expected = np.asarray(trained(ids.astype(np.int32), training=False))
    logits, _ = model.forward(ids, model.initial_state(1))
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    # the conversion left the Keras model as it was
    again = keras.saving.load_model(run_dir / "model.keras", compile=False)
    for a, b in zip(trained.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_failed_parity_writes_nothing_and_keeps_the_old_file(run_dir, model_path, tmp_path, monkeypatch):
    from nextword.export import exporter

    out = tmp_path / "model.onnx"
    out.write_bytes(previous := model_path.read_bytes())
    real_load = exporter.load

    def skewed_load(payload, **options):
        model = real_load(payload, **options)
        forward = model.forward
        model.forward = lambda *args, **kw: (lambda r: (r[0] + 1e-3, r[1]))(forward(*args, **kw))
        return model

    monkeypatch.setattr(exporter, "load", skewed_load)
    with pytest.raises(ParityError, match="parity check failed, no file written"):
        export(ExportConfig(run_dir=str(run_dir), out=str(out)))
    assert out.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left behind


def test_export_replaces_a_model_file_and_nothing_else(run_dir, corpus_files, tmp_path):
    import shutil

    for kept in (corpus_files["csv"], run_dir / "model.keras", run_dir / "config.json"):
        target = tmp_path / kept.name  # a typo or a tab completion away from the .onnx name
        shutil.copy(kept, target)
        with pytest.raises(ValueError, match=r"exists and is not an ONNX model.*choose another `out`"):
            export(ExportConfig(run_dir=str(run_dir), out=str(target)))
        assert target.read_bytes() == kept.read_bytes()
    empty = tmp_path / "empty.onnx"  # made by `touch`: nothing to lose
    empty.touch()
    export(ExportConfig(run_dir=str(run_dir), out=str(empty), evaluate=False, tune_cache=False))
    assert load(empty).vocab_size > 0
    # an ONNX model from elsewhere is not an earlier export: replaced only with --overwrite
    relu = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])],
        "other",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "other.onnx"
    foreign.write_bytes(onnx.helper.make_model(relu).SerializeToString())
    kept = foreign.read_bytes()
    with pytest.raises(ValueError, match=r"an ONNX model that nextword did not write.*overwrite=True"):
        export(ExportConfig(run_dir=str(run_dir), out=str(foreign)))
    assert foreign.read_bytes() == kept
    export(
        ExportConfig(run_dir=str(run_dir), out=str(foreign), evaluate=False, tune_cache=False, overwrite=True)
    )
    assert load(foreign).vocab_size > 0
    export(
        ExportConfig(run_dir=str(run_dir), out=str(empty), evaluate=False, tune_cache=False)
    )  # an earlier export


def test_a_truncated_id_file_is_named_before_any_work(run_dir, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    ids = (run / "dev.ids").read_bytes()
    (run / "dev.ids").write_bytes(ids[:8])  # two ids: a stream that still parses
    monkeypatch.setattr(exporter, "convert", None)  # any work past the check would fail on this
    with pytest.raises(ValueError, match=r"dev\.ids holds 1 word, but the run recorded .*delete"):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))
    assert not (tmp_path / "m.onnx").exists()


def test_an_out_that_cannot_be_written_is_refused_before_any_work(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(exporter, "RunDir", None)  # any work past the check would fail on this
    (tmp_path / "afile").write_text("x")
    with pytest.raises(
        ValueError, match=r"deeper/m\.onnx' cannot be written: .*afile is a file, not a folder"
    ):
        export(ExportConfig(run_dir=str(run_dir), out=str(tmp_path / "afile" / "deeper" / "m.onnx")))
    with pytest.raises(
        ValueError, match=r"/proc/m\.onnx' cannot be written: .* in /proc; choose another `out`"
    ):
        export(ExportConfig(run_dir=str(run_dir), out="/proc/m.onnx"))
    # a name the file system cannot hold: said before the hours of conversion and checks, not after
    with pytest.raises(ValueError, match=r"the name is longer than the 255 bytes a file name may have"):
        export(ExportConfig(run_dir=str(run_dir), out=str(tmp_path / ("m" * 251 + ".onnx"))))
    for seed in (-1, 2**32, True):
        with pytest.raises(ValueError, match="parity_seed must be"):
            ExportConfig(run_dir=str(run_dir), out="m.onnx", parity_seed=seed)


def test_an_out_that_is_one_of_the_runs_own_files_is_refused_even_with_overwrite(run_dir, tmp_path):
    """`--out RUN/model.keras --overwrite` wrote the ONNX file over the run's model (or its tokenizer):
    neither export nor --resume could read the run again."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for name in ("model.keras", "tokenizer.json", "config.json", "train.ids", ".nextword-run"):
        with pytest.raises(ValueError, match=r"is one of the files of the run .* write it elsewhere"):
            export(ExportConfig(run_dir=str(run), out=str(run / name), overwrite=True))
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_missing_dev_ids_is_named_with_the_fix_not_taken_for_no_development_part(
    run_dir, tmp_path, monkeypatch
):
    """With dev.ids deleted, export left the cache out and blamed dev_fraction=0, though the run recorded
    development documents: refused before any work, with resume (which encodes it again) as the fix."""
    import shutil

    from nextword.train import resume

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    recorded = json.loads((run / "config.json").read_text())["data"]["dev_documents"]
    assert recorded > 0
    (run / "dev.ids").unlink()
    with pytest.raises(
        ValueError, match=rf"dev\.ids is missing, but the run recorded {recorded} development"
    ):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))
    assert not (tmp_path / "m.onnx").exists()
    resume(run)  # finished: encodes dev.ids again and trains nothing
    assert (run / "dev.ids").read_bytes() == (run_dir / "dev.ids").read_bytes()


def test_export_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export(ExportConfig(run_dir=str(tmp_path / "missing"), out=str(tmp_path / "m.onnx")))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"lacks \['tokenizer.json', 'model.keras'\]"):
        export(ExportConfig(run_dir=str(tmp_path / "half"), out=str(tmp_path / "m.onnx")))
    assert not (tmp_path / "m.onnx").exists()


def test_export_overwrites_atomically(model_path, run_dir, tmp_path):
    out = tmp_path / "m.onnx"
    first = export(ExportConfig(run_dir=str(run_dir), out=str(out)))
    assert first.bytes == out.stat().st_size
    export(ExportConfig(run_dir=str(run_dir), out=str(out)))
    assert load(out).vocab_size == load(model_path).vocab_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize(("field", "value"), [("opset", 12), ("tolerance", 0.0), ("greedy_words", 0)])
def test_export_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        ExportConfig(**{field: value})


def test_int8_export_is_smaller_close_to_fp32_and_measured(run_dir, model_path, tmp_path):
    out = tmp_path / "int8.onnx"
    report = export(ExportConfig(run_dir=str(run_dir), out=str(out), int8=True))
    assert out.stat().st_size < model_path.stat().st_size
    proto = onnx.load(str(out))
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= {n.op_type for n in proto.graph.node}
    int8 = load(out)
    assert int8.info.quality["precision"] == "int8"
    fp32_ppl, int8_ppl = (int8.info.quality[k]["perplexity"] for k in ("fp32", "int8"))
    assert abs(int8_ppl - fp32_ppl) / fp32_ppl < 0.05
    comparison = int8.info.parity["int8_vs_fp32"]
    assert comparison == report.int8_vs_fp32 and comparison["greedy_sequences"] >= 3
    assert int8.generate("the network", seed=1, max_words=10) == int8.generate(
        "the network", seed=1, max_words=10
    )


def test_fp32_export_records_validation_quality(model):
    quality = model.info.quality
    assert quality["split"] == "validation" and quality["precision"] == "fp32"
    assert quality["fp32"]["documents"] == 8 and quality["fp32"]["perplexity"] > 1


def test_export_measures_quality_from_the_run_folder_alone(run_dir, model, tmp_path, caplog):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["corpus"]["paths"] = [str(tmp_path / "gone.csv")]  # the corpus is not needed
    (copy / "config.json").write_text(json.dumps(config))
    report = export(ExportConfig(run_dir=str(copy), out=str(tmp_path / "m.onnx")))
    assert report.quality["fp32"] == model.info.quality["fp32"]
    (copy / "val.ids").unlink()
    with caplog.at_level("WARNING"):
        report = export(ExportConfig(run_dir=str(copy), out=str(tmp_path / "m.onnx")))
    assert report.quality == {} and "val.ids is missing" in caplog.text


def test_quality_in_the_file_equals_evaluating_the_validation_documents(model, corpus_files):
    from nextword.corpus import CorpusConfig, rebuild_split
    from nextword.runtime import evaluate

    _, val = rebuild_split(model.info.provenance, CorpusConfig(paths=(str(corpus_files["csv"]),))).documents()
    assert evaluate(model, val).to_dict() == pytest.approx(model.info.quality["fp32"])


def test_decoding_defaults_travel_in_the_file(run_dir, tmp_path):
    from dataclasses import replace

    from nextword.runtime import GenerationConfig

    out = tmp_path / "m.onnx"
    config = ExportConfig(run_dir=str(run_dir), out=str(out), evaluate=False)
    export(replace(config, generation=GenerationConfig(no_repeat_ngram_size=2, top_k=5, stop=(".",))))
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["nextword.generation"]) == {"top_k": 5, "no_repeat_ngram_size": 2, "stop": ["."]}
    model = load(out)
    assert model.info.generation == GenerationConfig(no_repeat_ngram_size=2, top_k=5, stop=(".",))
    text = model.generate("the network", temperature=0, max_words=30, stop_at_end=False)
    assert "." not in text  # the stored stop applies
    words = model.tokenizer.tokenize("the network" + text)
    assert len(set(itertools.pairwise(words))) == len(words) - 1  # no bigram twice
    unlimited = model.generate(
        "the network", temperature=0, max_words=30, stop_at_end=False, stop=(), no_repeat_ngram_size=0
    )
    assert unlimited != text  # a call's own options win
    with pytest.raises(ValueError, match="default seed"):
        ExportConfig(run_dir=str(run_dir), out=str(out), generation=GenerationConfig(seed=1))


def test_invalid_decoding_defaults_in_a_file_are_refused(model_path, tmp_path):
    from nextword.runtime import ModelFileError

    for value, message in (
        ('{"temperature": -1}', "invalid decoding defaults"),
        ('{"colour": 1}', "unknown generation option"),
        ('{"seed": 3}', "may not fix a seed"),
    ):
        proto = onnx.load(str(model_path))
        for prop in proto.metadata_props:
            if prop.key == "nextword.generation":
                prop.value = value
        path = tmp_path / "edited.onnx"
        onnx.save(proto, str(path))
        with pytest.raises(ModelFileError, match=message):
            load(path)


def test_the_file_records_the_runs_provenance(model, model_path, run_dir):
    from dataclasses import asdict

    stored = json.loads((run_dir / "config.json").read_text())
    record = model.info.provenance
    assert asdict(record.split) == stored["data"]["split"] and record.split.scheme == "dedup-v5"
    assert {k: v for k, v in asdict(record.data).items() if v is not None} == {
        k: v for k, v in stored["data"].items() if k not in ("split", "corpus_sha256")
    }
    assert record.corpus_sha256 == stored["data"]["corpus_sha256"] and len(record.corpus_sha256) == 64
    assert record.data.exact_duplicates == 0 and record.data.near_duplicate_groups > 0
    assert record.corpus_files == ("corpus.csv",) and record.vocab_size == model.vocab_size
    assert asdict(record.architecture) == stored["model"]
    assert record.export_command is None and record.train_command is None  # the fixture passes none
    config = json.loads({p.key: p.value for p in onnx.load(str(model_path)).metadata_props}[KEY_CONFIG])
    assert config["provenance"] == record.to_dict() and config["train"]["data"] == stored["data"]


@pytest.fixture(scope="module")
def int8_file(run_dir, tmp_path_factory):
    """The tiny run exported with ``--int8``."""
    out = tmp_path_factory.mktemp("int8") / "int8.onnx"
    export(ExportConfig(run_dir=str(run_dir), out=str(out), int8=True))
    return out


def test_int8_weights_are_stored_unsigned_so_integer_products_are_exact_on_every_cpu(int8_file):
    """uint8 activations times int8 weights saturate in 16 bits on x86-64 CPUs without VNNI; the
    exporter stores the weights as uint8, whose products are exact everywhere."""
    from onnx import numpy_helper

    proto = onnx.load(str(int8_file))
    weights = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    lstms = [n for n in proto.graph.node if n.op_type == "DynamicQuantizeLSTM"]
    products = [n for n in proto.graph.node if n.op_type == "MatMulInteger" and n.input[1] in weights]
    assert lstms and products
    for node in lstms:
        assert {weights[node.input[i]].dtype for i in (1, 2, 9, 11)} == {np.dtype(np.uint8)}
    for node in products:
        weight, zero = weights[node.input[1]], weights[node.input[3]]
        assert weight.dtype == zero.dtype == np.uint8
        activations = saturating_activations(weight.shape[0])
        exact = exact_product(weight, zero, activations)
        np.testing.assert_array_equal(integer_product(weight, zero, activations), exact)


def test_storing_weights_unsigned_keeps_their_values_and_converts_each_once():
    from onnx import TensorProto, helper, numpy_helper

    from nextword.export.quantize import store_weights_unsigned

    rng = np.random.default_rng(1)
    signed = rng.integers(-127, 128, (64, 8)).astype(np.int8)
    signed[0, :2] = (-127, 127)
    nodes = [
        helper.make_node("MatMulInteger", ["A", "W", "za", "zw"], ["Y1"]),
        helper.make_node("MatMulInteger", ["A", "W", "za", "zw"], ["Y2"]),  # the same weight again
    ]
    graph = helper.make_graph(
        nodes,
        "shared",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [4, 64])],
        [helper.make_tensor_value_info(y, TensorProto.INT32, [4, 8]) for y in ("Y1", "Y2")],
        [
            numpy_helper.from_array(signed, "W"),
            numpy_helper.from_array(np.array(128, dtype=np.uint8), "za"),
            numpy_helper.from_array(np.array(-3, dtype=np.int8), "zw"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert store_weights_unsigned(proto) == ["W"]
    stored = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    assert stored["W"].dtype == stored["zw"].dtype == np.uint8
    np.testing.assert_array_equal(
        stored["W"].astype(np.int64) - int(stored["zw"]), signed.astype(np.int64) + 3
    )  # q - z unchanged: the same real weights
    assert store_weights_unsigned(proto) == []  # uint8 already: left alone
    activations = saturating_activations(64)
    exact = (activations.astype(np.int64) - 128) @ (signed.astype(np.int64) + 3)
    np.testing.assert_array_equal(integer_product(stored["W"], stored["zw"], activations), exact)


def test_the_bundled_int8_file_stores_its_weights_unsigned():
    from onnx import numpy_helper

    from nextword.runtime.default import BUNDLED_MODEL

    proto = onnx.load(str(BUNDLED_MODEL))
    weights = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    stored = [
        weights[name]
        for node in proto.graph.node
        if node.op_type in ("MatMulInteger", "DynamicQuantizeLSTM")
        for name in node.input[1 : 3 if node.op_type == "DynamicQuantizeLSTM" else 2]
    ]
    assert len(stored) == 4 and all(w.dtype == np.uint8 for w in stored)


def test_loading_a_file_with_signed_int8_weights_warns_and_names_the_fix(int8_file, tmp_path, caplog):
    """Files exported before the weights were stored unsigned still load and run, with a warning."""
    with caplog.at_level("WARNING", logger="nextword.runtime.model_check"):
        unsigned = load(int8_file)
    assert "signed int8" not in caplog.text
    proto = onnx.load(str(int8_file))
    assert signed_form(proto)  # back to the form quantize_dynamic writes: int8, zero point - 128
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    with caplog.at_level("WARNING", logger="nextword.runtime.model_check"):
        signed = load(old)
    assert "stores the int8 weights of its integer products as signed int8" in caplog.text
    assert "nextword export --int8" in caplog.text
    assert signed.generate("the network", seed=1, max_words=5)  # it still loads and runs
    assert unsigned.info.parity == signed.info.parity  # nothing else changed


def test_int8_quantization_on_a_full_temporary_folder_names_it(model_path, monkeypatch):
    """`TMPDIR` nearly full: export --int8 said only "No space left on device; free some space or choose
    another place", naming no folder, after every parity check had run."""
    import errno
    import tempfile

    from nextword.cli.main import _os_error
    from nextword.export import quantize

    def full(proto, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(quantize.onnx, "save", full)
    with pytest.raises(OSError) as caught:
        quantize.quantize_int8(onnx.load(str(model_path)))
    assert caught.value.filename == tempfile.gettempdir()
    assert _os_error(caught.value) == (
        f"{tempfile.gettempdir()}: No space left on device (int8 quantization's temporary files; "
        "TMPDIR=/path chooses their folder); free some space or choose another place"
    )


def test_int8_quantization_leaves_the_hosts_root_logger_as_it_was(model_path):
    """onnxruntime's quantizer logs through logging.info(), which gave a root logger without handlers
    a stderr handler of its own: an application's every log record then printed twice or unasked."""
    import logging

    from nextword.export.quantize import quantize_int8

    root = logging.getLogger()
    before = list(root.handlers)
    for handler in before:
        root.removeHandler(handler)  # as in a host that configured no logging
    try:
        quantized = quantize_int8(onnx.load(str(model_path)))
        assert root.handlers == []
    finally:
        for handler in before:
            root.addHandler(handler)
    assert any(node.op_type == "DynamicQuantizeLSTM" for node in quantized.graph.node)


def test_an_id_file_longer_than_the_run_recorded_is_named_before_any_work(run_dir, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    ids = (run / "val.ids").read_bytes()
    (run / "val.ids").write_bytes(ids + ids[4:])  # its documents twice: a stream that still parses
    monkeypatch.setattr(exporter, "convert", None)  # any work past the check would fail on this
    with pytest.raises(ValueError, match=r"val\.ids holds \d+ words, but the run recorded .*delete"):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))
    assert not (tmp_path / "m.onnx").exists()
