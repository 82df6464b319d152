"""Session fixtures: a synthetic corpus, a tiny model trained on it once, and its ONNX export.

Training and export need the ``train`` extra; on a runtime-only install the tests that use these
fixtures are skipped with that reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextword.cli.telemetry import telemetry_off

# The tests run onnxruntime as the nextword command does: without its telemetry (cli/telemetry.py), set
# before any module imports it (it reads the variable then)
telemetry_off()

# The shared helpers' asserts report what failed, as a test module's do.
pytest.register_assert_rewrite("browser", "helpers")

from browser import browser, live_server  # noqa: E402, F401  (fixtures: the server and a headless chromium)

from helpers import REFERENCE_CORPUS, synthetic_documents, write_corpus  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``corpus`` reads the reference corpus: skipped, saying where it was looked for, on a
    machine without it. One marked ``train`` trains or checks the training stack's own messages: skipped
    on a runtime-only install, as the tests that use the trained fixtures are."""
    if item.get_closest_marker("corpus") is not None and not REFERENCE_CORPUS.is_file():
        pytest.skip(f"the reference corpus is absent: {REFERENCE_CORPUS} (../shared beside the repository)")
    if item.get_closest_marker("train") is not None:
        _need_training_stack()


# AF_UNIX socket paths are at most 107 bytes: chromium keeps one under $TMPDIR (a folder of ~30
# characters, then SingletonSocket), so a temporary folder is only moved where its path stays this short.
SHORT_ENOUGH_FOR_SOCKETS = 60


@pytest.fixture(scope="session", autouse=True)
def _scratch_in_the_session_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What the suite's tools write for themselves goes into this session's folder, which pytest removes
    in time, rather than /tmp or ~. npm keeps its cache and logs there (not ~/.npm) and asks no registry
    for a newer npm (its update check). The temporary files of this process and of the processes it
    starts (chromium's profiles, node's, those of `nextword` commands) go there too: TensorFlow's
    autograph writes a module per traced function and removes it only at exit, which a command the test
    kills never reaches. ``tempfile.tempdir`` for this process, where $TMPDIR is read once and cached;
    $TMPDIR for the processes it starts. Not $HOME: keras reads its settings from ~/.keras."""
    scratch = tmp_path_factory.getbasetemp() / "tmp"
    scratch.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("npm_config_cache", str(scratch.parent / "npm-cache"))
        patch.setenv("npm_config_update_notifier", "false")
        if len(str(scratch)) <= SHORT_ENOUGH_FOR_SOCKETS:
            patch.setenv("TMPDIR", str(scratch))
            patch.setattr(tempfile, "tempdir", str(scratch))
        yield


def _need_training_stack() -> None:
    for module in ("tensorflow", "keras", "tf2onnx", "onnx"):
        pytest.importorskip(
            module, reason=f"{module} missing: install nextword[train] to build the test model"
        )


@pytest.fixture(scope="session")
def documents() -> list[str]:
    return synthetic_documents(80, seed=0)


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory: pytest.TempPathFactory, documents: list[str]) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"), documents)


@pytest.fixture(scope="session")
def tiny_config(corpus_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """Settings of a model that trains in a few seconds on two cores: two LSTM layers of 32 units."""
    from nextword.runtime import TokenizerConfig
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig

    return TrainConfig(
        out=str(tmp_path_factory.mktemp("runs") / "tiny"),
        corpus=CorpusConfig(paths=(str(corpus_files["csv"]),)),
        tokenizer=TokenizerConfig(min_count=1),
        # Untied: the crafted-file tests edit this graph's own output matrix; tests/test_tied.py and
        # tests/test_cache_export.py train tied models (the default).
        model=ModelConfig(embedding_dim=16, lstm_units=32, num_layers=2, dropout=0.1, tie_embeddings=False),
        seq_len=16,
        batch_size=8,
        learning_rate=1e-2,
        epochs=12,
        verbose=0,
    )


@pytest.fixture(scope="session")
def run_dir(tiny_config) -> Path:
    _need_training_stack()
    from nextword.train import train

    train(tiny_config)
    return Path(tiny_config.out)


@pytest.fixture(scope="session")
def model_path(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nextword.export import ExportConfig, export

    out = tmp_path_factory.mktemp("models") / "tiny.onnx"
    export(ExportConfig(run_dir=str(run_dir), out=str(out)))
    return out


@pytest.fixture(scope="session")
def model(model_path: Path):
    from nextword.runtime import load

    return load(model_path)


@pytest.fixture
def temporary(tmp_path, monkeypatch):
    """The temporary directory of the workers a test runs, in this process and the ones it starts."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder
