"""Every ``nextword`` subcommand, called in-process through ``main(argv)`` and once as a console script."""

import errno
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from helpers import run_python
from nextword.cli.main import main
from nextword.runtime import load


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def with_metadata(model_path, out, key: str, value: str | None):
    """A copy of the model file at ``out`` with metadata ``key`` set to ``value`` (None: removed)."""
    onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the file")
    proto = onnx.load(str(model_path))
    kept = [p for p in proto.metadata_props if p.key != key]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    if value is not None:
        proto.metadata_props.add(key=key, value=value)
    out.write_bytes(proto.SerializeToString())
    return out


def test_num_beams_overrides_a_files_sampling_defaults(capsys, model_path, tmp_path):
    # a file exported with --top-k 40: --num-beams must drop it (--top-k 0 would too)
    sampler = with_metadata(
        model_path, tmp_path / "top-k.onnx", "nextword.generation", '{"top_k": 40, "max_words": 9}'
    )
    code, beams, err = run_cli(capsys, "generate", "the network", "--model", sampler, "--num-beams", 2)
    assert code == 0, err
    _, same, _ = run_cli(
        capsys, "generate", "the network", "--model", model_path, "--num-beams", 2, "--max-words", 9
    )
    assert beams == same


def test_generate_prints_prompt_and_continuation_reproducibly(capsys, model_path):
    code, first, _ = run_cli(capsys, "generate", "a neural network", "--model", model_path, "--seed", 1)
    assert code == 0 and first.startswith("a neural network ") and len(first.split()) > 4
    _, second, _ = run_cli(capsys, "generate", "a neural network", "--model", model_path, "--seed", 1)
    assert second == first
    _, greedy, _ = run_cli(
        capsys,
        "generate",
        "the system",
        "--model",
        model_path,
        "--temperature",
        0,
        "--max-words",
        3,
        "--top-k",
        2,
    )
    assert len(greedy.split()) <= 2 + 3


def test_generate_rejects_bad_options(capsys, model_path):
    code, _, err = run_cli(capsys, "generate", "x", "--model", model_path, "--temperature", "-1")
    assert code == 2 and "--temperature must be a finite number >= 0" in err
    # refusals name the flags the user types, not the API's field names
    code, _, err = run_cli(
        capsys, "generate", "x", "--model", model_path, "--num-beams", "2", "--num-return-sequences", "3"
    )
    assert code == 2 and "--num-return-sequences=3 must be <= --num-beams=2" in err
    code, _, err = run_cli(capsys, "generate", "x", "--model", model_path, "--num-beams", 2, "--top-p", 0.5)
    assert code == 2 and "sampling options --top-p=0.5; drop them or set --num-beams=1" in err
    code, _, err = run_cli(capsys, "generate", "x", "--model", model_path.parent / "missing.onnx")
    assert code == 2 and "does not exist" in err
    with pytest.raises(SystemExit):
        main(["generate", "x", "--model", str(model_path), "--top-k", "many"])
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_greedy_copies_and_a_length_penalty_without_beams_are_warned_about(capsys, caplog, model_path):
    """Greedy decoding gives every row the same text: three copies came back without a word."""
    args = ("generate", "a b", "--model", model_path, "--temperature", 0, "--max-words", 3, "--json")
    code, out, _ = run_cli(capsys, *args, "--num-return-sequences", 3)
    assert code == 0 and len({r["text"] for r in json.loads(out)}) == 1
    assert "the 3 texts of each prompt will be the same" in caplog.text and "--num-beams 3" in caplog.text
    for more in (("--num-return-sequences", 1), ("--num-return-sequences", 2, "--num-beams", 2)):
        caplog.clear()
        code, _, _ = run_cli(capsys, *args, *more)
        assert code == 0 and "will be the same" not in caplog.text
    code, _, _ = run_cli(
        capsys, "generate", "a", "--model", model_path, "--length-penalty", 2, "--max-words", 2
    )
    assert code == 0 and "it does nothing without --num-beams above 1" in caplog.text


def test_info_shows_vocabulary_layers_metrics_parity_versions(capsys, model_path, model, tmp_path):
    code, out, _ = run_cli(capsys, "info", model_path)
    assert code == 0
    assert (
        f"vocabulary     {model.vocab_size} words (tokenizer format 3: combining marks stay inside words; "
        "invisible formatting characters are words of their own)" in out
    )
    assert "2 LSTM layer(s) of 32, 32 units" in out
    assert "best epoch" in out and "(by the development loss)" in out and "perplexity" in out
    assert "more held out of training, the development part, whole groups of near-duplicates)" in out
    assert "greedy identical" in out and "tf2onnx" in out
    code, out, _ = run_cli(capsys, "info", model_path, "--json")
    data = json.loads(out)
    assert (
        data["vocab_size"] == model.vocab_size and data["parity"]["passed"] and data["metrics"]["epoch"] >= 1
    )
    assert data["tokenizer_version"] == 3
    # a file whose tokenizer predates version 3 (or 2) keeps its rules, and info says so
    for version, says in (
        (1, "a literal <unk> is read as <, unk, >"),
        (2, "a literal <unk> is one unknown word; combining marks split words"),
    ):
        old = model.tokenizer.to_json().replace('"version":3', f'"version":{version}')
        assert old != model.tokenizer.to_json()
        code, out, _ = run_cli(
            capsys,
            "info",
            with_metadata(model_path, tmp_path / f"v{version}.onnx", "nextword.tokenizer", old),
        )
        assert code == 0 and f"words (tokenizer format {version}: {says})" in out
    assert data["provenance"] == model.info.provenance.to_dict()
    assert data["provenance"]["split"]["scheme"] == "dedup-v5"


def test_evaluate_table_json_and_splits(capsys, model_path, model, corpus_files):
    code, out, _ = run_cli(capsys, "evaluate", model_path, corpus_files["csv"])
    assert code == 0 and "perplexity" in out and "top-5 accuracy" in out
    _, out, _ = run_cli(capsys, "evaluate", model_path, corpus_files["text"], "--json", "--split", "val")
    val = json.loads(out)
    _, out, _ = run_cli(capsys, "evaluate", model_path, corpus_files["jsonl"], "--json", "--split", "train")
    train = json.loads(out)
    _, out, _ = run_cli(capsys, "evaluate", model_path, corpus_files["csv"], "--json", "--split", "dev")
    dev = json.loads(out)
    counts = model.info.provenance.data  # the split the model was trained with, deduplicated
    assert val["documents"] + train["documents"] + dev["documents"] == 80 - counts.exact_duplicates
    assert (val["documents"], train["documents"]) == (counts.val_documents, counts.train_documents)
    assert dev["documents"] == counts.dev_documents >= 1
    assert val["perplexity"] > 1 and 0 <= val["accuracy"] <= val["top5_accuracy"] <= 1
    code, _, err = run_cli(capsys, "evaluate", model_path, corpus_files["csv"], "--text-column", "nope")
    assert code == 2 and "no column 'nope'" in err


def test_evaluate_names_the_cache_flag_for_a_file_without_settings(
    capsys, model_path, tmp_path, corpus_files
):
    bare = with_metadata(model_path, tmp_path / "bare.onnx", "nextword.cache", None)
    code, _, err = run_cli(capsys, "evaluate", bare, corpus_files["csv"], "--cache")
    assert (
        code == 2 and "--cache: bare.onnx has no continuous-cache settings" in err and "drop --cache" in err
    )


@pytest.mark.train
@pytest.mark.slow
def test_train_export_resume_through_the_cli(capsys, corpus_files, tmp_path):
    run = tmp_path / "run"
    small = [
        "--lstm-units",
        8,
        "--embedding-dim",
        8,
        "--seq-len",
        8,
        "--batch-size",
        16,
        "--min-count",
        1,
        "--verbose",
        0,
    ]
    code, out, _ = run_cli(capsys, "train", corpus_files["text"], "--out", run, "--epochs", 1, *small)
    assert code == 0 and "1 epoch," in out and (run / "model.keras").is_file()
    assert f"next: export the model with `nextword export {run} --out MODEL.onnx`" in out
    code, _, err = run_cli(capsys, "train", corpus_files["text"], "--out", run, *small)
    assert code == 2 and f"run folder {run} holds a finished run (1 of 1 epoch)" in err
    assert f"`nextword train --resume {run} --epochs 2` (or more)" in err and "--overwrite" in err
    code, out, _ = run_cli(capsys, "train", "--resume", run, "--epochs", 2)
    assert code == 0 and "2 epochs," in out
    code, _, err = run_cli(capsys, "train", "--resume", run, "--lstm-units", 16)
    assert code == 2 and "cannot change --lstm-units" in err
    code, out, _ = run_cli(capsys, "export", run, "--out", tmp_path / "m.onnx", "--int8")
    assert code == 0 and "LSTM" in out and "identical" in out and (tmp_path / "m.onnx").is_file()
    assert "int8 against fp32" in out and "validation (int8)" in out
    export_out = out
    code, out, _ = run_cli(capsys, "info", tmp_path / "m.onnx")
    assert (
        "corpus.txt: 80 documents, 0 exact duplicates dropped" in out and "split seed 0, deduplicated" in out
    )
    assert "held out for validation" in out
    assert "trained with   nextword train" in out and "exported with  nextword export" in out
    assert "quality int8" in out and "int8 vs fp32" in out
    # The int8 difference is shown to three significant digits: a tiny model's is far below 0.001.
    int8_diff = load(tmp_path / "m.onnx").info.parity["int8_vs_fp32"]["max_abs_logit_diff"]
    shown = f"max |logit difference| {int8_diff:.3g}"
    assert shown in out and shown in export_out
    code, _, err = run_cli(capsys, "export", tmp_path / "nothing", "--out", tmp_path / "n.onnx")
    assert code == 2 and "does not exist" in err


def test_ctrl_c_during_train_says_how_to_go_on_without_a_traceback(
    capsys, monkeypatch, run_dir, corpus_files, tmp_path
):
    import nextword.train
    import nextword.train.prechecks

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nextword.train, "train", interrupted)
    monkeypatch.setattr(nextword.train, "resume", interrupted)
    for check in ("check_train", "check_resume"):  # the interrupt comes in training, after its checks
        monkeypatch.setattr(nextword.train.prechecks, check, lambda *args, **kwargs: None)
    code, _, err = run_cli(capsys, "train", "--resume", run_dir)  # finished: --resume would train nothing
    assert code == 130 and "Traceback" not in err
    assert "interrupted; the run has finished (" in err and f"`nextword export {run_dir} --out" in err
    assert f"`nextword train --resume {run_dir}`" not in err
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    metrics = json.loads((unfinished / "metrics.json").read_text())
    metrics |= {"epochs_planned": len(metrics["epochs"]) + 5, "stopped_early": False}
    (unfinished / "metrics.json").write_text(json.dumps(metrics))
    code, _, err = run_cli(capsys, "train", "--resume", unfinished)
    hint = f"continue it with `nextword train --resume {unfinished}`"
    assert code == 130 and f"interrupted; the run keeps its last checkpoint: {hint}" in err
    # A session that raised the epoch total says so again: the folder keeps the total it started with.
    code, _, err = run_cli(capsys, "train", "--resume", run_dir, "--epochs", 99)
    assert code == 130 and f"continue it with `nextword train --resume {run_dir} --epochs 99`" in err
    code, _, err = run_cli(capsys, "train", corpus_files["text"], "--out", tmp_path / "fresh")
    assert code == 130 and err.strip() == "nextword train: interrupted; nothing was kept: start the run again"
    partial = tmp_path / "partial"  # left by a nextword that kept such folders: files, no checkpoint
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    code, _, err = run_cli(capsys, "train", corpus_files["text"], "--out", partial)
    assert code == 130 and "so there is nothing to resume: start the run again with --overwrite" in err
    assert "--resume" not in err


@pytest.mark.train
def test_train_s_progress_goes_to_standard_error_and_q_silences_it(
    capsys, corpus_files, tmp_path, monkeypatch
):
    """Keras's bar and each epoch's line were on standard output, among the result a script reads, and
    ``-q`` left them there. Under NO_COLOR the bar on a terminal has no colour codes."""
    from nextword.cli.display import ProgressStream

    small = ["--lstm-units", 8, "--embedding-dim", 8, "--seq-len", 8, "--batch-size", 16, "--min-count", 1]
    argv = ["train", corpus_files["text"], "--epochs", 1, *small]
    code, out, err = run_cli(capsys, *argv, "--out", tmp_path / "a", "--verbose", 2)
    assert code == 0 and "Epoch 1/1" in err and "loss" in err, err
    assert out.splitlines()[0].startswith(f"run {tmp_path / 'a'}: 1 epoch,") and "Epoch" not in out
    code, out, err = run_cli(capsys, "-q", *argv, "--out", tmp_path / "b")
    assert code == 0 and "Epoch" not in err + out and "1 epoch," in out
    # for that session only: verbose=0 stored with the run silenced a later --resume
    assert json.loads((tmp_path / "b" / "config.json").read_text())["verbose"] == 1
    code, out, err = run_cli(capsys, "train", "--resume", tmp_path / "b", "--epochs", 2)
    assert code == 0 and "Epoch 2/2" in err, err
    code, out, err = run_cli(capsys, "-q", *argv, "--out", tmp_path / "c", "--verbose", 2)  # asked: shown
    assert code == 0 and "Epoch 1/1" in err
    written = []
    stream = ProgressStream(type("S", (), {"write": written.append, "isatty": lambda self: True})())
    stream.write("\x1b[1m17/17\x1b[0m \x1b[32m━━\x1b[0m\r")
    assert written == ["17/17 ━━\r"] and stream.isatty()
    from nextword.cli.display import progress_stream

    monkeypatch.setenv("NO_COLOR", "1")
    written.clear()
    monkeypatch.setattr(sys, "stderr", type("S", (), {"write": written.append})())
    progress_stream().write("\x1b[32m━\x1b[0m")
    monkeypatch.setenv("NO_COLOR", "")  # set but empty: colour, as no-color.org says
    progress_stream().write("\x1b[32m━\x1b[0m")
    assert written == ["━", "\x1b[32m━\x1b[0m"]


class Full:
    """A stream on a full disk: every write and flush fails with ENOSPC."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.train
def test_progress_that_cannot_be_written_stops_and_the_training_goes_on(capsys, corpus_files, tmp_path):
    """Standard error on a full disk: the first line of progress that failed to be written ended the
    run ("No space left on device"), and a run not yet at its first checkpoint was removed."""

    from nextword.cli.display import ProgressStream

    stream = ProgressStream(Full(), uncoloured=False)
    assert stream.write("Epoch 1/1\n") == 10 and stream.stopped
    stream.flush()  # nothing more is tried
    with pytest.raises(OSError, match="Bad file descriptor"):  # other failures are not the display's
        ProgressStream(type("S", (), {"write": lambda s, t: os.write(-1, b"")})()).write("x")
    small = ["--lstm-units", 8, "--embedding-dim", 8, "--seq-len", 8, "--batch-size", 16, "--min-count", 1]
    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", Full())  # the progress, and every log line, fail to be written
        argv = ("train", corpus_files["text"], "--epochs", 1, *small, "--out", run, "--verbose", 2)
        code = main([str(a) for a in argv])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(f"run {run}: 1 epoch,") and (run / "model.keras").is_file()


def test_a_result_that_cannot_be_printed_is_said_as_standard_outputs_with_what_was_done(tmp_path, capsys):
    """`nextword export ... > /dev/full` (or corpus, or train) said only "No space left on device" after
    the file was written, as if the work had failed."""
    from nextword.cli.display import printing_result

    with pytest.MonkeyPatch.context() as patch, pytest.raises(OSError) as caught:
        patch.setattr(sys, "stdout", Full())
        with printing_result("m.onnx was written"):
            print("wrote m.onnx")
    assert caught.value.filename == "standard output" and caught.value.errno == errno.ENOSPC
    assert caught.value.strerror == (
        "No space left on device, so the result was not shown (m.onnx was written); redirect it where there "
        "is room"
    )
    with pytest.raises(OSError, match="elsewhere"), printing_result("done"):  # a file's own error passes
        raise OSError(errno.ENOSPC, "No space left on device", "elsewhere")
    with pytest.MonkeyPatch.context() as patch:  # started with `>&-`: nothing to write, nothing to say
        patch.setattr(sys, "stdout", None)
        with printing_result("done"):
            print("wrote m.onnx")
    from nextword.cli.main import _os_error

    said = _os_error(caught.value)
    assert said.startswith("standard output: No space left on device, so the result was not shown (m.onnx")
    assert said.endswith("was written); redirect it where there is room")  # not the advice on files


@pytest.mark.parametrize("command", ["score", "info"])
def test_sigterm_ends_every_command_as_ctrl_c_does(capsys, monkeypatch, model_path, command):
    """Only train and export took SIGTERM: the others ended without a word, exit status 143, and a
    command that writes a file left its temporary file behind (test_patentsview)."""
    import os
    import signal
    import time

    import nextword.cli.main as cli

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs first
        raise AssertionError("SIGTERM did not end the command")

    monkeypatch.setattr(cli, {"score": "score_command", "info": "show_info"}[command], terminated)
    before = signal.getsignal(signal.SIGTERM)
    code, out, err = run_cli(capsys, command, model_path, *(["the network"] if command == "score" else []))
    assert (code, out, err) == (143, "", f"nextword {command}: terminated\n")
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_during_train_ends_it_as_ctrl_c_does(capsys, monkeypatch, run_dir, tmp_path):
    """SIGTERM (timeout, systemd, docker) ended training silently, exit status -15."""
    import os
    import signal
    import time

    import nextword.train
    import nextword.train.prechecks

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs first
        raise AssertionError("SIGTERM did not end the command")

    monkeypatch.setattr(nextword.train, "resume", terminated)
    monkeypatch.setattr(nextword.train.prechecks, "check_resume", lambda *args, **kwargs: None)  # in training
    before = signal.getsignal(signal.SIGTERM)
    run = shutil.copytree(run_dir, tmp_path / "workers")
    metrics = json.loads((run / "metrics.json").read_text())  # epochs left to train
    metrics |= {"epochs_planned": len(metrics["epochs"]) + 5, "stopped_early": False}
    (run / "metrics.json").write_text(json.dumps(metrics))
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert code == 143 and "Traceback" not in err
    assert (
        f"terminated; the run keeps its last checkpoint: continue it with `nextword train --resume {run}`"
        in err
    )
    assert signal.getsignal(signal.SIGTERM) == before  # the command's handler is gone with it
    stored = json.loads((run / "config.json").read_text())  # a multi-worker run goes on on every worker
    (run / "config.json").write_text(json.dumps({**stored, "distribute": "multi-worker"}))
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert (
        code == 143
        and "on the chief (worker 0) and on the other workers with it or the command that started the run, "
        "each with its TF_CONFIG (or here alone, adding --distribute none)"
        in err
    )
    # a multi-worker run's worker, its own folder on its own machine: no verdict on the run from it
    import argparse

    from nextword.cli.training import after_interrupt

    assert after_interrupt(argparse.Namespace(command="train", out=str(run), distribute="multi-worker")) == (
        "; restart every worker with the same command: the chief (worker 0) goes on from the last checkpoint "
        "its run folder holds, or starts the run again where there is none"
    )


@pytest.mark.train
def test_train_without_corpus_or_out_explains(capsys, corpus_files, tmp_path):
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "r")
    assert code == 2 and "no corpus files given" in err
    code, _, err = run_cli(capsys, "train", corpus_files["csv"])
    assert code == 2 and "--out RUN_DIR" in err
    code, _, err = run_cli(capsys, "train", corpus_files["csv"], "--out", tmp_path / "r", "--lstm-units", 0)
    assert code == 2 and "--lstm-units must be a positive integer" in err


def test_train_and_export_without_tensorflow_say_what_to_install(corpus_files, tmp_path):
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    for argv in (
        ["train", str(corpus_files["csv"]), "--out", str(tmp_path / "r")],
        ["export", str(tmp_path), "--out", str(tmp_path / "m.onnx")],
    ):
        result = run_python(code, *argv, block_training_stack=True)
        assert result.returncode == 2, result.stderr
        assert 'pip install "nextword[train]"' in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_console_script_is_installed():
    exe = shutil.which("nextword") or str(__import__("pathlib").Path(sys.executable).parent / "nextword")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("nextword ")


def test_generate_exposes_every_control_json_and_several_prompts(capsys, model_path):
    code, out, _ = run_cli(
        capsys,
        "generate", "the network", "each neuron", "--model", model_path, "--json",
        "--max-words", 12, "--min-words", 2, "--top-k", 10, "--top-p", 0.9, "--repetition-penalty", 1.2,
        "--no-repeat-ngram-size", 3, "--stop", "zzz", "--no-stop-at-end", "--allow-unknown",
        "--num-return-sequences", 2, "--seed", 4,
    )  # fmt: skip
    assert code == 0
    results = json.loads(out)
    assert [r["prompt"] for r in results] == ["the network", "the network", "each neuron", "each neuron"]
    assert all(r["full"] == r["prompt"] + r["text"] for r in results)
    _, beams, _ = run_cli(
        capsys, "generate", "the network", "--model", model_path, "--num-beams", 3, "--length-penalty", 0.5
    )
    _, again, _ = run_cli(
        capsys, "generate", "the network", "--model", model_path, "--num-beams", 3, "--length-penalty", 0.5
    )
    assert beams == again and beams.startswith("the network")


def test_stop_repeats_and_never_takes_the_prompts_after_it(capsys, model_path, model):
    """--stop took every word after it: a second prompt became a stop string, silently."""
    code, out, _ = run_cli(
        capsys, "generate", "the network", "--model", model_path, "--json", "--stop", ".", "--stop", "the",
        "--max-words", 20, "--seed", 2,
    )  # fmt: skip
    assert code == 0
    (result,) = json.loads(out)
    assert result["text"] == model.generate("the network", max_words=20, seed=2, stop=(".", "the"))
    argv = ("generate", "the network", "--model", model_path, "--stop", ".", "each neuron")
    with pytest.raises(SystemExit) as exited:
        run_cli(capsys, *argv)
    assert exited.value.code == 2 and "unrecognized arguments: each neuron" in capsys.readouterr().err


def test_score_reads_a_utf8_bom_as_no_word_and_names_utf16_and_a_closed_stdin(
    capsys, model_path, tmp_path, monkeypatch
):
    text = "the network stores the weights"
    plain, bom, utf16 = tmp_path / "plain.txt", tmp_path / "bom.txt", tmp_path / "utf16.txt"
    plain.write_text(text, encoding="utf-8")
    bom.write_text(text, encoding="utf-8-sig")
    utf16.write_text(text, encoding="utf-16")
    _, expected, _ = run_cli(capsys, "score", "--model", model_path, "--file", plain, "--json")
    _, with_bom, _ = run_cli(capsys, "score", "--model", model_path, "--file", bom, "--json")
    assert with_bom == expected
    code, _, err = run_cli(capsys, "score", "--model", model_path, "--file", utf16)
    assert code == 2 and "UTF-16 text" in err and "re-save the file as UTF-8" in err
    monkeypatch.setattr(sys, "stdin", None)  # started with standard input closed
    code, _, err = run_cli(capsys, "score", "--model", model_path, "--file", "-")
    assert code == 2 and "standard input is closed" in err


def test_json_output_holds_null_where_a_figure_is_not_finite():
    from nextword.cli.display import json_text

    text = json_text({"perplexity": math.inf, "words": [1.5, math.nan], "ok": 2.0})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "perplexity": None,
        "words": [1.5, None],
        "ok": 2.0,
    }


def test_a_nan_log_likelihood_is_no_overflow_and_a_huge_total_is_written_short():
    """A NaN log-likelihood (a model that makes NaN scores) was reported as perplexity inf, as an
    overflow is; the score's total, printed in full, ran to 300 digits."""
    from nextword.cli.display import figure
    from nextword.runtime.scoring import perplexity

    assert math.isnan(perplexity(math.nan, 3))
    assert perplexity(710.0 * 3, 3) == math.inf and perplexity(3.0, 3) == math.e
    assert figure(-8e300, ".3f") == "-8e+300" and figure(-12.3456, ".3f") == "-12.346"


def test_ctrl_c_during_a_stream_ends_the_streamed_line_first(capsys, model_path, monkeypatch):
    from nextword.runtime import NextWordModel

    def interrupted(self, prompt, config=None, **options):
        yield " the first words"
        raise KeyboardInterrupt

    monkeypatch.setattr(NextWordModel, "stream", interrupted)
    code, out, err = run_cli(capsys, "generate", "the system", "--model", model_path, "--stream")
    assert code == 130 and out == "the system the first words\n" and "interrupted" in err


def test_generate_stream_prints_the_same_text(capsys, model_path):
    _, streamed, _ = run_cli(capsys, "generate", "the system", "--model", model_path, "--seed", 8, "--stream")
    _, plain, _ = run_cli(capsys, "generate", "the system", "--model", model_path, "--seed", 8)
    assert streamed == plain
    code, _, err = run_cli(capsys, "generate", "a", "b", "--model", model_path, "--stream")
    assert code == 2 and "--stream takes one prompt" in err
    for extra, message in [
        (("--json",), "--stream prints the text as it comes, --json one list at the end: choose one"),
        (("--num-return-sequences", 2), "prints one text: use --num-return-sequences 1 and --num-beams 1"),
        (("--num-beams", 2), "--stream prints one text"),
        (("--top-k", -1), "--top-k must be in"),  # refused before the prompt is printed
    ]:
        code, out, err = run_cli(capsys, "generate", "a prompt", "--model", model_path, "--stream", *extra)
        assert code == 2 and message in err and out == "", extra


def test_generate_uses_the_environment_model(capsys, model_path, monkeypatch):
    from nextword.runtime import default

    monkeypatch.setattr(default, "_models", {})
    monkeypatch.setenv("NEXTWORD_MODEL", str(model_path))
    code, out, _ = run_cli(capsys, "generate", "the model", "--seed", 1)
    assert code == 0 and out.startswith("the model")
    monkeypatch.setenv("NEXTWORD_MODEL", str(model_path.parent / "gone.onnx"))
    code, _, err = run_cli(capsys, "generate", "the model")
    assert code == 2 and "gone.onnx does not exist" in err and "comes from $NEXTWORD_MODEL" in err
    code, _, err = run_cli(capsys, "generate", "the model", "--model", model_path.parent / "gone.onnx")
    assert code == 2 and "NEXTWORD_MODEL" not in err  # a path typed: no word of the variable


def test_suggest_and_score(capsys, model_path, model, tmp_path):
    code, out, _ = run_cli(capsys, "suggest", "the network", "-k", 3, "--model", model_path)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].split("\t")[0] == model.next_words("the network", k=1)[0][0]
    _, out, _ = run_cli(capsys, "suggest", "the network", "--model", model_path, "--json")
    assert len(json.loads(out)) == 5
    code, out, _ = run_cli(capsys, "score", model_path, "The network stores the weights.")
    assert code == 0 and "perplexity" in out
    text_file = tmp_path / "t.txt"
    text_file.write_text("The network stores the weights.")
    _, out, _ = run_cli(capsys, "score", model_path, "--file", text_file, "--json")
    data = json.loads(out)
    assert data["perplexity"] == pytest.approx(model.score("The network stores the weights.").perplexity)
    assert [w["word"] for w in data["words"]][:2] == ["the", "network"]
    text_file.write_bytes(b"caf\xe9")
    code, _, err = run_cli(capsys, "score", model_path, "--file", text_file)
    assert code == 2 and "not UTF-8" in err
    code, _, err = run_cli(capsys, "suggest", "the network", "-k", 0, "--model", model_path)
    assert code == 2 and f"-k must be in 1..{model.vocab_size}" in err


def test_cache_asked_of_a_file_without_one_names_the_flag(capsys, model_path, tmp_path):
    plain = with_metadata(model_path, tmp_path / "no-cache.onnx", "nextword.cache", None)
    for command in (["generate", "the"], ["suggest", "the"], ["score", "the network"]):
        code, _, err = run_cli(capsys, *command, "--model", plain, "--cache")
        assert code == 2 and "--cache: no-cache.onnx has no continuous-cache settings" in err, command
        assert "drop --cache" in err and "cache=True" not in err
        code, _, err = run_cli(capsys, *command, "--model", plain)
        assert code == 0, err


def test_score_evaluate_and_info_take_the_model_as_generate_does(
    capsys, model_path, model, tmp_path, monkeypatch
):
    """``--model`` works for score, evaluate and info as for generate and suggest; score without a model uses
    the default one ($NEXTWORD_MODEL here); a misplaced model or text is named, not guessed."""
    text = "The network stores the weights."
    expected = model.score(text).perplexity
    monkeypatch.setenv("NEXTWORD_MODEL", str(model_path))
    text_file = tmp_path / "t.txt"
    text_file.write_text(text)
    for argv in (
        (model_path, text),
        (text, "--model", model_path),
        ("--file", text_file, "--model", model_path),
        (model_path, "--file", text_file),
        (text,),  # the default model
        ("--file", text_file),
    ):
        code, out, err = run_cli(capsys, "score", *argv, "--json")
        assert code == 0 and json.loads(out)["perplexity"] == pytest.approx(expected), (argv, err)
    # a sentence that merely ends in ".onnx" is text to score
    code, out, err = run_cli(capsys, "score", "the weights are saved to model.onnx", "--json")
    assert code == 0 and len(json.loads(out)["words"]) > 5, err
    for argv, message in (
        ((model_path,), "names a model file: give the text to score after it"),
        (("missing.onnx",), "names a model file: give the text to score after it"),
        ((), "no text to score"),
        ((model_path, text, "--file", text_file), "--file reads the text to score"),
        ((text, text, "--model", model_path), "with --model, give the text to score or --file, one of them"),
    ):
        code, out, err = run_cli(capsys, "score", *argv)
        assert code == 2 and message in err and out == "", argv
    corpus = tmp_path / "c.txt"
    corpus.write_text("the network stores the weights .\n\nthe model learns .\n")
    _, first, _ = run_cli(capsys, "evaluate", model_path, corpus, "--json")
    code, second, _ = run_cli(capsys, "evaluate", "--model", model_path, corpus, "--json")
    assert code == 0 and json.loads(first)["perplexity"] == json.loads(second)["perplexity"]
    assert json.loads(second)["documents"] == 2
    code, _, err = run_cli(capsys, "evaluate")
    assert code == 2 and "no model given" in err
    code, _, err = run_cli(capsys, "evaluate", corpus)  # it was read as a model file: a protobuf error
    assert code == 2 and f"{corpus} looks like a corpus, and evaluate's first argument is the model" in err
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n")
    code, _, err = run_cli(capsys, "evaluate", model_path, blank)
    assert code == 2 and f"no documents to evaluate: {blank} holds no non-empty document" in err
    assert "read as CSV" not in err
    header = tmp_path / "header.txt"  # one line, read as CSV: a header and no row
    header.write_text("the network learns.\n")
    code, _, err = run_cli(capsys, "evaluate", model_path, header, "--corpus-format", "csv")
    assert code == 2 and "holds no non-empty document (read as CSV: the first line is the header" in err
    _, first, _ = run_cli(capsys, "info", model_path, "--json")
    code, second, _ = run_cli(capsys, "info", "--model", model_path, "--json")
    assert code == 0 and json.loads(first) == json.loads(second)
    code, _, err = run_cli(capsys, "info", model_path, "--model", model_path)
    assert code == 2 and "give the model once" in err


def test_score_reads_standard_input_for_a_file_named_dash(capsys, model_path, model, monkeypatch):
    import io

    text = "The network stores the weights.\nA second line."
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))
    code, out, _ = run_cli(capsys, "score", model_path, "--file", "-", "--json")
    assert code == 0 and json.loads(out)["perplexity"] == pytest.approx(model.score(text).perplexity)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9"), encoding="utf-8"))
    code, _, err = run_cli(capsys, "score", model_path, "--file", "-")
    assert code == 2 and "standard input is not UTF-8 text" in err and "re-save the file as UTF-8" in err


def test_a_text_file_without_words_is_named(capsys, model_path, tmp_path):
    """score --file of a file that holds no word: the file is named, with the fix."""
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "score", model_path, "--file", empty)
    assert code == 2 and f"{empty}: text has no words to score" in err and "at least one word" in err


def test_a_text_file_that_is_not_utf8_text_is_refused_with_the_fix(capsys, model_path, tmp_path):
    """--file with Latin-1 text names the line and the fix; with zero bytes (a model file, an image)
    it is refused as binary, not scored as words."""
    latin = tmp_path / "latin.txt"
    latin.write_bytes("the first line\nthe caf\u00e9 network".encode("latin-1"))
    code, _, err = run_cli(capsys, "score", model_path, "--file", latin)
    assert code == 2 and f"{latin} is not UTF-8 text (invalid continuation byte at byte 22, line 2;" in err
    assert "re-save the file as UTF-8" in err
    for binary in (model_path, tmp_path / "nul.txt"):
        if binary != model_path:
            binary.write_bytes(b"the network\x00 stores weights")
        code, _, err = run_cli(capsys, "generate", "--model", model_path, "--file", binary)
        assert code == 2 and f"{binary} is binary data (it holds zero bytes" in err, err
    late = tmp_path / "late.txt"  # the zero byte past the first 4 KiB the corpus readers look at
    late.write_bytes(b"the network learns " * 400 + b"\x00 more")
    code, _, err = run_cli(capsys, "score", model_path, "--file", late)
    assert code == 2 and f"{late} is binary data (it holds zero bytes" in err


def test_train_overwrite_of_a_folder_of_user_files_exits_2_and_deletes_nothing(
    capsys, corpus_files, tmp_path, monkeypatch
):
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    corpus = shutil.copy(corpus_files["csv"], home / "corpus.csv")
    monkeypatch.chdir(home)
    for corpus_arg in (corpus, corpus_files["csv"]):  # inside --out, then outside it
        code, _, err = run_cli(capsys, "train", corpus_arg, "--out", ".", "--overwrite", "--epochs", 1)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "inside the run folder" in run_cli(capsys, "train", corpus, "--out", ".", "--overwrite")[2]
    assert sorted(p.name for p in home.iterdir()) == ["corpus.csv", "thesis.tex"]
    assert (home / "thesis.tex").read_text() == "precious"


def test_dedup_options_belong_to_train_and_come_from_the_model_for_evaluate(capsys):
    from nextword.cli.args import config_from_args
    from nextword.cli.main import build_parser
    from nextword.train import TrainConfig

    args = build_parser().parse_args(
        ["train", "c.csv", "--out", "r", "--keep-duplicates", "--near-duplicate-threshold", "0.3"]
    )
    corpus = config_from_args(TrainConfig(), vars(args)).corpus
    assert corpus.keep_duplicates and corpus.near_duplicate_threshold == 0.3
    assert corpus.split_record().scheme == "documents-v1"
    for flag in ("--keep-duplicates", "--split-seed", "--near-duplicate-threshold"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["evaluate", "m.onnx", "c.csv", flag])
        assert "unrecognized arguments" in capsys.readouterr().err


def test_evaluate_help_says_the_corpus_is_read_as_the_model_files_was(capsys):
    """evaluate reads a CSV's column as the model's training did; its help said "default: auto"."""
    from nextword.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--text-column", "auto"), ("--corpus-format", "auto"), ("--json-field", "text")):
        after = text.split(flag, 2)[2]  # the option's help, past the usage line
        assert f"(default: the model file's, else {default})" in after.split(" --", 1)[0]
    assert "CORPUS corpus files: .csv" in text


def test_generate_help_says_top_k_and_top_p_default_to_the_model_files(capsys):
    """--top-k said "default: all": a model file's K applied all the same."""
    from nextword.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--top-k", "--top-p"):
        after = text.split(flag, 2)[2].split(" --", 1)[0]  # the option's help, past the usage line
        assert after.endswith("(default: the model file's, else off)") and "= off" in after, after


@pytest.mark.slow
def test_export_screen_shows_our_output_not_tensorflows_start_up_lines(run_dir, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    exe = shutil.which("nextword") or str(__import__("pathlib").Path(sys.executable).parent / "nextword")
    out = tmp_path / "m.onnx"
    # tf2onnx sets TF_CPP_MIN_LOG_LEVEL=3 in this process when an earlier test exported: the command must
    # keep TensorFlow quiet with the variable unset, as a user's shell has it
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [exe, "export", str(run_dir), "--out", str(out), "--int8"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and out.is_file()
    assert "INFO nextword.export" in result.stderr  # our own lines are there...
    noises = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard")
    noises += ("INFO tf2onnx", "Quantization parameters for", "pre-processing before quantization")
    for noise in noises:  # ...and not TensorFlow's, tf2onnx's or onnxruntime's quantizer's
        assert noise not in result.stderr, result.stderr


def test_a_closed_pipe_ends_the_command_quietly(model_path):
    exe = shutil.which("nextword") or str(__import__("pathlib").Path(sys.executable).parent / "nextword")
    generate = f"'{exe}' generate 'the network' --model '{model_path}' --max-words 300 --no-stop-at-end"
    command = f"{generate} --num-return-sequences 50 | head -c 10"  # far more than a pipe's buffer
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True, timeout=120
    )
    assert len(result.stdout) == 10
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_flag_names_rewrites_option_names_only():
    from nextword.cli.args import flag_names
    from nextword.runtime import GenerationConfig
    from nextword.train import TrainConfig

    assert flag_names("top_k must be in 1..10, got 0", GenerationConfig) == "--top-k must be in 1..10, got 0"
    assert flag_names("a=1 (num_beams=2, top_p=0.5)", GenerationConfig) == "a=1 (--num-beams=2, --top-p=0.5)"
    # prose that merely contains a field name, and a name inside another word, stay as they are
    prose = "the cache holds max_words words"
    assert flag_names(prose, GenerationConfig) == prose
    assert flag_names("xtop_k=1", GenerationConfig) == "xtop_k=1"
    # nested configs are flattened to their flags
    assert flag_names("lstm_units must be positive", TrainConfig) == "--lstm-units must be positive"


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["generate", "x", "--bogus"], "nextword generate: error: unrecognized arguments: --bogus"),
        (["suggest", "a", "--bogus"], "nextword suggest: error: unrecognized arguments: --bogus"),
        (["corpus", "patentsview", "--bogus"], "nextword corpus patentsview: error: unrecognized arguments"),
    ],
)
def test_unknown_arguments_get_the_subcommands_usage(capsys, argv, usage):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and usage in err
    assert f"usage: nextword {argv[0]}" in err  # not the top level's "usage: nextword [-h] ..."


@pytest.mark.train
def test_a_session_the_time_budget_ended_says_how_to_go_on(capsys, corpus_files, tmp_path):
    out = tmp_path / "run"
    args = ("--epochs", 3, "--lstm-units", 8, "--embedding-dim", 8, "--max-minutes", 0.0001, "--verbose", 0)
    code, printed, _ = run_cli(capsys, "train", corpus_files["text"], "--out", out, *args)
    assert code == 0, printed
    assert (
        f"the --max-minutes budget ended this session: continue the run with `nextword train --resume {out}`"
        in printed
    )
    code, printed, _ = run_cli(capsys, "train", "--resume", out, "--epochs", 5, "--max-minutes", 0.0001)
    assert code == 0 and f"continue the run with `nextword train --resume {out} --epochs 5`" in printed


def test_generate_and_suggest_read_the_prompt_from_a_file_or_standard_input(
    capsys, model_path, model, tmp_path, monkeypatch, caplog
):
    """``--file F`` (``-``: standard input) is the prompt, less the line break that ends it; a prompt
    ``-`` is text, said so (it was continued silently when a pipe was meant)."""
    import io
    import logging

    prompt = "The network stores the weights.\nEach neuron"
    path = tmp_path / "prompt.txt"
    path.write_bytes((prompt + "\r\n").encode("utf-8-sig"))  # a BOM and a Windows line end: not prompt
    want = model.generate(prompt, max_words=6, seed=3)
    for argv in (
        ["generate", model_path, "--file", str(path)],
        ["generate", "--file", str(path), "--model", model_path],
    ):
        code, out, _ = run_cli(capsys, *argv, "--max-words", "6", "--seed", "3", "--json")
        assert code == 0 and json.loads(out) == [{"prompt": prompt, "text": want, "full": prompt + want}]
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO((prompt + "\n").encode()), encoding="utf-8")
    )
    code, out, _ = run_cli(capsys, "suggest", model_path, "--file", "-", "-k", "4", "--json")
    suggested = [(s["word"], s["probability"]) for s in json.loads(out)]
    expected = model.next_words(prompt, k=4)
    assert code == 0 and [w for w, _ in suggested] == [w for w, _ in expected]
    assert [p for _, p in suggested] == pytest.approx([p for _, p in expected])

    code, out, err = run_cli(capsys, "generate", model_path, "a prompt", "--file", str(path))
    assert code == 2 and out == "" and "--file reads the prompt, and 'a prompt' is one too" in err
    code, _, err = run_cli(capsys, "generate", model_path)
    assert code == 2 and "give the prompt after it ('' for an empty one)" in err
    code, _, err = run_cli(capsys, "suggest")
    assert code == 2 and "no prompt: nextword suggest [MODEL.onnx] PROMPT" in err
    code, _, err = run_cli(capsys, "generate", model_path, "--file", str(tmp_path))
    assert code == 2 and "is not a regular file" in err
    with caplog.at_level(logging.WARNING):
        code, out, _ = run_cli(capsys, "generate", model_path, "-", "--max-words", "2", "--json")
    assert code == 0 and json.loads(out)[0]["prompt"] == "-"
    assert "--file - reads the prompt from standard input" in caplog.text


def test_json_keeps_every_character_whatever_standard_outputs_encoding(model_path):
    """With standard output in ASCII (PYTHONIOENCODING, a Windows console), --json wrote "caf?": the
    data changed, silently. Characters are escaped instead; so is a lone surrogate (an argument's
    byte that is not UTF-8), which no encoding can write."""
    import os

    from nextword.cli.display import json_text

    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    argv = [sys.executable, "-c", code, "generate", model_path, "café ☃ 😀", "--max-words", "2", "--json"]
    result = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["prompt"] == "café ☃ 😀"
    assert json.loads(json_text({"prompt": "caf\udce9"})) == {"prompt": "caf\udce9"}
    assert "é" in json_text(["é"])  # readable where the output takes it (UTF-8 here)


def test_a_failed_check_exits_1_not_the_2_of_bad_input(capsys, run_dir, tmp_path, monkeypatch):
    """main's statuses: 1 when a check fails (export's parity), 2 for bad input; a script tells a model
    that did not pass its checks from a mistyped command by them."""
    from nextword.export import exporter

    real_load = exporter.load

    def skewed_load(payload, **options):  # ONNX logits 1e-3 off Keras's: over the tolerance, 1e-4
        model = real_load(payload, **options)
        forward = model.forward
        model.forward = lambda *args, **kw: (lambda r: (r[0] + 1e-3, r[1]))(forward(*args, **kw))
        return model

    monkeypatch.setattr(exporter, "load", skewed_load)
    out = tmp_path / "m.onnx"
    code, _, err = run_cli(capsys, "export", run_dir, "--out", out)
    assert code == 1, err
    assert err.startswith("nextword export: failed: ") and "parity check failed" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        # a file from before development parts records no selected_by: the validation loss chose
        ({}, "best epoch     2 of 3 (by the validation loss): validation loss 1.5000"),
        ({"selected_by": "dev_loss"}, "best epoch     2 of 3 (by the development loss): validation loss"),
        ({"epochs_planned": 5}, "best epoch     2 of 5 (stopped after 3) (by the validation loss)"),
        ({"epochs_planned": 5, "stopped_early": True}, "best epoch     2 of 5 (stopped early after 3) (by"),
    ],
)
def test_info_shows_the_best_epoch_of_the_epochs_trained_and_what_chose_it(
    capsys, model_path, tmp_path, changes, shown
):
    epochs = [
        {"epoch": epoch, "val_loss": loss, "val_perplexity": math.exp(loss)}
        for epoch, loss in ((1, 2.0), (2, 1.5), (3, 1.7))
    ]
    metrics = {"epochs": epochs, "epochs_planned": 3, "best": epochs[1], "stopped_early": False, **changes}
    crafted = with_metadata(model_path, tmp_path / "m.onnx", "nextword.metrics", json.dumps(metrics))
    code, out, err = run_cli(capsys, "info", crafted)
    assert code == 0, err
    assert shown in out, out
