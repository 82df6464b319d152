"""Multi-worker training for real: `nextword train --distribute multi-worker` in two processes that talk
over 127.0.0.1 (ports picked free at test time), against one process training the same global batch.

The workers record every part of a global batch they read (``$NEXTWORD_RECORD_WINDOWS``), so the
tests can see which windows each one trained. Tolerance of the match with one process: 1e-5 relative
on every epoch's training and validation loss. The two runs compute the same steps: the loss of a step
is the mean over the real words of its global batch and the replicas' gradients are summed before
clipping (see nextword/train/loop.py), so only floating-point summation order differs (measured:
about 1e-8 relative); dropout is off, as each replica would draw its own masks.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import free_ports, synthetic_documents, write_corpus

pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
pytestmark = pytest.mark.slow

RUN_CLI = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
SETTINGS = [  # one replica per worker: 2 x 4 windows, the global batch of the reference's 8
    "--epochs", "2", "--min-count", "1", "--lstm-units", "16", "--embedding-dim", "8", "--seq-len", "8",
    "--dropout", "0", "--seed", "5", "--lr-scaling", "none", "--verbose", "0", "--peer-timeout", "60",
]  # fmt: skip
TOLERANCE = 1e-5  # relative, on each epoch's loss and val_loss (see the module docstring)
WAIT = 240  # seconds any worker process may take; every wait below is bounded by it


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("cluster-corpus"), synthetic_documents(200, seed=1))["text"]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """One process, the default strategy, the global batch of two workers of 4 windows."""
    from nextword.train import train

    out = tmp_path_factory.mktemp("reference") / "run"
    train(_one_process(corpus, out, epochs=2))
    return json.loads((out / "metrics.json").read_text())["epochs"]


def _one_process(corpus, out, epochs):
    """The settings of the cluster's runs, for one process with the default strategy: a global batch
    of 8 windows (two workers of 4)."""
    from nextword.runtime import TokenizerConfig
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig

    return TrainConfig(
        out=str(out),
        corpus=CorpusConfig(paths=(str(corpus),)),
        tokenizer=TokenizerConfig(min_count=1),
        model=ModelConfig(embedding_dim=8, lstm_units=16, num_layers=1, dropout=0.0),
        seq_len=8,
        batch_size=8,
        epochs=epochs,
        seed=5,
        verbose=0,
    )


def _cluster_argv(corpus, run):
    """`nextword train` for each of two workers of 4 windows: the reference's global batch of 8."""
    return [
        "train",
        str(corpus),
        "--out",
        str(run),
        *SETTINGS,
        "--batch-size",
        "4",
        "--distribute",
        "multi-worker",
    ]


def _wait_for_checkpoint(run, workers):
    """Until the chief saves ``run``'s first checkpoint (at most WAIT s), every worker still running."""
    deadline = time.monotonic() + WAIT
    while not (run / "checkpoint.keras").is_file() and time.monotonic() < deadline:
        assert all(w.poll() is None for w in workers), "a worker ended before the first checkpoint"
        time.sleep(0.02)


def _start(index, ports, argv, tmp_path, session):
    """Worker ``index`` of a loopback cluster, running `nextword train ARGV`."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    scratch = tmp_path / "tmp"  # the workers' temporary folders go here: the test sees them removed
    scratch.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        "NEXTWORD_RECORD_WINDOWS": str(tmp_path / f"windows.{session}.{index}"),
        "TMPDIR": str(scratch),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # a worker that crashes prints its threads' Python stacks (TensorFlow segfaulted once, 1 CI run in
        # about 40, as a SIGTERM unwound a worker's training: exit -11, nothing said)
        "PYTHONFAULTHANDLER": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process):
    try:
        out, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"a worker ran for more than {WAIT} s: {err[-3000:]}")
    return process.returncode, out, err


def _records(tmp_path, session, index):
    """(epoch, step, replica, windows) of every part worker ``index`` read in ``session``."""
    path = tmp_path / f"windows.{session}.{index}"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [(int(e), int(s), int(r), list(map(int, w))) for e, s, r, *w in (line.split() for line in lines)]


def _windows(run):
    from nextword.train.data import DiskWindows

    return DiskWindows(run / "train.ids", 8, 8, shuffle=True, seed=5)


def _assert_matches(epochs, reference):
    """Each epoch's losses equal the reference's within TOLERANCE; the accuracies within one word in
    a thousand. An epoch resumed mid-way reports its training metrics over the resumed part only."""
    assert [e["epoch"] for e in epochs] == [e["epoch"] for e in reference]
    for got, expected in zip(epochs, reference, strict=True):
        resumed = "resumed_at_step" in got
        for key in ("val_loss",) if resumed else ("loss", "val_loss"):
            assert got[key] == pytest.approx(expected[key], rel=TOLERANCE), (got["epoch"], key)
        for key in ("val_accuracy", "val_top5_accuracy") if resumed else ("accuracy", "val_accuracy"):
            assert got[key] == pytest.approx(expected[key], abs=1e-3), (got["epoch"], key)


def test_two_workers_train_what_one_process_trains(corpus, reference, tmp_path):
    run = tmp_path / "run"
    argv = _cluster_argv(corpus, run)
    ports = free_ports(2)
    workers = [_start(i, ports, argv, tmp_path, "a") for i in range(2)]
    results = [_finish(w) for w in workers]
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "2 epochs" in out
    stored = json.loads((run / "config.json").read_text())
    assert stored["training"] == {"replicas": 2, "global_batch": 8, "learning_rate": stored["learning_rate"]}
    _assert_matches(json.loads((run / "metrics.json").read_text())["epochs"], reference)

    windows = _windows(run)
    for epoch in (0, 1):  # every training window read once per epoch, by one worker
        parts = [p for i in range(2) for p in _records(tmp_path, "a", i) if p[0] == epoch]
        assert sorted((step, replica) for _, step, replica, _ in parts) == [
            (s, r) for s in range(len(windows)) for r in range(2)
        ]
        counts = Counter(i for *_, rows in parts for i in rows)
        assert sorted(counts) == list(range(windows.n_windows)) and set(counts.values()) == {1}
    for index in range(2):  # each worker read its own replica's parts only
        assert {replica for _, _, replica, _ in _records(tmp_path, "a", index)} == {index}
    assert not list((tmp_path / "tmp").glob("nextword*"))  # worker 1 removed its copy of the corpus
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == sorted(
        [
            "config.json",
            "tokenizer.json",
            "model.keras",
            "checkpoint.keras",
            "metrics.json",
            "samples.json",
            "train.ids",
            "dev.ids",
            "val.ids",
        ]
    )  # only the chief wrote the run folder, and only run files

    # The chief's folder is an ordinary run: resumed by one process with the same global batch, and
    # exported with the usual parity checks.
    from nextword.export import ExportConfig, export
    from nextword.train import resume

    result = resume(run, epochs=3, distribute="none")
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    assert result.epochs == 3 and epochs[2]["steps"] - epochs[1]["steps"] == len(windows)
    report = export(ExportConfig(run_dir=str(run), out=str(tmp_path / "model.onnx")))
    assert report.parity.passed and report.ops.get("LSTM") == 1


def test_a_run_of_one_process_continued_by_two_workers_keeps_its_global_batch_on_both(corpus, tmp_path):
    """One process trained an epoch with a batch of 8; two workers continued it. The chief kept the
    run's global batch of 8 (4 windows a replica), the other worker took batch_size x replicas, 16: they
    read other windows and both failed on a collective whose shapes did not match (a traceback)."""
    from nextword.train import train

    run = tmp_path / "run"
    train(_one_process(corpus, run, epochs=1))
    argv = [
        "train",
        "--resume",
        str(run),
        "--epochs",
        "2",
        "--distribute",
        "multi-worker",
        "--peer-timeout",
        "60",
    ]
    ports = free_ports(2)
    for code, _, err in [_finish(w) for w in [_start(i, ports, argv, tmp_path, "b") for i in range(2)]]:
        assert code == 0, err[-3000:]
    windows = _windows(run)  # a global batch of 8
    parts = [p for i in range(2) for p in _records(tmp_path, "b", i) if p[0] == 1]
    assert sorted((step, replica) for _, step, replica, _ in parts) == [
        (s, r) for s in range(len(windows)) for r in range(2)
    ]
    counts = Counter(i for *_, rows in parts for i in rows)
    assert sorted(counts) == list(range(windows.n_windows)) and set(counts.values()) == {1}
    assert len(json.loads((run / "metrics.json").read_text())["epochs"]) == 2


def test_a_worker_killed_mid_epoch_is_restarted_and_training_resumes(corpus, reference, tmp_path):
    """Worker 1 is killed with SIGKILL within epoch 1, after the chief saved a checkpoint at step 10
    (``--checkpoint-steps 10``); the chief then fails with a one-line error instead of waiting, and
    the same command on both workers continues from that checkpoint. What is lost is the steps
    trained after the checkpoint (fewer than 10); they are trained again, and nothing else is: the
    restarted session reads every window of the steps after the checkpoint once, the first session
    had read all the windows before it, and the result equals an uninterrupted run's."""
    run = tmp_path / "run"
    argv = [*_cluster_argv(corpus, run), "--checkpoint-steps", "10"]
    ports = free_ports(2)
    workers = [_start(i, ports, argv, tmp_path, "a") for i in range(2)]
    _wait_for_checkpoint(run, workers)
    assert json.loads((run / "metrics.json").read_text())["epochs"] == [], "killed after epoch 1 ended"
    workers[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    code, _, err = _finish(workers[0])
    assert code == 1 and time.monotonic() - killed_at < 60  # noticed within seconds, not a hang
    message = err.strip().splitlines()[-1]
    assert message.startswith("nextword train: failed: worker 0 lost contact with the other workers")
    assert "restart every worker with the same command" in message
    workers[1].wait(timeout=10)

    ports = free_ports(2)
    workers = [_start(i, ports, argv, tmp_path, "b") for i in range(2)]  # the same command again
    for code, _, err in (_finish(w) for w in workers):
        assert code == 0, err[-3000:]
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    resumed_at = epochs[0]["resumed_at_step"]
    assert resumed_at >= 10 and resumed_at % 10 == 0 and "resumed_at_step" not in epochs[1]
    _assert_matches(epochs, reference)

    windows = _windows(run)
    before = [p for i in range(2) for p in _records(tmp_path, "a", i) if p[0] == 0 and p[1] < resumed_at]
    after = [p for i in range(2) for p in _records(tmp_path, "b", i) if p[0] == 0]
    assert min(step for _, step, _, _ in after) == resumed_at  # nothing before its checkpoint
    steps = sorted((step, replica) for _, step, replica, _ in before + after)
    assert steps == [(s, r) for s in range(len(windows)) for r in range(2)]
    counts = Counter(i for *_, rows in before + after for i in rows)
    assert sorted(counts) == list(range(windows.n_windows)) and set(counts.values()) == {1}
    assert not list((tmp_path / "tmp").glob("nextword*"))


def test_one_process_killed_mid_epoch_resumes_at_its_checkpoint_step(
    corpus, reference, tmp_path, monkeypatch
):
    """The mid-epoch checkpoints serve a single process too: --resume continues the epoch at the
    checkpoint's step, and the run ends where an uninterrupted one does."""
    from nextword.train import resume

    run = tmp_path / "run"
    argv = [
        "train",
        str(corpus),
        "--out",
        str(run),
        *SETTINGS,
        "--batch-size",
        "8",
        "--checkpoint-steps",
        "20",
    ]
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "NEXTWORD_RECORD_WINDOWS": str(tmp_path / "windows.a.0"),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, *argv], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + WAIT
    while not (run / "checkpoint.keras").is_file() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
    assert child.poll() is None, "training ended before its first checkpoint"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert json.loads((run / "metrics.json").read_text())["epochs"] == [], "killed after epoch 1 ended"

    with monkeypatch.context() as patch:  # a value set before the test is back after it
        patch.setenv("NEXTWORD_RECORD_WINDOWS", str(tmp_path / "windows.b.0"))
        assert resume(run).epochs == 2
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    assert epochs[0]["resumed_at_step"] % 20 == 0 and epochs[0]["resumed_at_step"] >= 20
    _assert_matches(epochs, reference)
    resumed = [p for p in _records(tmp_path, "b", 0) if p[0] == 0]
    assert min(step for _, step, _, _ in resumed) == epochs[0]["resumed_at_step"]


def test_bad_tf_config_and_an_absent_peer_fail_in_one_line_without_waiting(corpus, tmp_path):
    run = tmp_path / "run"
    argv = ["train", str(corpus), "--out", str(run), "--min-count", "1", "--distribute", "multi-worker"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cases = {
        "{'cluster': 1}": "TF_CONFIG is not valid JSON",
        json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}}): "TF_CONFIG has no task",
        json.dumps(
            {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 5}}
        ): "task index 5 is out of range",
    }
    ports = free_ports(2)  # worker 1 never starts
    absent = {
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": 0},
    }
    cases[json.dumps(absent)] = f"worker 1 at 127.0.0.1:{ports[1]} did not answer within 2 s"
    for tf_config, expected in cases.items():
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", RUN_CLI, *argv, "--peer-timeout", "2"],
            env={**env, "TF_CONFIG": tf_config},
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        lines = [line for line in result.stderr.splitlines() if line.startswith("nextword")]
        assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
        assert lines[0].startswith("nextword train: error: ") and expected in lines[0]
        assert time.monotonic() - started < 120  # start-up plus the 2 s wait; no hang
        assert not run.exists()  # nothing written


def test_a_port_that_answers_but_is_no_worker_ends_the_worker_after_the_peer_timeout(corpus, tmp_path):
    """Another service at a peer's address passes the start-up check (it accepts connections), and
    TensorFlow then waits for that peer inside its C++ code, ignoring SIGTERM: the watchdog ends it."""
    run = tmp_path / "run"
    with socket.create_server(("127.0.0.1", 0)) as foreign:  # accepts, never speaks
        ports = [free_ports(1)[0], foreign.getsockname()[1]]
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": 0},
        }
        argv = ["train", str(corpus), "--out", str(run), "--min-count", "1", "--distribute", "multi-worker"]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", RUN_CLI, *argv, "--peer-timeout", "5"],
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(tf_config)},
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("nextword")]
    assert len(lines) == 1 and lines[0].startswith(
        "nextword train: error: worker 0 could not form the cluster"
    )
    assert "TF_CONFIG" in lines[0] and time.monotonic() - started < 120
    assert not run.exists()


def test_workers_that_disagree_lose_no_run_and_sigterm_stops_a_worker(corpus, tmp_path):
    """With --overwrite, a worker started with another setting stops the cluster before the chief
    removes the run it would replace, naming the setting; and SIGTERM stops a worker as it stops a
    lone run (creating the strategy had taken the signal over: the worker trained on)."""
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train

    run = tmp_path / "run"
    base = _cluster_argv(corpus, run)
    corpus_config = CorpusConfig(paths=(str(corpus),))
    model = ModelConfig(lstm_units=8, embedding_dim=8)
    train(TrainConfig(out=str(run), corpus=corpus_config, model=model, epochs=1, seq_len=8, verbose=0))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    argv = [*base, "--overwrite"]
    ports = free_ports(2)
    workers = [
        _start(0, ports, argv, tmp_path, "a"),
        _start(1, ports, [*argv, "--learning-rate", "0.004"], tmp_path, "a"),
    ]
    for code, _, err in (_finish(w) for w in workers):
        assert code == 2, err[-3000:]
        assert "nextword train: error: the workers disagree on learning_rate:" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing removed

    fresh = tmp_path / "fresh"  # its first checkpoint says training is under way
    argv = [*_cluster_argv(corpus, fresh), "--epochs", "50", "--checkpoint-steps", "5"]
    ports = free_ports(2)
    workers = [_start(i, ports, argv, tmp_path, "b") for i in range(2)]
    _wait_for_checkpoint(fresh, workers)
    workers[1].send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code, _, err = _finish(workers[1])
    assert code == 143 and time.monotonic() - sent < 60, err[-3000:]
    assert "nextword train: terminated" in err
    code, _, err = _finish(workers[0])  # the chief then loses contact
    assert code == 1 and "lost contact with the other workers" in err


def test_the_same_command_continues_a_run_but_starts_over_on_an_edited_corpus(tmp_path):
    """A cluster restarted with the same command continues its run (even with --overwrite, which the
    command may hold); the same command after the corpus file was edited starts the run over: before,
    the chief continued the old run while the other worker read the new corpus, and both stopped with
    "the workers disagree on ... vocabulary"."""
    corpus = write_corpus(tmp_path, synthetic_documents(200, seed=1))["text"]
    run = tmp_path / "run"
    argv = [*_cluster_argv(corpus, run), "--overwrite", "--epochs", "1"]
    # session b reads a copy elsewhere, with a new time (a job's own scratch folder): the same corpus
    moved = tmp_path / "scratch" / corpus.name
    moved.parent.mkdir()
    for session in ("a", "b"):
        ports = free_ports(2)
        if session == "b":
            moved.write_bytes(corpus.read_bytes())
            argv = [*_cluster_argv(moved, run), "--overwrite", "--epochs", "1"]
        workers = [_start(i, ports, argv, tmp_path, session) for i in range(2)]
        results = [_finish(w) for w in workers]
        for code, _, err in results:
            assert code == 0, err[-3000:]
        chief = results[0][2]
        assert ("holds a run of these settings and corpus files: continuing it" in chief) == (session == "b")
    assert "replaces it" not in chief  # before: "not this run", its epochs deleted, training from epoch 1
    argv = [*_cluster_argv(corpus, run), "--overwrite", "--epochs", "1"]
    started = json.loads((run / "config.json").read_text())["corpus_files"]
    corpus.write_text(corpus.read_text() + "\n\nan added document about a new engine entirely\n")
    ports = free_ports(2)
    workers = [_start(i, ports, argv, tmp_path, "c") for i in range(2)]
    for code, _, err in (_finish(w) for w in workers):
        assert code == 0, err[-3000:]
    stored = json.loads((run / "config.json").read_text())
    assert stored["corpus_files"] != started and stored["data"]["documents"] == 201  # a new run
    assert len(json.loads((run / "metrics.json").read_text())["epochs"]) == 1


def test_a_folder_the_chief_refuses_is_named_by_every_worker(tmp_path):
    """The chief refused a finished run without --overwrite (exit 2, the reason); the other worker said
    it lost contact and advised a restart with the same command, which failed the same way."""
    corpus = write_corpus(tmp_path, synthetic_documents(120, seed=1))["text"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    ports = free_ports(2)
    workers = [
        _start(i, ports, [*_cluster_argv(corpus, run), "--epochs", "1"], tmp_path, "a") for i in range(2)
    ]
    (chief, _, chief_err), (other, _, other_err) = (_finish(w) for w in workers)
    assert chief == other == 2, (chief_err[-2000:], other_err[-2000:])
    assert "holds files (notes.txt) and is not a nextword run folder" in chief_err
    assert "worker 0, the chief, refused the run folder:" in other_err and "notes.txt" in other_err
    assert "lost contact" not in other_err
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_a_run_an_earlier_nextword_started_goes_on_on_every_worker(tmp_path):
    """A run whose tokenizer is format 2 and whose split is dedup-v3 (what nextword wrote before format
    3 and dedup-v4): the other worker made its data with this nextword's defaults, and both workers
    stopped with "the workers disagree on vocabulary", after a restart with the same command and with
    --resume alike. The chief now hands them the run's own split and tokenizer format."""
    corpus = write_corpus(tmp_path, synthetic_documents(200, seed=1))["text"]
    run = tmp_path / "run"
    argv = [*_cluster_argv(corpus, run), "--epochs", "1"]
    ports = free_ports(2)
    for code, _, err in [_finish(w) for w in [_start(i, ports, argv, tmp_path, "a") for i in range(2)]]:
        assert code == 0, err[-3000:]
    # What the earlier nextword wrote: on this English corpus, the same words and documents.
    tokenizer = (run / "tokenizer.json").read_text()
    assert '"version":3,' in tokenizer
    (run / "tokenizer.json").write_text(tokenizer.replace('"version":3,', '"version":2,'))
    stored = json.loads((run / "config.json").read_text())
    stored["data"]["split"]["scheme"] = "dedup-v3"
    (run / "config.json").write_text(json.dumps(stored))
    for session, command in (
        ("b", [*argv[:-1], "2"]),
        ("c", ["train", "--resume", str(run), "--epochs", "3"]),
    ):
        ports = free_ports(2)
        results = [_finish(w) for w in [_start(i, ports, command, tmp_path, session) for i in range(2)]]
        for code, _, err in results:
            assert code == 0, err[-3000:]
    assert len(json.loads((run / "metrics.json").read_text())["epochs"]) == 3
    assert json.loads((run / "tokenizer.json").read_text())["version"] == 2
    assert json.loads((run / "config.json").read_text())["data"]["split"]["scheme"] == "dedup-v3"


def test_mirrored_strategy_on_the_cpu_trains_what_the_default_strategy_trains(corpus, reference, tmp_path):
    from nextword.runtime import TokenizerConfig
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train

    config = TrainConfig(
        out=str(tmp_path / "run"),
        corpus=CorpusConfig(paths=(str(corpus),)),
        tokenizer=TokenizerConfig(min_count=1),
        model=ModelConfig(embedding_dim=8, lstm_units=16, num_layers=1, dropout=0.0),
        seq_len=8,
        batch_size=8,
        epochs=2,
        seed=5,
        verbose=0,
        distribute="mirrored",
    )
    train(config)
    _assert_matches(json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"], reference)


def test_mixed_precision_trains_resumes_and_exports_the_fused_lstm(corpus, tmp_path):
    from nextword.export import ExportConfig, export
    from nextword.runtime import TokenizerConfig, load
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, resume, train

    config = TrainConfig(
        out=str(tmp_path / "run"),
        corpus=CorpusConfig(paths=(str(corpus),)),
        tokenizer=TokenizerConfig(min_count=1),
        model=ModelConfig(embedding_dim=8, lstm_units=16, num_layers=1, dropout=0.1),
        seq_len=8,
        batch_size=16,
        epochs=1,
        verbose=0,
        mixed_precision=True,
    )
    train(config)
    assert resume(config.out, epochs=2).epochs == 2
    import keras

    checkpoint = keras.saving.load_model(Path(config.out) / "checkpoint.keras")
    assert checkpoint.get_layer("lstm_0").dtype_policy.name == "mixed_float16"
    assert type(checkpoint.optimizer).__name__ == "LossScaleOptimizer"
    report = export(ExportConfig(run_dir=config.out, out=str(tmp_path / "model.onnx")))
    assert report.parity.passed and report.ops.get("LSTM") == 1  # one fused LSTM node, float32
    assert load(tmp_path / "model.onnx").generate("the network", max_words=5, seed=1)
