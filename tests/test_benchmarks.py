"""The benchmarks package: every benchmark imports and parses its options; the shared helpers; the
shipped-model benchmarks (speed, threads, Keras ratio) run end to end on the tiny test model, and the
Keras twin rebuilt from a model file computes the file's logits."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks import __main__ as listing
from benchmarks import report, timing

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_module_imports_and_parses_its_options(name, monkeypatch, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    if hasattr(module, "parse_args"):
        assert module.parse_args([]) is not None  # every default is valid
    if hasattr(module, "main") and name != "__main__":
        monkeypatch.setattr(sys, "argv", [f"python -m benchmarks.{name}", "--help"])
        with pytest.raises(SystemExit) as stop:
            module.main()
        assert stop.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_the_package_lists_every_benchmark(capsys):
    assert listing.main() == 0
    out = capsys.readouterr().out
    for name in ("run_all", "speed", "threads", "keras_ratio", "generation", "serving"):
        assert f"  {name} " in out
    assert "  report " not in out and "  timing " not in out  # helpers are not programs


def test_summaries_and_tables():
    assert timing.summarize([3, 1, 2]) == {"median": 2, "q1": 1, "q3": 3, "min": 1, "max": 3, "n": 3}
    stat = timing.summarize([1, 2, 3, 4, 100])
    assert stat["median"] == 3 and stat["q1"] == 2 and stat["q3"] == 4
    assert report.fmt_stat(stat) == "3.00 (2.00–4.00)"
    figures = [report.fmt_num(v) for v in (0.01234, 12.345, 1013.4, 123456.0)]
    assert figures == ["0.0123", "12.3", "1,013", "123,456"]  # grouped thousands: float() cannot read them
    with pytest.raises(ValueError, match="no values"):
        timing.summarize([])
    table = report.markdown_table(["a", "b"], [[1, 2]])
    assert table.splitlines() == ["| a | b |", "| :--- | ---: |", "| 1 | 2 |"]
    with pytest.raises(ValueError, match="2 columns"):
        report.markdown_table(["a", "b"], [], align="l")


def test_a_targets_bullet_starts_its_reason_as_a_sentence():
    check = {"target": "x within 2× of y", "measured": "1.5×", "met": True, "why": "the default is best"}
    assert report.verdict_line(check) == "- x within 2× of y: **1.5×**, met. The default is best."
    assert report.verdict_line({**check, "met": False, "why": ""}) == "- x within 2× of y: **1.5×**, not met."


def test_the_machine_table_names_the_cpu_features_that_change_int8_results():
    from benchmarks import environment

    avx2_only = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n\n"
    avx2_only += "processor\t: 1\nflags\t\t: avx512f\n"
    assert environment.cpu_features(avx2_only) == ["avx2", "fma"]  # the first processor's line only
    text = environment.features_text(environment.cpu_features(avx2_only))
    assert text == "avx2, fma; no avx512f, avx512_vnni or avx_vnni"
    vnni = "flags : avx2 fma avx512f avx512bw avx512_vnni amx_int8\n"
    assert environment.features_text(environment.cpu_features(vnni)) == (
        "avx2, fma, avx512f, avx512bw, avx512_vnni, amx_int8"
    )
    assert environment.features_text(["avx2", "fma", "avx_vnni"]) == "avx2, fma, avx_vnni; no avx512f"
    arm = "processor : 0\nFeatures : fp asimd asimddp sve\n"
    assert environment.features_text(environment.cpu_features(arm)) == "asimd, asimddp, sve"
    assert environment.cpu_features("processor : 0\n") is None
    assert environment.features_text(None) == "unknown (no /proc/cpuinfo)"
    info = environment.machine_info()
    table = environment.machine_markdown({**info, "cpu_features": ["avx2"]})
    assert "| CPU features | avx2; no avx512f, avx512_vnni or avx_vnni |" in table
    old = {k: v for k, v in info.items() if k != "cpu_features"}  # results saved before the row existed
    assert "CPU features" not in environment.machine_markdown(old)


def test_interleaved_rounds_take_turns_and_stop_at_the_time_limit(monkeypatch):
    calls: list[str] = []
    # the rounds' clock is one the timers advance: a loaded machine's sleep(0.03) that overslept by 20 ms
    # (1 run in 100 with both cores busy) ended the rounds after the first
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def timer(name: str, seconds: float) -> timing.Timer:
        def run(seed: int) -> tuple[float, int]:
            calls.append(f"{name}{seed}")
            clock[0] += seconds
            return seconds, 2

        return run

    timed = timing.interleaved({"a": (timer("a", 0.0), [0, 1, 2]), "b": (timer("b", 0.0), [0, 1])})
    assert calls == ["a0", "b0", "a1", "b1", "a2"]
    assert timed["a"]["ms_per_word"]["n"] == 3 and timed["b"]["seeds"] == [0, 1]
    calls.clear()
    timed = timing.interleaved({"a": (timer("a", 0.03), [0, 1, 2, 3])}, max_seconds=0.05)
    assert calls == ["a0", "a1"]  # the third round would start after the limit
    assert timed["a"]["seeds"] == [0, 1]


def test_sampling_speed_benchmark_times_every_case_before_and_after(monkeypatch, capsys):
    """Every case timed three ways: the sampler before its fast paths, today's, and today's with a step
    of the model before each call (as in ``generate()``). The figures are checked as measured, the table
    as rendered from them (a slow case prints "1,013": the table is not parsed back into numbers)."""
    from benchmarks import sampling_speed

    measured: list[list[dict]] = []
    render = sampling_speed.render

    def kept(results: list[dict]) -> str:
        measured.append(results)
        return render(results)

    monkeypatch.setattr(sampling_speed, "render", kept)
    assert sampling_speed.main(["--rows", "64", "--rounds", "1"]) == 0
    table = capsys.readouterr().out
    (results,) = measured
    assert [r["case"] for r in results] == [case.label for case in sampling_speed.CASES]
    assert "| after a step (us/row) | vs after |" in table
    for r in results:
        assert r["before_us"] > 0 and r["after_us"] > 0 and r["stepped_us"] > 0
        (line,) = [line for line in table.splitlines() if line.startswith(f"| {r['case']} |")]
        cells = [cell.strip() for cell in line.split("|")[2:7]]
        assert cells == [
            report.fmt_num(r["before_us"]),
            report.fmt_num(r["after_us"]),
            f"{r['before_us'] / r['after_us']:.2f}x",
            report.fmt_num(r["stepped_us"]),
            f"{r['stepped_us'] / r['after_us']:.2f}x",
        ]


@pytest.mark.slow
def test_speed_benchmark_runs_end_to_end(model_path, tmp_path, capsys):
    from benchmarks import speed, speed_report

    out = tmp_path / "speed.json"
    argv = ["--int8", str(model_path), "--fp32", str(model_path), "--words", "6", "--rounds", "2"]
    assert speed.main([*argv, "--result-json", str(out)]) == 0
    result = json.loads(out.read_text())
    keys = [c.key for c in speed.CASES]
    assert [c["key"] for c in result["cases"]] == keys
    for name in ("int8", "fp32"):
        assert set(result[name]["steps"]) == set(result[name]["bound_steps"]) == {"1", "4", "64"}
        words = result[name]["words"]
        assert all(words[k] == [6, 6] for k in keys if k != "beam")  # full length in each round
        assert 1 <= min(words["beam"]) <= 6  # beam search may finish its hypotheses early
    assert [t["key"] for t in result["targets"]] == [f"speed/{k}" for k in keys]
    table = capsys.readouterr().out
    assert "`generate(num_beams=4)`, per beam step" in table and table.count("| ≤ 1.") == len(keys)
    assert table.count("| bare `model.stepper()` step, state carried") == 3 and "int8 vs stepper" in table
    stale = {**result, "int8": {k: v for k, v in result["int8"].items() if k != "bound_steps"}}
    assert "vs stepper" not in speed_report.render(stale)  # a run from before the stepper still renders


@pytest.mark.slow
def test_threads_benchmark_runs_end_to_end(model_path, tmp_path):
    from benchmarks import threads

    out = tmp_path / "threads.json"
    argv = ["--int8", str(model_path), "--fp32", str(model_path), "--batches", "1,8", "--rounds", "1"]
    argv += ["--cell-seconds", "0.01", "--min-steps", "2", "--result-json", str(out)]
    assert threads.main(argv) == 0
    result = json.loads(out.read_text())
    assert len(result["cases"]) == 2 * 2 * 2  # files x batches x loads
    for case in result["cases"]:
        assert set(case["ms"]) == set(threads.SETTINGS) and all(s["median"] > 0 for s in case["ms"].values())
        assert bool(case["background"]) == (case["load"] != "alone")
        assert 0 <= case["default_wide_share"] <= 1 and 0 <= case["default_pair_share"] <= 1
        assert all(len(v) == case["ms"][s]["n"] for s, v in case["samples"].items())
    assert result["default"]["intra_op_num_threads"] >= 0
    assert result["targets"][0]["measured"].endswith(f"of {len(result['cases'])} cases")


def test_the_threads_benchmark_counts_the_steps_the_default_ran_on_its_two_thread_sessions(model_path):
    from benchmarks import threads

    model = threads.load_setting(str(model_path), "default")
    if model.wide_session is None:
        pytest.skip("one usable core: load() makes no two-thread session to count")
    _, share = threads.step_ms(model, 1, 0.0, 5)  # alone: every step on the two-thread session
    assert share == {"wide_session": 1.0, "pair_session": 0.0}
    batch = model.wide_rows + 1 if model.wide_rows < 64 else None
    if batch is not None:  # rows past wide_rows: alone, two threads from 5 rows on, else one thread
        assert threads.step_ms(model, batch, 0.0, 5)[1]["wide_session"] == float(batch >= 5)
    from nextword.runtime.default import BUNDLED_MODEL

    bundled = threads.load_setting(str(BUNDLED_MODEL), "default")  # int8: 8 rows differ on two threads
    assert threads.step_ms(bundled, 8, 0.0, 5)[1] == {"wide_session": 1.0, "pair_session": 0.0}  # alone
    with threads.generating(bundled, 8, 2):  # busy: on the pair (every step on one of the two)
        shares = threads.step_ms(bundled, 8, 0.0, 5)[1]
    assert shares["pair_session"] > 0.5 and shares["wide_session"] + shares["pair_session"] == 1.0
    assert threads.counted_runs(threads.load_setting(str(model_path), "1 thread")) == {
        "wide_session": 0,
        "pair_session": 0,
    }


def _threads_case(default, one, spinning, share):
    samples = {"default": default, "1 thread": one, "2 threads, spinning": spinning}
    ms = {k: timing.summarize(v) for k, v in samples.items()}
    return {"file": "int8", "batch": 1, "load": "alone", "ms": ms, "background": {}, "samples": samples,
            "default_wide_share": share}  # fmt: skip


def test_the_threads_verdict_pools_the_two_copies_of_the_setting_the_default_ran_as():
    from benchmarks import threads_report as tr

    # The default ran on its one-thread session: its samples and the "1 thread" column's are two copies
    # of one configuration, 12% apart by their own medians, 5% apart from the best once pooled.
    case = _threads_case([1.12, 1.12, 1.12], [1.0, 1.0, 1.0], [1.02, 1.02, 1.02], share=0.0)
    assert tr.ran_as(case) == "1 thread"
    assert tr.figures(case)["default"] == tr.figures(case)["1 thread"] == pytest.approx(1.06)
    winner, gap = tr.best(case)
    assert winner == "2 threads, spinning" and gap == pytest.approx(1.06 / 1.02 - 1)
    # Steps split between both sessions: no setting is the default's, its own median is its figure.
    mixed = {**case, "default_wide_share": 0.5}
    assert tr.ran_as(mixed) is None and tr.best(mixed) == ("1 thread", pytest.approx(0.12))
    # All its steps on the two-thread session: pooled with "2 threads, spinning", which is fastest.
    wide = _threads_case([1.0, 1.0, 1.0], [1.3, 1.3, 1.3], [0.9, 0.9, 0.9], share=1.0)
    assert tr.ran_as(wide) == "2 threads, spinning" and tr.best(wide) == ("default", 0.0)
    # All its steps on the pair (two threads, no spinning): pooled with that column.
    pair = {**case, "default_pair_share": 1.0}
    pair["samples"] = {**case["samples"], "2 threads, no spinning": [1.1]}
    pair["ms"] = {**case["ms"], "2 threads, no spinning": timing.summarize([1.1])}
    assert tr.ran_as(pair) == "2 threads, no spinning"
    assert tr.figures(pair)["default"] == pytest.approx(1.12)  # the median of 1.12 x3 and 1.1
    # A result from before the count renders and judges as before: medians alone.
    old = {k: v for k, v in case.items() if k not in ("samples", "default_wide_share")}
    assert tr.ran_as(old) is None and tr.best(old) == ("1 thread", pytest.approx(0.12))
    result = {"cases": [case, mixed, old], "default": {"description": "d"}, "files": {}}
    assert "ran as" not in tr.render(result)  # one case without the count: the table leaves it out
    table = tr.render({**result, "cases": [case, mixed]})
    assert "| 1 thread (100%) | 1.06 |" in table
    assert "| mixed: 1 thread 50%, 2 threads, spinning 50% | – |" in table
    slow = _threads_case([2.0, 2.0, 2.0], [2.0, 2.0, 2.0], [1.1, 1.1, 1.1], share=0.0)  # kept on one thread
    why = tr.targets({**result, "cases": [wide, slow]})[0]["why"]
    assert why.startswith("int8 batch 1 alone: the default takes 82% longer than 2 threads, spinning")
    assert "the default ran batch 1 on one thread: the model's check found" in why
    assert "on one thread" not in tr.targets({**result, "cases": [mixed]})[0]["why"]


@pytest.mark.slow
def test_keras_ratio_uses_the_run_when_it_has_the_keras_model(model_path, run_dir, tmp_path):
    from benchmarks import keras_ratio

    out = tmp_path / "keras.json"
    argv = ["--int8", str(model_path), "--bundled-run", str(run_dir), "--words", "5", "--keras-words", "2"]
    assert keras_ratio.main([*argv, "--rounds", "1", "--result-json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "the run the file was exported from" in result["keras_model"]
    assert result["fidelity"]["max_abs_logit_difference"] < 1e-3  # the very weights the file holds
    assert result["targets"][0]["key"] == "keras_ratio"
    # the runtime's round ran in a child process that never imported TensorFlow (the helper checks it)
    assert result["methods"]["runtime"]["words"] == [5] and result["methods"]["keras_predict"]["words"] == [2]
    assert "the file's rounds first, in a process that never imports TensorFlow" in keras_ratio.render(result)


@pytest.mark.slow
def test_generation_times_the_onnx_methods_in_a_child_and_keras_here(model_path, run_dir, tmp_path):
    from benchmarks import generation, generation_report

    out = tmp_path / "generation.json"
    argv = ["--run", str(run_dir), "--model", str(model_path), "--words", "3", "--repeats", "1"]
    argv += ["--keras-repeats", "1", "--lengths", "4", "--sweep-repeats", "1", "--batches", "2"]
    assert generation.main([*argv, "--result-json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["methods"]) == list(generation_report.METHODS)  # (1)-(2) here, (3)-(5) from the child
    assert result["methods"]["runtime"]["words"] == [3] and result["sweep"]["runtime_words"] == [[4]]
    assert [b["batch"] for b in result["batches"]] == [2]


def test_a_child_without_tensorflow_reports_a_failure_and_an_import_of_tensorflow(monkeypatch, tmp_path):
    from benchmarks import childproc

    with pytest.raises(SystemExit, match="its child process without TensorFlow failed"):
        childproc.figures_without_tensorflow("benchmarks.keras_ratio", "--int8", str(tmp_path / "none.onnx"))
    out = tmp_path / "figures.json"
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    childproc.write_child_json(str(out), {"a": 1})
    assert json.loads(out.read_text()) == {"figures": {"a": 1}, "tensorflow_loaded": True}


def test_keras_ratio_names_the_missing_run_without_this_machines_folders(tmp_path):
    from benchmarks import keras_ratio, paths, speed_report

    assert keras_ratio.shown is paths.shown is speed_report.shown  # one helper for every report
    assert paths.shown(ROOT / "runs" / "bundled" / "model.keras") == str(Path("runs/bundled/model.keras"))
    outside = tmp_path / "model.keras"
    assert paths.shown(outside) == str(outside)  # not in the repository: as given


@pytest.mark.slow
def test_keras_twin_computes_the_files_logits(model_path, run_dir):
    keras = pytest.importorskip("keras", reason="keras missing: install nextword[train]")
    from benchmarks.keras_twin import build_twin, read_weights
    from nextword.runtime import load

    model = load(model_path)
    twin = build_twin(read_weights(model_path))  # two LSTM layers: gate order and biases per layer
    trained = keras.saving.load_model(run_dir / "model.keras", compile=False)
    ids = np.asarray([model.prompt_ids("the network stores the weights of the layer")])
    ours, _ = model.forward(ids, model.initial_state(1))
    np.testing.assert_allclose(twin.predict(ids.astype("int32"), verbose=0), ours, atol=1e-4)
    np.testing.assert_allclose(trained.predict(ids.astype("int32"), verbose=0), ours, atol=1e-4)


@pytest.mark.slow
def test_keras_twin_of_the_bundled_int8_file():
    pytest.importorskip("keras", reason="keras missing: install nextword[train]")
    from benchmarks.keras_twin import build_twin, read_weights
    from benchmarks.shipped import bundled_path
    from nextword.runtime import load

    model = load(bundled_path())
    weights = read_weights(bundled_path())  # int8 weights, dequantized
    assert weights.embedding.shape == (model.vocab_size, model.info.config["model"]["embedding_dim"])
    ids = np.asarray([model.prompt_ids("a neural network for processing the signals of a sensor")])
    ours, _ = model.forward(ids, model.initial_state(1))
    theirs = build_twin(weights).predict(ids.astype("int32"), verbose=0)
    # The file quantizes activations too, the twin does not: close, not equal; the same top words.
    assert np.abs(theirs - ours).max() < 0.1 * ours.std()
    assert (theirs.argmax(-1) == ours.argmax(-1)).mean() >= 0.9


def test_read_weights_refuses_a_graph_without_an_lstm(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train]")
    from onnx import TensorProto, helper

    from benchmarks.keras_twin import read_weights

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "not-lstm.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ValueError, match="has no LSTM node"):
        read_weights(path)


@pytest.mark.parametrize("keep_alive", [False, True])
def test_the_serving_load_counts_every_word_on_new_or_reused_connections(live_server, keep_alive):
    import asyncio

    from benchmarks import serving

    port = int(live_server.url.rsplit(":", 1)[1])
    run = asyncio.run(serving.load(port, clients=2, seconds=0.5, max_tokens=7, keep_alive=keep_alive))
    assert run["requests"] >= 2 and run["words"] == 7 * run["requests"]  # stop_at_end off: all 7 words
    assert len(run["ttfw"]) == run["requests"] and all(t > 0 for t in run["ttfw"])
    assert len(run["gaps"]) == 6 * run["requests"]


@pytest.mark.slow
def test_int8_storage_benchmark_compares_the_two_forms(run_dir, tmp_path, monkeypatch, capsys):
    from benchmarks import int8_storage
    from nextword.export import ExportConfig, export

    model = tmp_path / "int8.onnx"
    export(ExportConfig(run_dir=str(run_dir), out=str(model), int8=True))
    out = tmp_path / "int8_storage.json"
    argv = ["--model", str(model), "--rounds", "1", "--steps", "16", "--result-json", str(out)]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where its signed copy of the file is written
    assert int8_storage.main(argv) == 0
    assert not list(scratch.iterdir())  # and removed once measured
    result = json.loads(out.read_text())
    assert len(result["moved_to_signed"]) >= 3  # both LSTM layers' W and R, and the output matrix
    for form, dtype in (("unsigned", "uint8"), ("signed", "int8")):
        rows = result["exactness"][form]
        assert rows and all(row["dtype"] == dtype for row in rows)
    assert all(row["differing"] == 0 for row in result["exactness"]["unsigned"])  # exact on every CPU
    assert len(result["speed"]) == 8 and all(s["median"] > 0 for s in result["speed"].values())
    assert result["targets"] == {"unsigned products exact on this CPU": True}
    table = capsys.readouterr().out
    assert table.count("| bare step, batch") == 3 and "generate(), the file's defaults" in table


def test_startup_children_import_from_the_bytecode_cache_as_an_installed_package_does(monkeypatch):
    from benchmarks import startup

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = startup.installed_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)  # still child_env's: the repository importable


@pytest.mark.parametrize("steps_ms", [0.9, 1.2])
def test_generation_targets_explain_the_prompt_share_without_a_negative_cost(steps_ms):
    from benchmarks import generation_report

    ms = {"keras_predict": 100.0, "keras_call": 200.0, "onnx_window": 5.0, "runtime": 1.0}
    ms.update(runtime_greedy=0.9, runtime_steps=steps_ms, floor=0.8)
    result = {"methods": {k: {"ms_per_word": {"median": v}} for k, v in ms.items()}}
    result["settings"] = {"prompt_tokens": 71, "vocab_size": 8270}
    floor = next(t for t in generation_report.targets(result) if "bare `session.run`" in t["target"])
    assert "adds 0.200 ms per word to the 0.800 ms" in floor["why"]
    if steps_ms < ms["runtime"]:  # the words alone cost less: the rest is the prompt
        assert "0.100 ms of it is feeding the 71-token prompt" in floor["why"]
    else:  # the words alone measured slower (noise): no "-0.200 ms of it"
        assert "-0." not in floor["why"] and "measured 0.200 ms slower than (4)" in floor["why"]


def test_generation_targets_say_when_the_per_word_loop_measured_below_the_bare_session_run():
    from benchmarks import generation_report

    ms = {"keras_predict": 100.0, "keras_call": 200.0, "onnx_window": 5.0, "runtime": 1.0}
    ms.update(runtime_greedy=0.7, runtime_steps=0.75, floor=0.8)  # the bound stepper beats session.run
    result = {"methods": {k: {"ms_per_word": {"median": v}} for k, v in ms.items()}}
    result["settings"] = {"prompt_tokens": 71, "vocab_size": 8270}
    checks = generation_report.targets(result)
    floor, steps = (
        next(t for t in checks if t["target"].startswith(p)) for p in ("(4) runtime within", "(4s)")
    )
    assert "0.250 ms of it is feeding the 71-token prompt" in floor["why"]
    for check in (floor, steps):
        assert "measured 0.050 ms below (5)" in check["why"] and "-0." not in check["why"]
    assert steps["met"] and steps["measured"] == "0.94×"


def test_a_partial_run_names_when_each_kept_section_was_measured(monkeypatch, tmp_path):
    from benchmarks import document, results, run_all

    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    sections: dict = {key: {} for key in ["generation", "speed", "threads"]}
    assert run_all.section_dates(sections, ["speed"], "D1") == {
        "generation": None,
        "speed": "D1",
        "threads": None,
    }
    # a record of an older run without dates: what it ran dates from that run
    results.save_result(
        "run_all", {"date": "D0", "ran": ["generation", "speed"], "benchmarks": list(sections)}
    )
    dates = run_all.section_dates(sections, ["speed"], "D1")
    assert dates == {"generation": "D0", "speed": "D1", "threads": None}
    results.save_result("run_all", {"date": "D1", "ran": ["speed"], "dates": dates})
    dates = run_all.section_dates(sections, ["threads"], "D2")  # carried over from run to run
    assert dates == {"generation": "D0", "speed": "D1", "threads": "D2"}
    line = document._earlier({"benchmarks": list(sections), "ran": ["threads"], "dates": dates})[0]
    assert "generation (D0), speed (D1) (this command ran threads;" in line


def test_the_benchmarks_doc_says_which_figures_come_from_this_run_and_what_the_shipped_sections_need():
    from benchmarks import document

    sections = ["generation", "speed", "threads"]
    whole = {"benchmarks": sections, "ran": sections, "timings": {}, "model": {}}
    assert document._provenance_sentence(whole).startswith("Every figure below comes from one run")
    partial = {**whole, "ran": ["speed"]}
    sentence = document._provenance_sentence(partial)
    assert "except" in sentence and "**Sections from earlier runs**" in sentence
    assert "Every figure" not in sentence
    rerunning = "\n".join(document._rerunning(whole))
    for needed in (
        "runs/bundled-fp32.onnx",
        "runs/bundled/model.keras",
        "make bundled-model",
        "benchmark model",
    ):
        assert needed in rerunning


def test_the_model_card_dates_the_corpus_by_its_date_column(tmp_path):
    from benchmarks.quality import grant_dates
    from benchmarks.quality_report import QUERY_RANGE, granted_text

    corpus = tmp_path / "c.csv"
    corpus.write_text(
        "patent_abstract,patent_date\na,2001-02-03\nb,1978-06-13\nc,\nd,not a date\ne,2018-05-29\n",
        encoding="utf-8",
    )
    assert grant_dates(corpus) == ("1978-06-13", "2018-05-29")
    assert (
        granted_text(grant_dates(corpus))
        == "granted 1978-06-13 to 2018-05-29, as its `patent_date` column says"
    )
    (tmp_path / "n.csv").write_text("patent_abstract\na\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"text": "a"}\n', encoding="utf-8")
    for other in ("n.csv", "c.jsonl"):
        assert grant_dates(tmp_path / other) is None
    assert QUERY_RANGE in granted_text(None)


@pytest.mark.slow
def test_the_runtime_memory_benchmark_runs_every_case(model_path, capsys):
    from benchmarks import runtime_memory

    argv = ["--model", str(model_path), "--calls", "16", "--steps", "12", "--models", "2"]
    assert runtime_memory.main([*argv, "--prompt-words", "300"]) == 0
    out = capsys.readouterr().out
    assert "| 16 mixed calls, a new prompt each |" in out and "freed as soon as they were dropped" in out
    for label in runtime_memory.LIMITS.values():
        assert f"| {label.format(words=300)} |" in out


@pytest.mark.slow
def test_the_worker_memory_benchmark_finds_each_worker(model_path, capsys):
    from benchmarks import worker_memory

    argv = ["--model", str(model_path), "--requests", "4", "--clients", "2", "--words", "3"]
    assert worker_memory.main(argv) == 0
    out = capsys.readouterr().out
    assert "after 4 completions (4 answered), each worker | " in out and "supervising process" in out


def test_top5_misses_sorts_each_predicted_word_into_one_kind():
    from benchmarks import top5_misses

    unk, eod = 1, 2
    ids = np.array([eod, 5, 6, 5, unk, 7, unk, 6, eod])  # predicts 5 6 5 unk 7 unk 6 eod
    kinds = [top5_misses.KINDS[k] for k in top5_misses.word_kinds(ids, unk, eod)]
    assert kinds == ["first", "first", "seen", "unknown", "first", "unknown", "seen", "end"]
    assert top5_misses.repeats(ids[1:]).tolist() == [False, False, True, False, False, True, True, False]


def test_top5_misses_adds_up_to_what_evaluate_reports(model_path, corpus_files, tmp_path, capsys):
    from benchmarks import top5_misses
    from benchmarks.bench_model import split_documents, validation_documents
    from nextword.runtime import evaluate, load
    from nextword.runtime.cache import CacheConfig

    model = load(model_path)
    documents = validation_documents(str(corpus_files["csv"]), model.info)
    cache = CacheConfig(theta=1.0, mix=0.3, window=32)
    counts = top5_misses.measure(model, documents, cache)["kinds"]
    words = sum(c["words"] for c in counts.values())
    with_cache, alone = evaluate(model, documents, cache=cache), evaluate(model, documents, cache=False)
    assert words == with_cache.words and counts["end"]["words"] == len(documents)
    assert sum(c["top5_cache"] for c in counts.values()) == round(with_cache.top5_accuracy * words)
    assert sum(c["top5_alone"] for c in counts.values()) == round(alone.top5_accuracy * words)
    assert counts["seen"]["words"] > 0 and counts["first"]["words"] > 0
    # The bound: the cache's rank where the token occurred before (every seen word), else the model's.
    assert counts["seen"]["top5_bound"] == counts["seen"]["top5_cache"]
    assert counts["first"]["top5_bound"] == counts["first"]["top5_alone"]
    assert counts["end"]["top5_bound"] == counts["end"]["top5_alone"]

    out = tmp_path / "top5.json"
    argv = ["--model", str(model_path), "--corpus", str(corpus_files["csv"]), "--result-json", str(out)]
    assert top5_misses.main(argv) == 0  # the tiny file has no cache: the model alone, no bound
    result = json.loads(out.read_text())
    assert result["cache"] is False and result["documents"] == len(documents)
    assert list(result["targets"]) == ["top-5 accuracy at least 60%"]
    table = capsys.readouterr().out
    assert "| first |" in table and "Bound:" not in table

    training, validation = split_documents(str(corpus_files["csv"]), model.info)
    assert validation == documents and not set(training) & set(validation)
    argv += ["--documents", "training", "--sample", "3"]
    assert top5_misses.main(argv) == 0  # a seeded sample of the documents it was trained on
    result = json.loads(out.read_text())
    assert result["documents"] == 3 and result["side"] == "training" and result["of"] == len(training)
    assert result["targets"] == {}  # the target is about held-out text
    assert f"3 training documents (a seeded sample of {len(training):,})" in capsys.readouterr().out
    picked = top5_misses.pick(training, 3)
    assert picked == top5_misses.pick(training, 3) and len(set(picked)) == 3
    assert picked == [d for d in training if d in picked]  # in corpus order
    assert top5_misses.pick(training, 0) == top5_misses.pick(training, 10**6) == training


def test_ngram_mix_runs_from_the_model_alone_to_the_ngram_alone(model_path, corpus_files, tmp_path, capsys):
    from benchmarks import ngram_mix, quality
    from benchmarks.bench_model import split_documents
    from benchmarks.ngram import ModifiedKneserNey, score_stream
    from nextword.runtime import evaluate, load
    from nextword.runtime.cache import CacheConfig

    model = load(model_path)
    training, documents = split_documents(str(corpus_files["csv"]), model.info)
    cache = CacheConfig(theta=1.0, mix=0.3, window=32)
    for used in (cache, None):
        result = ngram_mix.measure(model, training, documents, used, order=3, lambdas=(0.0, 0.4, 1.0))
        words = result["words"]
        top5 = [hits / words for hits in result["top5_hits"]]
        ppl = [math.exp(nll / words) for nll in result["nll"]]
        # Weight 0: the model alone, as evaluate scores it (one token per step here, documents side by
        # side there: the last bits of a logit may differ, so a near-tie may rank differently).
        alone = evaluate(model, documents, cache=used if used is not None else False)
        assert words == alone.words and result["cache"] is (used is not None)
        assert abs(result["top5_hits"][0] - round(alone.top5_accuracy * words)) <= 1
        assert ppl[0] == pytest.approx(alone.perplexity, rel=1e-5)
        # Weight 1: the n-gram alone, as the quality report scores it on the same documents.
        tok = model.tokenizer
        counted = ModifiedKneserNey(quality.stream_of(training, tok), model.vocab_size, 3, tok.eod_id)
        ngram = score_stream(counted, quality.stream_of(documents, tok))
        assert ngram["words"] == words
        assert top5[2] == pytest.approx(ngram["top5_accuracy"])
        assert ppl[2] == pytest.approx(ngram["perplexity"])
        # log is concave: a word's log-probability under the mixture is at least the weighted mean of
        # its two ends', so the mixture's total can only gain on that mean (equal where the ends agree).
        nll = result["nll"]
        assert nll[1] <= 0.6 * nll[0] + 0.4 * nll[2] + 1e-9

    out = tmp_path / "mix.json"
    argv = ["--model", str(model_path), "--corpus", str(corpus_files["csv"]), "--order", "2", "--sample", "3"]
    assert ngram_mix.main([*argv, "--result-json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["documents"] == 3 and saved["of"] == len(documents) and saved["order"] == 2
    assert saved["lambdas"] == list(ngram_mix.LAMBDAS) and len(saved["top5_hits"]) == len(ngram_mix.LAMBDAS)
    report = capsys.readouterr().out
    assert "| 0 (the model alone) |" in report and "an optimistic bound" in report


def test_the_cached_benchmark_model_is_found_whichever_folder_names_the_corpus(tmp_path, monkeypatch):
    from benchmarks import bench_model
    from nextword.runtime.model_file import FORMAT_VERSION

    corpus = tmp_path / "data" / "corpus.txt"
    corpus.parent.mkdir()
    corpus.write_text("a neural network\n")
    root = tmp_path / "cache" / "default"
    root.mkdir(parents=True)
    (root / "model.onnx").write_bytes(b"made earlier")
    stamp = {"corpus_sha256": bench_model.file_sha256(corpus)}
    stamp.update(bench_model.DEFAULT_MODEL_SETTINGS, format_version=FORMAT_VERSION)
    (root / "stamp.json").write_text(json.dumps(stamp))
    monkeypatch.setattr(bench_model, "CACHE_DIR", tmp_path / "cache")
    os.utime(corpus, (1_000_000_000, 1_000_000_000))  # copied afresh: another modification time
    monkeypatch.chdir(tmp_path / "cache")  # the same corpus by a relative path: no training, no export
    found = (str(root / "run"), str(root / "model.onnx"), False)
    assert bench_model._default_model("../data/corpus.txt") == found
    copy = tmp_path / "elsewhere.txt"  # the same text under another name: the same model
    copy.write_bytes(corpus.read_bytes())
    assert bench_model._default_model(str(copy)) == found


def test_the_corpus_digest_tells_texts_apart(tmp_path):
    from benchmarks import bench_model

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a neural network\n")
    b.write_text("a neural networks\n")
    assert bench_model.file_sha256(a) != bench_model.file_sha256(b)
    assert bench_model.file_sha256(a) == hashlib.sha256(a.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- rerunning, as a user would


def test_every_result_file_says_when_and_how_it_was_made(monkeypatch, tmp_path):
    from benchmarks import results

    monkeypatch.setattr(sys, "argv", ["benchmarks/speed.py", "--rounds", "2"])
    path = results.save_result("speed", {"rounds": 2}, tmp_path / "speed.json")
    saved = json.loads(path.read_text())
    assert saved["rounds"] == 2 and saved["recorded"]["argv"] == ["--rounds", "2"]
    assert (
        saved["recorded"]["date"].endswith(" UTC")
        and results.recorded_date(saved) == saved["recorded"]["date"]
    )
    assert results.recorded_date({"rounds": 2}) is None  # a file from before the stamps


def test_a_benchmark_stopped_while_it_writes_keeps_the_old_file_and_no_temporary(monkeypatch, tmp_path):
    """Results and documents went to a fixed-name ``.tmp`` (left behind by a failure) or straight onto
    the file (a notebook's figures truncated by a full disk: the next run read broken JSON)."""
    from benchmarks import results

    path = tmp_path / "speed.json"
    path.write_text('{"old": 1}')
    real = Path.write_text

    def half_then_full(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        results.save_result("speed", {"rounds": 2}, path)
    with pytest.raises(OSError, match="No space left"):
        results.write_text(path, "a document")
    monkeypatch.undo()
    assert path.read_text() == '{"old": 1}' and [p.name for p in tmp_path.iterdir()] == ["speed.json"]


def test_a_kept_section_is_dated_by_its_own_result_not_the_previous_run_all(monkeypatch, tmp_path):
    from benchmarks import results, run_all

    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    results.save_result("run_all", {"date": "D0", "ran": ["speed", "threads"]}, tmp_path / "run_all.json")
    sections = {"speed": {"recorded": {"date": "2020-01-02 03:04 UTC"}}, "threads": {}, "generation": {}}
    dates = run_all.section_dates(sections, ["generation"], "D1")
    assert dates == {"speed": "2020-01-02 03:04 UTC", "threads": "D0", "generation": "D1"}


def _fake_run_all(monkeypatch, tmp_path):
    """run_all with its model, its children and its document replaced: what each would have touched."""
    from benchmarks import results, run_all

    real = tmp_path / "real-results"
    monkeypatch.setattr(run_all, "RESULTS_DIR", real)
    monkeypatch.setattr(results, "RESULTS_DIR", real)
    model = {"run_dir": "r", "model_path": "m.onnx", "seconds": 1.0}
    monkeypatch.setattr(run_all, "prepare_model", lambda args: dict(model))
    find_spec = run_all.importlib.util.find_spec  # matplotlib (the bench extra) as if installed: CI has none
    monkeypatch.setattr(
        run_all.importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "matplotlib" else find_spec(name, *a),
    )
    monkeypatch.setattr(run_all, "model_summary", lambda path: {})
    ran: list = []

    def run_benchmark(name, args, results_dir):
        ran.append(run_all.benchmark_args(name, args, results_dir))
        results.save_result(name, {"name": name}, results_dir / f"{name}.json")
        return True, 1.0

    written: dict = {}

    def write_doc(doc, sections, meta, img_dir=run_all.IMG_DIR):
        written.update(doc=doc, img=img_dir, sections=sections, meta=meta)
        return doc

    monkeypatch.setattr(run_all, "run_benchmark", run_benchmark)
    monkeypatch.setattr(run_all, "write_doc", write_doc)
    return real, ran, written


def test_a_quick_run_writes_nothing_into_the_documents_or_the_results_they_are_made_from(
    monkeypatch, tmp_path
):
    from benchmarks import run_all
    from benchmarks.paths import DOCS_DIR

    real, ran, written = _fake_run_all(monkeypatch, tmp_path)
    quick = tmp_path / "quick"
    monkeypatch.setattr(run_all.tempfile, "mkdtemp", lambda prefix: str(quick))
    assert run_all.main(["--quick", "--only", "speed", "--corpus", __file__]) == 0
    assert written["doc"] == quick / "benchmarks.md" and written["img"] == quick / "img"
    assert not str(written["doc"]).startswith(str(DOCS_DIR)) and not real.exists()
    assert ["--result-json", str(quick / "results" / "speed.json")] == ran[0][-8:-6]
    assert (quick / "results" / "run_all.json").is_file()
    # --doc names the document; a full run keeps the real places
    assert (
        run_all.main(["--quick", "--only", "speed", "--corpus", __file__, "--doc", str(tmp_path / "x.md")])
        == 0
    )
    assert written["doc"] == tmp_path / "x.md" and not real.exists()
    assert run_all.outputs(run_all.parse_args([])).doc == DOCS_DIR / "benchmarks.md"


def test_run_all_says_it_needs_matplotlib_before_running_anything(monkeypatch, tmp_path, capsys):
    from benchmarks import run_all

    _fake_run_all(monkeypatch, tmp_path)
    monkeypatch.setattr(run_all.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(run_all, "prepare_model", lambda args: pytest.fail("ran before checking matplotlib"))
    assert run_all.main(["--corpus", __file__]) == 2
    assert "pip install -e '.[train,bench]'" in capsys.readouterr().err


def test_render_only_needs_an_earlier_run_and_dates_each_section_by_its_result(monkeypatch, tmp_path, capsys):
    from benchmarks import results, run_all

    _, _, written = _fake_run_all(monkeypatch, tmp_path)
    assert run_all.main(["--render-only"]) == 2
    assert "no earlier run to render" in capsys.readouterr().err
    results.save_result(
        "run_all", {"date": "D0", "benchmarks": ["speed", "threads"], "dates": {"threads": "D0"}}
    )
    results.save_result("speed", {"name": "speed"})  # rerun alone since: its own date
    assert run_all.main(["--render-only", "--doc", str(tmp_path / "doc.md")]) == 0
    meta = written["meta"]
    assert meta["benchmarks"] == ["speed"] and meta["dates"]["speed"].endswith(" UTC")


def test_training_refuses_an_unknown_recipe_before_training_any(capsys):
    from benchmarks import training

    for bad in ("foo", "ours,notebok", ","):
        with pytest.raises(SystemExit) as stop:
            training.parse_args(["--recipes", bad])
        assert stop.value.code == 2
        assert "--recipes" in capsys.readouterr().err
    assert training.parse_args(["--recipes", "notebook"]).recipes == "notebook"


def test_training_exits_1_when_a_recipe_failed(monkeypatch, tmp_path, capsys):
    from benchmarks import training

    failed = {"runs": {"ours": {"recipe": "ours", "failed": True, "returncode": 1, "error": "boom"}}}
    monkeypatch.setattr(training, "measure", lambda args: failed)
    monkeypatch.setattr(training, "machine_info", lambda: {})
    argv = ["--recipes", "ours", "--corpus", __file__, "--result-json", str(tmp_path / "t.json")]
    assert training.main(argv) == 1
    assert "failed: ours" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name", ["serving", "serving_soak", "batch_int8", "int8_storage", "patentsview_filter", "web"]
)
def test_help_shows_the_whole_docstring_and_the_defaults(name, monkeypatch, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit):
        module.parse_args(None)
    out = capsys.readouterr().out
    last = [line.strip() for line in module.__doc__.strip().splitlines()][-1]
    assert last in out  # the last paragraph, not only the first
    assert "(default: " in out


class _Parsed(Exception):
    """Raised in place of parsing: the parser a benchmark built, to read its options."""


@pytest.mark.parametrize("name", [m for m in MODULES if m != "__main__"])
def test_every_option_of_every_benchmark_says_what_it_is(name, monkeypatch):
    import argparse

    module = importlib.import_module(f"benchmarks.{name}")
    if hasattr(module, "parse_args"):
        entry = lambda: module.parse_args(None)  # noqa: E731
    elif hasattr(module, "main"):
        entry = module.main
    else:
        return
    built: list = []

    def parse(self, args=None, namespace=None):
        built.append(self)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    monkeypatch.setattr(sys, "argv", [name])
    with pytest.raises(_Parsed):
        entry()
    bare = [a.option_strings for a in built[0]._actions if a.option_strings and not a.help]
    assert not bare


@pytest.mark.parametrize(
    ("name", "argv", "flag"),
    [
        ("speed", ["--cases", "nosuch"], "--cases"),
        ("threads", ["--batches", "x"], "--batches"),
        ("threads", ["--batches", "0,8"], "--batches"),
        ("generation", ["--lengths", "x"], "--lengths"),
        ("generation", ["--batches", "x"], "--batches"),
        ("small_corpus", ["--documents", "x"], "--documents"),
        ("load", ["--threads", "0"], "--threads"),
        ("serving", ["--clients", "0"], "--clients"),
        ("serving", ["--rounds", "0"], "--rounds"),
        ("serving_soak", ["--clients", "0"], "--clients"),
        ("keras_ratio", ["--words", "0"], "--words"),
        ("keras_ratio", ["--rounds", "0"], "--rounds"),
        ("batch_int8", ["--rows", "0"], "--rows"),
        ("web", ["--rounds", "-1"], "--rounds"),
        ("web", ["--long-prompts", "-1"], "--long-prompts"),
        ("hostile_limits", ["--repeats", "0"], "--repeats"),
        ("runtime_memory", ["--calls", "0"], "--calls"),
        ("runtime_memory", ["--prompt-words", "0"], "--prompt-words"),
        ("interrupts", ["--calls", "0"], "--calls"),
        ("interrupts", ["--repeats", "0"], "--repeats"),
        ("interrupts", ["--words", "5"], "--words"),
        ("interrupts", ["--seed", "-1"], "--seed"),
        ("worker_memory", ["--workers", "1"], "--workers"),
        ("worker_memory", ["--requests", "0"], "--requests"),
    ],
)
def test_a_bad_flag_value_is_refused_before_any_work(name, argv, flag, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as stop:
        module.parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("small_corpus", "--corpus"),
        ("fine_tune", "--corpus"),
        ("cache_variants", "--model"),
        ("cache_variants", "--corpus"),
        ("dynamic_eval", "--model"),
        ("dynamic_eval", "--corpus"),
        ("ngram_mix", "--model"),
        ("top5_misses", "--corpus"),
        ("batch_int8", "--model"),
        ("int8_storage", "--model"),
        ("load", "--model"),
        ("sampling_speed", "--model"),
        ("cache_text", "--model"),
        ("hostile_limits", "--model"),
        ("runtime_memory", "--model"),
        ("interrupts", "--model"),
        ("worker_memory", "--model"),
        ("other_corpus", "--from-json"),
        ("speed", "--int8"),  # not the fp32 fallback's corpus
        ("threads", "--fp32"),
        ("quality", "--fp32"),
        ("quality", "--corpus"),
    ],
)
def test_a_missing_input_is_one_line_naming_the_file_and_its_flag(name, flag, tmp_path, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    missing = tmp_path / "nope.file"
    present = ["--fp32", __file__] if (name, flag) == ("quality", "--corpus") else []  # CI has no fp32 twin
    with pytest.raises(SystemExit) as stop:
        module.main([flag, str(missing), *present])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{missing} not found: pass {flag} FILE" in err
    if name == "quality":
        assert flag != "--fp32" or "make bundled-model" in err


def test_the_web_benchmark_checks_its_inputs_before_any_work(monkeypatch, tmp_path, capsys):
    from benchmarks import web

    monkeypatch.setattr(web, "run", lambda args: pytest.fail("started measuring"))
    monkeypatch.setattr(web, "WEB", tmp_path)  # no node_modules
    assert web.main([]) == 2
    assert "make web-setup" in capsys.readouterr().err
    (tmp_path / "node_modules").mkdir()
    doc = tmp_path / "doc.md"
    doc.write_text("# no markers\n")
    # never appended to a file without the markers
    assert web.main(["--write", str(doc), "--long-prompts", "0"]) == 2
    assert "markers" in capsys.readouterr().err and doc.read_text() == "# no markers\n"
    doc.write_text(f"a\n{web.END}\n{web.START}\n")  # the end before the start: no place either
    assert web.main(["--write", str(doc), "--long-prompts", "0"]) == 2
    assert web.check_inputs(web.parse_args(["--model", str(doc), "--long-prompts", "0"])) is None
    # the long prompts' corpus, checked before any work; nothing asked for at all is refused
    missing = web.check_inputs(web.parse_args(["--model", str(doc), "--corpus", str(tmp_path / "no.csv")]))
    assert missing is not None and "--corpus" in missing and "--long-prompts 0" in missing
    assert "nothing to measure" in web.check_inputs(web.parse_args(["--rounds", "0", "--parity", "0"]))
    # texts alone need only their own markers
    doc.write_text(f"a\n{web.PARITY_START}\nold\n{web.PARITY_END}\n")
    texts_only = ["--model", str(doc), "--rounds", "0", "--long-prompts", "0", "--write", str(doc)]
    assert web.check_inputs(web.parse_args(texts_only)) is None
    with_speed = ["--model", str(doc), "--long-prompts", "0", "--write", str(doc)]  # its markers missing
    assert "web-bench:start" in web.check_inputs(web.parse_args(with_speed))


def test_a_node_failure_shows_what_node_wrote_on_stderr(monkeypatch, capsys):
    from benchmarks import web

    failing = [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('Cannot find package onnxruntime-web'); sys.exit(1)",
    ]
    with pytest.raises(web.NodeError, match="Cannot find package onnxruntime-web"):
        web.run_node(failing, cwd=None)

    def run(args):
        web.run_node(failing, cwd=None)

    monkeypatch.setattr(web, "check_inputs", lambda args: None)
    monkeypatch.setattr(web, "run", run)
    assert web.main([]) == 1
    assert "Cannot find package onnxruntime-web" in capsys.readouterr().err


def test_the_corpus_check_of_make_bench_and_make_quality_names_corpus(tmp_path):
    import subprocess

    nowhere = [f"BIN={tmp_path}/bin", f"VENV={tmp_path}/venv"]  # nothing past the check could run
    for target in ("bench", "quality"):
        done = subprocess.run(
            ["make", "-s", "-o", "setup", target, f"CORPUS={tmp_path}/nope.csv", *nowhere],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode != 0
        assert f"corpus {tmp_path}/nope.csv not found: run make {target} CORPUS=your.csv" in done.stdout


def test_the_security_notes_quote_the_bombs_command_with_the_value_it_needs():
    from benchmarks import patentsview_filter

    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    quoted = text.split("`python -m benchmarks.patentsview_filter ", 1)[1].split("`", 1)[0]
    assert patentsview_filter.parse_args(quoted.split()).bombs == 1024


def test_dynamic_eval_reports_progress_after_each_document(monkeypatch, capsys):
    from benchmarks import dynamic_eval
    from nextword.runtime import cache

    documents = [np.arange(4), np.arange(6)]
    traced = [(d, np.zeros((len(d) - 1, 3)), np.zeros((len(d) - 1, 2))) for d in documents]
    monkeypatch.setattr(dynamic_eval, "traced_documents", lambda model, docs: iter(traced))
    monkeypatch.setattr(dynamic_eval, "adapted_scores", lambda ids, *rest: (np.zeros(3), np.ones(3, bool)))
    monkeypatch.setattr(cache, "required_cache", lambda model: None)
    totals = dynamic_eval.score_part(None, documents, [(0.0, 0.0, False), (1.0, 0.0, False)], "development")
    assert totals[1.0, 0.0, False].words == 6
    err = capsys.readouterr().err
    assert "development document 1/2, 2 settings" in err and "development document 2/2" in err
    with pytest.raises(SystemExit):
        dynamic_eval.parse_args(["--documents", "0"])


@pytest.mark.slow
def test_the_interrupts_benchmark_runs_every_case_and_finds_nothing_left(model_path, capsys):
    from benchmarks import interrupts

    argv = ["--model", str(model_path), "--calls", "20", "--repeats", "3", "--words", "8"]
    assert interrupts.main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")][2:]  # after the header lines
    assert len(rows) == len(interrupts.CASES)
    for row, label in zip(rows, interrupts.CASES.values(), strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == label.format(pieces=interrupts.PIECES)
        assert cells[1] == ("20" if "KeyboardInterrupt" in label else "3")
        assert cells[3] in ("0 (OS: 0)", "0 (OS: n/a)") and cells[4] in ("0", "n/a")  # n/a: no /proc
        assert cells[5:] == ["0", "yes"]
    assert "that gave `generate()`'s text: 3 of 3" in out and "\nEverything held" in out
    case = {"case": "closed", "runs": 3, "threads": 1, "os_threads": 1, "fds": 0, "in_flight": 1}
    _, faults = interrupts.rows_and_faults({"reference": "a", "cases": [{**case, "next_text": "b"}]}, "a")
    assert len(faults) == 4  # a thread (Python and OS), a run counted in flight, another text


def test_the_quality_report_refuses_a_file_without_its_training_split(model_path, corpus_files, tmp_path):
    """A model file that records no provenance (exported by hand, or its record stripped) stopped the
    report with an AttributeError deep in rebuilding the split; it now names the file and the fix."""
    import crafted

    from benchmarks.quality import model_splits
    from nextword.runtime import load

    proto = crafted.proto(model_path)
    config = json.loads(crafted.meta(proto, "nextword.config"))
    del config["provenance"], config["train"]  # no record, nor the older files' train section it comes from
    crafted.set_meta(proto, "nextword.config", json.dumps(config))
    stripped = tmp_path / "stripped.onnx"
    stripped.write_bytes(proto.SerializeToString())
    with pytest.raises(SystemExit, match=r"stripped\.onnx does not record its training split.*export"):
        model_splits(load(stripped), str(corpus_files["csv"]))
