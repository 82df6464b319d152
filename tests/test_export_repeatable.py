"""Export's word on what it exports: the same run exported twice is the same file, byte for byte; a run
that stopped short of its planned epochs is said so (and `nextword info` shows the plan); a parity
comparison that did not happen is not shown as a perfect one."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace

import pytest

pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")

import onnx

from nextword.cli.main import main
from nextword.export import ExportConfig, export
from nextword.runtime.model_file import KEY_METRICS, LOGITS, state_input_names, state_output_names
from nextword.train import ModelConfig, train

pytestmark = pytest.mark.slow


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("int8", [False, True])
def test_exporting_the_same_run_twice_gives_the_same_bytes(run_dir, tiny_config, tmp_path, int8):
    """tf2onnx named constants and nodes differently from one conversion to the next (and wrote the
    traced function's number, which grows within a process, into the graph's doc string)."""
    paths = [tmp_path / f"{i}.onnx" for i in range(2)]
    for path in paths:
        export(ExportConfig(run_dir=str(run_dir), out=str(path), int8=int8))
    first, second = (path.read_bytes() for path in paths)
    assert first == second
    graph = onnx.load_from_string(first).graph
    layers = tiny_config.model.num_layers
    assert [v.name for v in graph.input] == ["input_ids", *state_input_names(layers), "logits_from"]
    assert sorted(v.name for v in graph.output) == sorted([LOGITS, *state_output_names(layers)])
    if not int8:  # the quantizer's own names stay (fine-tuning from the file reads them)
        assert [node.name for node in graph.node] == [f"{n.op_type}_{i}" for i, n in enumerate(graph.node)]


@pytest.mark.parametrize("seed", range(3))
def test_the_canonical_form_does_not_depend_on_names_node_order_or_written_out_domains(model_path, seed):
    """What tf2onnx varies between conversions of the same weights: the names of nodes, inner tensors
    and constants, the order of nodes that do not depend on each other and of the constants, an empty
    domain written out or not. All of it varied here gives the same canonical bytes."""
    import random

    from nextword.export.canonical import canonical_names

    original = onnx.load(str(model_path))
    varied = onnx.ModelProto()
    varied.CopyFrom(original)
    graph, rng = varied.graph, random.Random(seed)
    kept = {v.name for v in [*graph.input, *graph.output]}
    inner = {n for node in graph.node for n in [*node.input, *node.output]} | {
        t.name for t in graph.initializer
    }
    renamed = {n: f"t{rng.randrange(10**9)}/{n}" for n in inner if n and n not in kept}
    made_by = {n: node for node in graph.node for n in node.output}
    placed: set[str] = set()
    order = []
    while len(order) < len(graph.node):  # a random topological order
        ready = [
            node
            for node in graph.node
            if node.name not in placed
            and all(n not in made_by or made_by[n].name in placed for n in node.input)
        ]
        node = rng.choice(ready)
        placed.add(node.name)
        order.append(node)
    nodes = []
    for node in order:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"n{rng.randrange(10**9)}"
        copy.input[:] = [renamed.get(n, n) for n in copy.input]
        copy.output[:] = [renamed.get(n, n) for n in copy.output]
        if rng.random() < 0.5:
            copy.domain = copy.domain  # an empty domain written out
        nodes.append(copy)
    del graph.node[:]
    graph.node.extend(nodes)
    tensors = []
    for tensor in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = renamed.get(tensor.name, tensor.name)
        tensors.append(copy)
    rng.shuffle(tensors)
    del graph.initializer[:]
    graph.initializer.extend(tensors)
    graph.doc_string = f"converted from __inference_step_fn_{rng.randrange(1000)}"
    assert canonical_names(varied).SerializeToString() == canonical_names(original).SerializeToString()


def test_a_run_that_stopped_short_is_exported_with_a_warning_and_shown_with_its_plan(
    tiny_config, tmp_path, monkeypatch, caplog, capsys
):
    from nextword.train import recorder

    original = recorder.RunRecorder.epoch_end

    def interrupted(self, model, result):
        original(self, model, result)  # epoch 1 of 3 saved, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(recorder.RunRecorder, "epoch_end", interrupted)
    model = ModelConfig(embedding_dim=8, lstm_units=8, num_layers=1, dropout=0.0, tie_embeddings=False)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, out=str(run), model=model, epochs=3))
    monkeypatch.undo()
    out = tmp_path / "short.onnx"
    with caplog.at_level(logging.WARNING, logger="nextword.export"):
        export(ExportConfig(run_dir=str(run), out=str(out)))
    assert f"the run in {run} stopped after 1 of 3 epochs" in caplog.text
    assert f"nextword.train.resume({str(run)!r})" in caplog.text
    code, shown, _ = run_cli(capsys, "info", out)
    assert code == 0 and "best epoch     1 of 3 (stopped after 1) (by" in shown
    # a run another process is training now is short of its epochs too: it is not told to resume
    caplog.clear()
    from nextword.train.files import RunDir

    with RunDir(run).in_use(), caplog.at_level(logging.WARNING, logger="nextword.export"):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "busy.onnx")))
    assert "is being trained by another process" in caplog.text and "stopped after" not in caplog.text

    # A file from before metrics recorded the plan: the training settings' epochs say it.
    proto = onnx.load(str(out))
    entry = next(p for p in proto.metadata_props if p.key == KEY_METRICS)
    metrics = json.loads(entry.value)
    del metrics["epochs_planned"]
    entry.value = json.dumps(metrics)
    older = tmp_path / "older.onnx"
    onnx.save(proto, str(older))
    code, shown, _ = run_cli(capsys, "info", older)
    assert code == 0 and "best epoch     1 of 3 (stopped after 1) (by" in shown


def test_a_model_saved_while_the_export_reads_it_is_read_again(run_dir, tmp_path, monkeypatch, caplog):
    """A training that saves its best model between the export's read of metrics.json and its load of
    model.keras: the file paired one epoch's figures with another's weights. The run is read again;
    one that saves at every read is refused."""
    from nextword.export import ExportError, exporter

    run = shutil.copytree(run_dir, tmp_path / "run")
    real, loads = exporter.load_keras_model, []

    def saved_meanwhile(path, times: int):
        loads.append(path)
        if len(loads) <= times:  # the training saves it again, as atomic_path does: a new file
            copy = run / "model.keras.new"
            shutil.copyfile(path, copy)
            copy.replace(path)
        return real(path)

    monkeypatch.setattr(exporter, "load_keras_model", lambda path: saved_meanwhile(path, 1))
    with caplog.at_level(logging.INFO, logger="nextword.export"):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))
    assert len(loads) == 2 and "model.keras was saved again while it was read" in caplog.text
    loads.clear()
    monkeypatch.setattr(exporter, "load_keras_model", lambda path: saved_meanwhile(path, 99))
    with pytest.raises(ExportError, match="saved again each time it was read: export once the training ends"):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "n.onnx")))
    assert len(loads) == exporter.SNAPSHOT_TRIES and not (tmp_path / "n.onnx").exists()


def test_export_without_real_prompts_says_they_were_not_checked(run_dir, tmp_path, capsys):
    run = shutil.copytree(run_dir, tmp_path / "run")
    (run / "samples.json").unlink()
    code, out, err = run_cli(capsys, "export", run, "--out", tmp_path / "m.onnx")
    assert code == 0, err
    assert "real prompts not checked (the run has no samples.json)" in out and "e+00 real" not in out


def test_the_canonical_form_does_not_depend_on_the_order_of_value_infos(model_path):
    import random

    from nextword.export.canonical import canonical_names

    original = onnx.load(str(model_path))
    inner = [name for node in original.graph.node for name in node.output][:12]
    assert len(inner) >= 3
    forms = []
    for seed in (0, 1, 2):
        varied = onnx.ModelProto()
        varied.CopyFrom(original)
        names = list(inner)
        random.Random(seed).shuffle(names)
        del varied.graph.value_info[:]
        varied.graph.value_info.extend(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names
        )
        forms.append(canonical_names(varied).SerializeToString())
    assert forms[0] == forms[1] == forms[2]
