"""Training: the run folder, metrics, early stopping, resume, embeddings, refusals."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")

from nextword.runtime import Tokenizer
from nextword.train import CorpusError, ModelConfig, resume, train
from nextword.train.embeddings import EmbeddingsError
from nextword.train.files import NotARunError, RunBusyError, RunDir
from nextword.train.trainer import RunExistsError

pytestmark = pytest.mark.slow

EPOCH_KEYS = {
    "epoch",
    "loss",
    "val_loss",
    "val_perplexity",
    "val_accuracy",
    "val_top5_accuracy",
    "accuracy",
    "top5_accuracy",
}

DEV_KEYS = {"dev_loss", "dev_accuracy", "dev_top5_accuracy"}


def _mean_loss(model, ids, config) -> float:
    """Cross-entropy per word of ``model`` over the windows of an id file, computed here."""
    import keras

    from nextword.train.data import DiskWindows

    total = words = 0.0
    for x, y, w in DiskWindows(ids, config.seq_len, config.batch_size, shuffle=False).dataset():
        losses = keras.losses.sparse_categorical_crossentropy(y, model(x, training=False), from_logits=True)
        total += float(np.sum(np.asarray(losses) * np.asarray(w)))
        words += float(np.sum(np.asarray(w)))
    return total / words


def test_run_folder_holds_model_tokenizer_config_and_metrics(run_dir, tiny_config, documents):
    for name in (
        "model.keras",
        "checkpoint.keras",
        "tokenizer.json",
        "config.json",
        "metrics.json",
        "samples.json",
    ):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == {
        "embedding_dim": 16,
        "lstm_units": 32,
        "num_layers": 2,
        "dropout": 0.1,
        "tie_embeddings": False,
        "locked_dropout": False,
        "word_dropout": 0.0,
    }
    assert config["seq_len"] == tiny_config.seq_len and config["vocab_size"] > 10
    data = config["data"]
    assert data["train_documents"] + data["dev_documents"] + data["val_documents"] == len(documents)
    assert data["dev_documents"] >= 1 and (run_dir / "dev.ids").is_file()
    assert Path(config["corpus"]["paths"][0]).is_absolute()
    tokenizer = Tokenizer.from_json((run_dir / "tokenizer.json").read_text())
    assert len(tokenizer) == config["vocab_size"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["epochs"]) == tiny_config.epochs
    for entry in metrics["epochs"]:
        assert set(entry) >= EPOCH_KEYS | DEV_KEYS
        assert entry["val_perplexity"] == pytest.approx(np.exp(entry["val_loss"]))
        assert 0 <= entry["val_accuracy"] <= entry["val_top5_accuracy"] <= 1
        assert 0 <= entry["dev_accuracy"] <= entry["dev_top5_accuracy"] <= 1
    # The development part chooses the best epoch: the validation documents choose nothing.
    assert metrics["selected_by"] == "dev_loss"
    assert metrics["best"] == min(metrics["epochs"], key=lambda e: e["dev_loss"])
    # The grammar is easy: a dozen epochs take perplexity from ~30 (uniform) to ~2.3.
    assert metrics["best"]["val_perplexity"] < 6


def test_validation_vocabulary_comes_from_training_split_only(tmp_path, corpus_files, tiny_config):
    docs = ["alpha beta gamma. " * 3] * 9 + ["zebra quagga okapi. " * 3]
    path = tmp_path / "c.txt"
    path.write_text("\n\n".join(docs))
    config = replace(
        tiny_config,
        out=str(tmp_path / "run"),
        corpus=replace(tiny_config.corpus, paths=(str(path),), val_fraction=0.1, keep_duplicates=True),
        epochs=1,
    )
    for seed in range(20):  # find a split that holds the odd document out
        from nextword.corpus import split_documents

        if split_documents(docs, 0.1, seed)[1] == [docs[-1]]:
            break
    config = replace(config, corpus=replace(config.corpus, split_seed=seed))
    train(config)
    tokens = Tokenizer.from_json((tmp_path / "run" / "tokenizer.json").read_text()).tokens
    assert "alpha" in tokens and "zebra" not in tokens


def test_existing_run_folder_is_refused_then_overwritten(run_dir, tiny_config, tmp_path):
    import shutil

    with pytest.raises(RunExistsError, match=r"nextword\.train\.resume\(.*overwrite=True"):
        train(tiny_config)
    out = tmp_path / "again"
    shutil.copytree(run_dir, out)
    (out / ".model.tmp12345.tmp.keras").write_bytes(b"left by a killed session")
    old_model = (out / "model.keras").read_bytes()
    result = train(replace(tiny_config, out=str(out), epochs=1, overwrite=True))
    assert result.epochs == 1 and (out / ".nextword-run").is_file()
    assert (out / "model.keras").read_bytes() != old_model and not (
        out / ".model.tmp12345.tmp.keras"
    ).exists()


@pytest.mark.parametrize("intruder", ["notes.txt", "corpus.csv", "subfolder", "model.keras-link"])
def test_overwrite_never_deletes_what_a_run_did_not_write(run_dir, tiny_config, tmp_path, intruder):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    if intruder == "subfolder":
        (out / "subfolder").mkdir()
        (out / "subfolder" / "thesis.tex").write_text("precious")
    elif intruder == "model.keras-link":  # a run file's name that is not a plain file is not ours either
        (out / "model.keras").unlink()
        (out / "model.keras").symlink_to(tmp_path / "elsewhere.keras")
        (tmp_path / "elsewhere.keras").write_text("precious")
    else:
        (out / intruder).write_text("precious")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(NotARunError, match="did not write"):
        train(replace(tiny_config, out=str(out), overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "tokenizer.json").is_file() and (out / "train.ids").is_file()


def test_overwrite_refuses_a_folder_that_is_not_a_run(tiny_config, tmp_path):
    home = tmp_path / "thesis"
    home.mkdir()
    (home / "chapter1.tex").write_text("precious")
    with pytest.raises(NotARunError, match="not a nextword run folder"):
        train(replace(tiny_config, out=str(home), overwrite=True))
    assert (home / "chapter1.tex").read_text() == "precious"
    # without overwrite: said to be no run, not told to resume it or overwrite it (both refused)
    with pytest.raises(
        RunExistsError, match=r"is not a nextword run folder .* choose an empty or new folder"
    ) as said:
        train(replace(tiny_config, out=str(home)))
    message = str(said.value).replace(str(home), "HOME")  # the folder's own name may hold those words
    assert "resume" not in message and "overwrite" not in message, message


def test_a_corpus_inside_the_run_folder_is_refused(tiny_config, tmp_path, corpus_files):
    import shutil

    out = tmp_path / "run"
    out.mkdir()
    corpus = shutil.copy(corpus_files["csv"], out / "corpus.csv")
    config = replace(tiny_config, out=str(out), overwrite=True)
    with pytest.raises(RunExistsError, match="inside the run folder"):
        train(replace(config, corpus=replace(config.corpus, paths=(str(corpus),))))
    assert Path(corpus).is_file()


def test_early_stopping_and_resume(tmp_path, tiny_config):
    out = tmp_path / "run"
    first = train(replace(tiny_config, out=str(out), epochs=2))
    assert first.epochs == 2
    metrics_before = json.loads((out / "metrics.json").read_text())["epochs"]
    resumed = resume(out, epochs=4)
    metrics = json.loads((out / "metrics.json").read_text())["epochs"]
    assert resumed.epochs == 4 and [e["epoch"] for e in metrics] == [1, 2, 3, 4]
    assert metrics[:2] == metrics_before
    assert resume(out, epochs=4).epochs == 4  # nothing left to do


def test_early_stopping_stops_after_patience(tmp_path, tiny_config):
    """Patience counts epochs, and 100 optimizer steps at least (see the test below): one window a step
    makes the tiny corpus's epochs over 100 steps, so one epoch of patience is enough."""
    from nextword.train.recorder import PATIENCE_STEPS

    # A learning rate this high makes validation loss get worse after the first epoch.
    config = replace(
        tiny_config,
        out=str(tmp_path / "run"),
        epochs=8,
        patience=1,
        batch_size=1,
        learning_rate=5.0,
        clipnorm=100.0,
        lr_schedule="constant",
    )
    result = train(config)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"][0]["steps"] >= PATIENCE_STEPS
    assert result.stopped_early and metrics["stopped_early"]
    assert result.epochs == result.best_epoch + 1 < 8
    # Patience running out on the last planned epoch stops nothing: the run is not "stopped early".
    from nextword.train.recorder import patience_reached

    last = train(replace(config, out=str(tmp_path / "last"), epochs=result.epochs))
    metrics = json.loads((tmp_path / "last" / "metrics.json").read_text())
    assert last.epochs == result.epochs and patience_reached(metrics["epochs"], 1)
    assert not last.stopped_early and not metrics["stopped_early"]


def test_patience_counts_epochs_and_steps():
    from nextword.train.recorder import PATIENCE_STEPS, patience_reached

    def history(losses: list[float], steps_per_epoch: int | None) -> list[dict]:
        return [
            {"epoch": i + 1, "val_loss": v, "dev_loss": v}
            | ({"steps": (i + 1) * steps_per_epoch} if steps_per_epoch else {})
            for i, v in enumerate(losses)
        ]

    worse = [1.0, 2.0, 3.0]  # two epochs after the best
    assert patience_reached(history(worse, 143), 2)  # the reference corpus: 286 steps
    assert not patience_reached(history(worse, 143), 3)
    assert not patience_reached(history(worse, 2), 2)  # 4 steps: noise, not a trend
    assert patience_reached(history([1.0] + [2.0] * 50, 2), 2)  # 100 steps
    assert not patience_reached(history([1.0] + [2.0] * 49, 2), 2)
    assert patience_reached(history(worse, None), 2)  # a run from before steps were recorded
    assert not patience_reached(history(worse, 143), 0) and not patience_reached([], 2)
    assert PATIENCE_STEPS == 100


def test_the_best_epochs_dev_and_validation_losses_are_those_of_its_files(run_dir, tiny_config):
    import keras

    best = json.loads((run_dir / "metrics.json").read_text())["best"]
    model = keras.saving.load_model(run_dir / "model.keras")
    dev, val = (_mean_loss(model, run_dir / name, tiny_config) for name in ("dev.ids", "val.ids"))
    assert dev == pytest.approx(best["dev_loss"], rel=2e-5) and val == pytest.approx(
        best["val_loss"], rel=2e-5
    )
    assert dev != pytest.approx(best["val_loss"], rel=2e-5)  # two different sets of windows


def test_the_development_loss_chooses_the_best_epoch_and_when_to_stop():
    from nextword.train.recorder import best_index, epochs_since_best, metrics_document, selection_key

    history = [
        {"epoch": 1, "val_loss": 3.0, "dev_loss": 2.0},
        {"epoch": 2, "val_loss": 1.0, "dev_loss": 2.5},
        {"epoch": 3, "val_loss": 0.5, "dev_loss": 2.0},  # a tie on dev: the earlier epoch stays best
    ]
    assert selection_key(history) == "dev_loss" and best_index(history) == 0
    assert epochs_since_best(history) == 2
    document = metrics_document(history, stopped_early=True)
    assert document["best"] is history[0] and document["selected_by"] == "dev_loss"
    # A run resumed from before development scores (or one without a development part) goes by the
    # validation loss for all of its epochs, never by a mix.
    mixed = [{"epoch": 1, "val_loss": 3.0}, *history[1:]]
    assert selection_key(mixed) == "val_loss" and best_index(mixed) == 2 and epochs_since_best(mixed) == 0
    assert metrics_document([], stopped_early=False)["best"] is None


def test_without_a_development_part_the_validation_loss_chooses(tmp_path, tiny_config, caplog):
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="nextword.train"):
        result = train(replace(tiny_config, out=str(out), epochs=2, dev_fraction=0.0))
    metrics = json.loads((out / "metrics.json").read_text())
    assert result.selected_by == metrics["selected_by"] == "val_loss"
    assert not DEV_KEYS & set(metrics["epochs"][0])
    assert metrics["best"] == min(metrics["epochs"], key=lambda e: e["val_loss"])
    assert "no development part" in caplog.text and "not quite held out" in caplog.text


def test_a_seq_len_longer_than_every_document_is_flagged_with_the_length_that_trains_the_same(
    tmp_path, tiny_config, caplog
):
    # Each window is one document padded to seq_len: 500 on documents of a few dozen words was mostly
    # padding, computed and weighted 0, without a word said.
    from nextword.runtime.tokenizer import EOD_ID
    from nextword.train.data import document_starts

    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="nextword.train"):
        train(replace(tiny_config, out=str(out), epochs=1, seq_len=500))
    (line,) = [r.getMessage() for r in caplog.records if "is longer than every document" in r.getMessage()]
    run = RunDir(out)
    longest = max(
        int(np.diff(document_starts(np.fromfile(path, dtype=np.int32), EOD_ID)).max())
        for path in (run.train_ids, run.val_ids, run.dev_ids)
        if path.is_file()
    )
    assert f"(the longest has {longest} inputs)" in line and f"`seq_len` {longest} trains the same" in line
    assert longest < 500 and "% of every batch is padding" in line
    caplog.clear()
    with caplog.at_level("WARNING", logger="nextword.train"):  # the length it names: no warning
        train(replace(tiny_config, out=str(tmp_path / "again"), epochs=1, seq_len=longest))
    assert "is longer than every document" not in caplog.text


def test_resume_needs_a_checkpoint(tmp_path):
    RunDir(tmp_path).mark()  # a run that stopped before it wrote anything else
    with pytest.raises(FileNotFoundError, match=r"no checkpoint\.keras"):
        resume(tmp_path)


def test_bad_corpus_fails_before_any_file_is_written(tmp_path, tiny_config):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,date\nsomething,today\n")
    out = tmp_path / "runs" / "new" / "run"
    with pytest.raises(CorpusError, match="which column holds the text"):
        train(replace(tiny_config, out=str(out), corpus=replace(tiny_config.corpus, paths=(str(bad),))))
    assert not (tmp_path / "runs").exists()  # not even the folders made for the run's lock


def test_a_run_folder_another_process_trains_in_is_refused_and_left_as_it_is(run_dir, tiny_config, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    with RunDir(old).in_use():  # as a training process holds it, until it ends
        with pytest.raises(RunBusyError, match="in use by another nextword training process"):
            train(replace(tiny_config, out=str(old), overwrite=True))  # would clear the folder
        with pytest.raises(RunBusyError, match="wait for it to end"):
            resume(str(old), epochs=5)
        # an overwrite under way has moved the run's files aside: a resume then said the folder was no
        # run folder at all
        aside = tmp_path / "aside"
        aside.mkdir()
        for path in list(old.iterdir()):
            path.rename(aside / path.name)
        with pytest.raises(RunBusyError, match="wait for it to end"):
            resume(str(old), epochs=5)
        for path in list(aside.iterdir()):
            path.rename(old / path.name)
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before


def test_without_flock_the_run_folder_is_used_unguarded(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows: `import fcntl` fails
    folder = tmp_path / "run"
    with RunDir(folder).in_use(), RunDir(folder).in_use():  # nothing to refuse with
        assert folder.is_dir()
    assert not folder.exists()  # made for the lock, left empty: removed


def test_the_run_folders_lock_ends_with_the_process_that_held_it(tmp_path, monkeypatch):
    import subprocess
    import sys

    folder = tmp_path / "run"
    hold = (
        "import sys, time\n"
        "from nextword.train.files import RunDir\n"
        "held = RunDir(sys.argv[1]).in_use()\n"
        "held.__enter__()\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", hold, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(RunBusyError), RunDir(folder).in_use():
            pass
        # Both started as the folder did not exist yet: the one refused removed the (still empty) folder
        # the other had locked, whose files then went to a new, unlocked folder of the same name.
        exists = Path.exists
        with monkeypatch.context() as patched:
            patched.setattr(Path, "exists", lambda path: path != folder and exists(path))
            with pytest.raises(RunBusyError), RunDir(folder).in_use():
                pass
        assert folder.is_dir() and RunDir(folder).busy()  # still the folder the other process holds
        child.kill()  # killed mid-run: nothing is left to unlock by hand
        child.wait(timeout=30)
        with RunDir(folder).in_use():
            assert folder.is_dir()
    finally:
        child.kill()
        child.wait(timeout=30)


def _glove(path: Path, words: list[str], dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = {w: rng.normal(size=dim).astype(np.float32) for w in words}
    path.write_text(
        "".join(f"{w} {' '.join(f'{v:.6f}' for v in vec)}\n" for w, vec in vectors.items()), encoding="utf-8"
    )
    return vectors


def test_pretrained_embeddings_frozen_and_missing_words(tmp_path, tiny_config, caplog):
    import keras

    glove = tmp_path / "glove.txt"
    vectors = _glove(glove, ["network", "processor", "weights", "notinvocab"], dim=16)
    config = replace(
        tiny_config, out=str(tmp_path / "run"), epochs=1, embeddings=str(glove), freeze_embeddings=True
    )
    with caplog.at_level("INFO"):
        train(config)
    assert any("3 of" in r.getMessage() and "initialized randomly" in r.getMessage() for r in caplog.records)
    tokenizer = Tokenizer.from_json((tmp_path / "run" / "tokenizer.json").read_text())
    matrix = keras.saving.load_model(tmp_path / "run" / "model.keras").get_layer("embedding").get_weights()[0]
    for word in ("network", "processor", "weights"):
        np.testing.assert_allclose(
            matrix[tokenizer.id_of(word)], vectors[word], atol=1e-5
        )  # frozen: unchanged


def test_pretrained_embeddings_fine_tuned_move(tmp_path, tiny_config):
    import keras

    glove = tmp_path / "glove.txt"
    vectors = _glove(glove, ["network", "the"], dim=16)
    train(replace(tiny_config, out=str(tmp_path / "run"), epochs=1, embeddings=str(glove)))
    tokenizer = Tokenizer.from_json((tmp_path / "run" / "tokenizer.json").read_text())
    matrix = keras.saving.load_model(tmp_path / "run" / "model.keras").get_layer("embedding").get_weights()[0]
    assert not np.allclose(matrix[tokenizer.id_of("the")], vectors["the"], atol=1e-5)


def test_embeddings_of_the_wrong_dimension_are_refused_before_training(tmp_path, tiny_config):
    glove = tmp_path / "glove.txt"
    _glove(glove, ["network"], dim=7)
    out = tmp_path / "run"
    with pytest.raises(
        EmbeddingsError, match="7 dimensions but the model's embedding has 16; pass embedding_dim=7"
    ):
        train(replace(tiny_config, out=str(out), embeddings=str(glove)))
    assert not (out / "checkpoint.keras").exists()


def test_single_layer_model_without_dropout(tmp_path, tiny_config):
    config = replace(tiny_config, out=str(tmp_path / "run"), epochs=1, model=ModelConfig(16, 24, 1, 0.0))
    assert train(config).epochs == 1


@pytest.mark.parametrize(
    ("field", "value"), [("seq_len", 0), ("batch_size", -1), ("learning_rate", 0.0), ("patience", -1)]
)
def test_config_validation(tiny_config, field, value):
    with pytest.raises(ValueError, match=field):
        replace(tiny_config, **{field: value})


def test_freeze_without_embeddings_is_refused(tiny_config):
    with pytest.raises(ValueError, match="embeddings='FILE'"):
        replace(tiny_config, freeze_embeddings=True)


def test_time_budget_cuts_the_epoch_and_keeps_it(tmp_path, tiny_config):
    config = replace(tiny_config, out=str(tmp_path / "run"), epochs=5, max_minutes=1e-4, batch_size=2)
    result = train(config)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result.out_of_time and result.epochs == 1
    assert metrics["epochs"][0]["partial"] is True and "val_loss" in metrics["epochs"][0]
    assert (tmp_path / "run" / "model.keras").is_file()
    resumed = resume(tmp_path / "run", epochs=2)  # a resumed session gets no budget unless given one
    assert resumed.epochs == 2 and not resumed.out_of_time


def test_command_is_recorded(tmp_path, tiny_config):
    train(replace(tiny_config, out=str(tmp_path / "run"), epochs=1), command="nextword train x --out y")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["command"] == "nextword train x --out y"


def test_cosine_schedule_decays_the_learning_rate(tmp_path, tiny_config):
    import keras

    train(replace(tiny_config, out=str(tmp_path / "run"), epochs=3))
    schedule = keras.saving.load_model(tmp_path / "run" / "checkpoint.keras").optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(tiny_config.learning_rate)
    assert float(schedule(schedule.decay_steps)) == pytest.approx(tiny_config.learning_rate * 0.05)


def test_training_streams_the_corpus_into_id_files(tmp_path, tiny_config, monkeypatch):
    import nextword.corpus
    import nextword.corpus.readers
    import nextword.train
    from nextword.corpus import STREAM_DTYPE, encode_stream, split_corpus
    from nextword.corpus.dev import dev_count, dev_mask

    def refuse(*args, **kwargs):
        raise AssertionError("train() must not load the whole corpus into memory")

    for module in (nextword.train, nextword.corpus, nextword.corpus.readers):
        monkeypatch.setattr(module, "load_documents", refuse)
    monkeypatch.setattr(nextword.train, "split_documents", refuse)
    out = tmp_path / "run"
    result = train(replace(tiny_config, out=str(out), epochs=1))
    monkeypatch.undo()

    assert result.epochs == 1
    entry = json.loads((out / "metrics.json").read_text())["epochs"][0]
    assert set(entry) >= EPOCH_KEYS and np.isfinite(entry["val_loss"])
    tokenizer = Tokenizer.from_json((out / "tokenizer.json").read_text())
    split = split_corpus(tiny_config.corpus)  # deduplicated by default
    train_docs, val_docs = split.documents()
    n_dev = dev_count(len(train_docs), tiny_config.dev_fraction)
    is_dev = dev_mask(len(train_docs), n_dev, tiny_config.corpus.split_seed, split.training_groups())
    dev_docs = [d for d, dev in zip(train_docs, is_dev, strict=True) if dev]
    train_docs = [d for d, dev in zip(train_docs, is_dev, strict=True) if not dev]
    for name, docs in (("train.ids", train_docs), ("dev.ids", dev_docs), ("val.ids", val_docs)):
        stored = np.fromfile(out / name, dtype=STREAM_DTYPE)
        np.testing.assert_array_equal(stored, encode_stream(docs, tokenizer))
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["train_words"] == len(encode_stream(train_docs, tokenizer)) - 1
    assert data["split"]["scheme"] == "dedup-v5" and data["split"]["dedup"]["shingle_words"] == 5
    assert data["documents"] == split.counts.documents and data["near_duplicate_groups"] > 0
    held = data["train_documents"] + data["dev_documents"] + data["val_documents"] + data["exact_duplicates"]
    assert held == data["documents"]
    assert entry["train_words_per_second"] == pytest.approx(data["train_words"] / entry["seconds"], rel=0.01)
    prompts = json.loads((out / "samples.json").read_text())["prompts"]
    assert prompts == [" ".join(d.split()[:20]) for d in val_docs[:5]]


def test_resume_reuses_the_id_files_and_writes_them_when_missing(tmp_path, tiny_config, monkeypatch):
    import nextword.train.trainer as trainer

    out = tmp_path / "run"
    train(replace(tiny_config, out=str(out), epochs=1))
    encoded = {name: (out / name).read_bytes() for name in ("train.ids", "val.ids")}

    def refuse(*args, **kwargs):
        raise AssertionError("the corpus was encoded again although train.ids and val.ids exist")

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "encode_corpus", refuse)
        assert resume(out, epochs=2).epochs == 2

    (out / "val.ids").unlink()  # as after a kill between the two renames, or a folder from before
    (out / "train.ids").unlink()
    assert resume(out, epochs=3).epochs == 3
    assert {name: (out / name).read_bytes() for name in encoded} == encoded
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]] == [1, 2, 3]


def test_resume_refuses_a_corpus_that_changed_before_writing_an_id_file(tmp_path, tiny_config, documents):
    """A corpus cut to fewer documents was encoded again with a warning: a new split, validation
    documents the run may have trained on, and config.json's counts describing two corpora."""
    from helpers import write_corpus

    corpus = write_corpus(tmp_path / "corpus", documents)["csv"]
    out = tmp_path / "run"
    config = replace(tiny_config, out=str(out), epochs=1)
    train(replace(config, corpus=replace(config.corpus, paths=(str(corpus),))))
    (out / "train.ids").unlink()
    stored = (out / "config.json").read_bytes()
    # fewer documents, or as many with a word changed (that one was encoded again without a word)
    edited = [documents[0].replace(" ", "  ", 1), *documents[1:]]
    for changed in (documents[: len(documents) // 2], edited):
        write_corpus(corpus.parent, changed)
        with pytest.raises(ValueError, match=r"are not the size they were when .* would mix two validation"):
            resume(out, epochs=2)
        assert not (out / "train.ids").exists() and (out / "config.json").read_bytes() == stored
    write_corpus(corpus.parent, documents)  # the corpus restored: the run goes on
    assert resume(out, epochs=2).epochs == 2


def test_a_run_from_before_dedup_is_encoded_again_with_its_own_split(tmp_path, tiny_config, documents):
    from nextword.corpus import STREAM_DTYPE, encode_stream, split_documents
    from nextword.corpus.dev import dev_count, dev_mask

    out = tmp_path / "run"
    train(replace(tiny_config, out=str(out), epochs=1))
    config = json.loads((out / "config.json").read_text())
    del config["data"]["split"], config["corpus"]["keep_duplicates"]  # as a run of an older nextword
    del config["corpus"]["near_duplicate_threshold"]
    (out / "config.json").write_text(json.dumps(config))
    (out / "train.ids").unlink()
    (out / "val.ids").unlink()
    assert resume(out, epochs=2).epochs == 2
    tokenizer = Tokenizer.from_json((out / "tokenizer.json").read_text())
    train_docs, val_docs = split_documents(documents, 0.1, 0)  # the document-index split it was made with
    is_dev = dev_mask(len(train_docs), dev_count(len(train_docs), tiny_config.dev_fraction), 0)
    train_docs = [d for d, dev in zip(train_docs, is_dev, strict=True) if not dev]  # then the dev part
    np.testing.assert_array_equal(
        np.fromfile(out / "val.ids", dtype=STREAM_DTYPE), encode_stream(val_docs, tokenizer)
    )
    assert len(np.fromfile(out / "train.ids", dtype=STREAM_DTYPE)) == len(
        encode_stream(train_docs, tokenizer)
    )


def test_overwrite_keeps_the_old_run_when_the_new_corpus_is_bad(run_dir, tiny_config, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    bad = tmp_path / "bad.csv"
    bad.write_text("title\nx\n")
    with pytest.raises(CorpusError):
        train(
            replace(
                tiny_config,
                out=str(old),
                overwrite=True,
                corpus=replace(tiny_config.corpus, paths=(str(bad),)),
            )
        )
    assert (old / "model.keras").is_file() and (old / "metrics.json").is_file()


def test_the_trainers_optimizer_and_compile_step_train_with_model_fit(tiny_config):
    # benchmarks/streaming_memory.py trains through model.fit with these two public functions.
    import keras

    from nextword.train.fit import build_optimizer, compile_model
    from nextword.train.model import build_model

    config = replace(tiny_config, epochs=3, lr_schedule="cosine")
    optimizer = build_optimizer(config, steps_per_epoch=4)
    assert optimizer.clipnorm == config.clipnorm
    schedule = optimizer._learning_rate  # 3 epochs of 4 steps: from learning_rate down to 5% of it
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(config.learning_rate)
    assert float(schedule(12)) == pytest.approx(config.learning_rate * 0.05)
    model = build_model(config.model, vocab_size=40)
    compile_model(model, optimizer)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 40, size=(8, 5)).astype("int32")
    y, weights = np.roll(x, -1, axis=1), np.ones((8, 5), dtype="float32")
    weights[:, -1] = 0  # padding positions count for nothing
    history = model.fit(x, y, sample_weight=weights, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert {"accuracy", "top5_accuracy"} <= set(history.history)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def _dropped(layer, x) -> np.ndarray:
    """Where ``layer`` (a dropout layer) zeroes ``x`` (all ones) in training."""
    return np.asarray(layer(x, training=True)) == 0


def test_locked_dropout_keeps_one_mask_per_window_and_word_dropout_drops_whole_words():
    from nextword.train.model import build_model

    config = ModelConfig(8, 12, 2, 0.5, locked_dropout=True, word_dropout=0.5, tie_embeddings=False)
    model = build_model(config, vocab_size=30)
    ones = np.ones((16, 40, 8), dtype="float32")
    for name in ("embedding_dropout", "lstm_0_dropout", "lstm_1_dropout"):
        dropped = _dropped(model.get_layer(name), ones)
        assert (dropped == dropped[:, :1]).all(), f"{name}: the mask changes between time steps"
        assert 0.2 < dropped.mean() < 0.8
        assert len(np.unique(dropped[:, 0], axis=0)) > 1, f"{name}: every window has the same mask"
    words = _dropped(model.get_layer("word_dropout"), ones)
    assert (words == words[..., :1]).all(), "a word's vector is dropped in part"
    assert 0.3 < words.mean() < 0.7
    # The default: a fresh mask for every feature of every word, and no word dropout.
    plain = build_model(ModelConfig(8, 12, 1, 0.5, tie_embeddings=False), vocab_size=30)
    assert "word_dropout" not in {layer.name for layer in plain.layers}
    dropped = _dropped(plain.get_layer("embedding_dropout"), ones)
    assert (dropped != dropped[:, :1]).any()


def test_training_with_locked_and_word_dropout_exports_a_model_without_them(tmp_path, tiny_config):
    model = ModelConfig(16, 24, 1, 0.3, locked_dropout=True, word_dropout=0.1, tie_embeddings=False)
    config = replace(tiny_config, out=str(tmp_path / "run"), epochs=1, model=model)
    assert train(config).epochs == 1
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert stored["locked_dropout"] is True and stored["word_dropout"] == 0.1
    from nextword.export import ExportConfig, export
    from nextword.runtime import load

    out = tmp_path / "m.onnx"
    export(ExportConfig(run_dir=str(tmp_path / "run"), out=str(out)))
    model_file = load(out)
    assert model_file.generate("the", max_words=3, temperature=0)
    recorded = model_file.info.provenance.architecture
    assert recorded.locked_dropout is True and recorded.word_dropout == 0.1


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_word_dropout_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="word_dropout must be in"):
        ModelConfig(word_dropout=value)


def test_epochs_not_given_plans_a_thousand_steps_within_ten_to_two_hundred_epochs(tiny_config):
    from nextword.train.config import AUTO_EPOCHS, AUTO_STEPS, TrainConfig

    auto = TrainConfig()
    assert auto.epochs is None and (AUTO_STEPS, AUTO_EPOCHS) == (1000, (10, 200))
    assert auto.planned_epochs(9) == 112  # 200 short documents: 9 steps an epoch
    assert auto.planned_epochs(120) == 10  # the reference corpus keeps its 10 epochs
    assert auto.planned_epochs(1000) == 10 and auto.planned_epochs(1) == 200
    assert replace(auto, epochs=3).planned_epochs(9) == 3  # a number given is a number kept
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=0)


def test_a_run_without_epochs_plans_them_from_its_steps_and_keeps_the_plan_when_resumed(
    tiny_config, tmp_path, caplog
):
    """The schedule of a run without ``epochs`` spans the planned epochs; config.json keeps "not
    given", and a resumed session plans the same number from the same files."""
    import logging

    import keras

    from nextword.train import resume, train
    from nextword.train.data import DiskWindows

    config = replace(tiny_config, out=str(tmp_path / "run"), epochs=None, max_minutes=0.01)
    with caplog.at_level(logging.INFO, logger="nextword.train.fit"):
        result = train(config)
    assert result.out_of_time
    steps = len(DiskWindows(tmp_path / "run" / "train.ids", config.seq_len, config.batch_size, shuffle=True))
    planned = config.planned_epochs(steps)
    assert planned > 12  # the tiny corpus has a few steps an epoch: more than the fixture's 12 epochs
    assert f"{planned} epochs planned, {steps} training steps each" in caplog.text
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] is None
    saved = keras.saving.load_model(tmp_path / "run" / "checkpoint.keras", compile=True)
    schedule = saved.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == planned * steps
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nextword.train.fit"):
        resume(tmp_path / "run", max_minutes=0.01)
    assert f"{planned} epochs planned" in caplog.text


@pytest.mark.parametrize(
    "intruder", ["notes.tmp", "model.tmp.keras", "draft.tmp.txt", ".notes.tmpl", ".model.keras.tmp", ".x.tmp"]
)
def test_overwrite_never_deletes_a_users_file_named_like_a_temporary(
    run_dir, tiny_config, tmp_path, intruder
):
    """A run's temporaries are atomic_path's, ``.NAME.XXXX.tmpSUFFIX`` (a leading dot); a file of the
    user's that merely holds ``.tmp`` is not one, and keeps the folder from being replaced."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    (out / intruder).write_text("precious")
    with pytest.raises(NotARunError, match="did not write"):
        train(replace(tiny_config, out=str(out), overwrite=True))
    assert (out / intruder).read_text() == "precious" and (out / "model.keras").is_file()
