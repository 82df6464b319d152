"""The CLI against hostile files and careless use: text from files is made safe for the terminal, and
every expected failure is one line on stderr with exit status 2, never a traceback."""

from __future__ import annotations

import errno
import json
import logging
import os
import pathlib
import re
import shutil
import zipfile

import numpy as np
import pytest

from nextword.cli.display import SafeFormatter, figure, json_text, safe
from nextword.cli.main import main
from nextword.runtime import ModelFileError, WrongTypeError
from nextword.runtime import default as default_module
from nextword.runtime.limits import LoadLimits

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the crafted files")
import crafted  # noqa: E402

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31mWARNING\x9b1m\u202eevil\u2066"
# What a file must never get onto the terminal raw (our own output uses only \n and \t).
UNSAFE = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in "\n\t"] + ["\u202e", "\u2066"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, command: str, *argv) -> str:
    code, _, err = run_cli(capsys, command, *argv)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"nextword {command}: error: "), err
    return lines[0]


def assert_terminal_safe(text: str) -> None:
    found = sorted({repr(c) for c in text if c in UNSAFE})
    assert not found, f"unsafe characters printed: {found}"


# --------------------------------------------------------------------------- the display module


def test_safe_escapes_controls_c1_and_bidi_and_keeps_plain_text():
    assert safe("a neural network, é 中文 🙂") == "a neural network, é 中文 🙂"
    shown = safe(ESCAPES)
    assert_terminal_safe(shown)
    assert "\\x1b]0;owned\\x07" in shown and "\\x9b" in shown and "\\u202e" in shown
    assert safe("line\nbreak\ttab") == "line\\x0abreak\\x09tab"  # a file cannot forge extra lines
    assert safe("line\nbreak\ttab\r", lines=True) == "line\nbreak\ttab\\x0d"
    assert json.loads(json_text({"k": ESCAPES})) == {"k": ESCAPES}  # still valid JSON, same value
    assert_terminal_safe(json_text({"k": ESCAPES}))


def test_log_messages_are_made_safe():
    record = logging.LogRecord("nextword", logging.WARNING, __file__, 1, "bad %s", (ESCAPES,), None)
    assert_terminal_safe(SafeFormatter("%(message)s").format(record))


# --------------------------------------------------------------------------- terminal injection


@pytest.fixture(scope="module")
def hostile_model(model_path, tmp_path_factory) -> pathlib.Path:
    """A working model whose metadata strings and words carry escape sequences and bidi overrides."""
    proto = crafted.proto(model_path)
    config = json.loads(crafted.meta(proto, "nextword.config"))
    config["train"]["command"] = f"nextword train {ESCAPES}"
    config["train"]["corpus"]["paths"] = [f"{ESCAPES}.csv"]
    config["export"]["command"] = ESCAPES
    config["model"]["embedding_dim"] = ESCAPES
    # What `nextword info` shows of the training comes from the provenance record: strings there too.
    config["provenance"]["train_command"] = f"nextword train {ESCAPES}"
    config["provenance"]["corpus_files"] = [f"{ESCAPES}.csv"]
    config["provenance"]["export_command"] = ESCAPES
    crafted.set_meta(proto, "nextword.config", json.dumps(config))
    versions = json.loads(crafted.meta(proto, "nextword.versions"))
    crafted.set_meta(proto, "nextword.versions", json.dumps({**versions, ESCAPES: ESCAPES}))
    crafted.set_meta(proto, "nextword.generation", json.dumps({"stop": [ESCAPES[:60]]}))
    tokenizer = json.loads(crafted.meta(proto, "nextword.tokenizer"))
    tokenizer["tokens"] = [*tokenizer["tokens"][:3], *("\u202e" + t for t in tokenizer["tokens"][3:])]
    crafted.set_meta(proto, "nextword.tokenizer", json.dumps(tokenizer))
    path = tmp_path_factory.mktemp("hostile") / "hostile.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def test_info_makes_every_string_from_the_file_safe(capsys, hostile_model):
    code, out, _ = run_cli(capsys, "info", hostile_model)
    assert code == 0
    assert_terminal_safe(out)
    assert "\\x1b]0;owned\\x07" in out and "decoding       stop=(" in out
    code, out, _ = run_cli(capsys, "info", hostile_model, "--json")
    assert code == 0
    assert_terminal_safe(out.replace("\n", ""))
    assert json.loads(out)["config"]["export"]["command"] == ESCAPES


@pytest.mark.parametrize(
    "argv",
    [
        ("generate", "the", "--seed", "1", "--max-words", "12", "--stop-at-end"),
        ("generate", "the", "--seed", "1", "--max-words", "12", "--stream", "--no-stop-at-end"),
        ("generate", "the", "--seed", "1", "--max-words", "12", "--json"),
        ("suggest", "the network", "-k", "5"),
        ("suggest", "the network", "-k", "5", "--json"),
    ],
)
def test_generated_words_are_made_safe(capsys, hostile_model, argv):
    code, out, _ = run_cli(capsys, *argv, "--model", hostile_model)
    assert code == 0 and "\\u202e" in out  # every word carries an override: shown, not obeyed
    assert_terminal_safe(out.replace("\n", ""))


def test_error_messages_quoting_the_file_are_made_safe(capsys, model_path, tmp_path):
    """onnxruntime's message names the failing node: a crafted name reaches the error line escaped."""
    proto = crafted.fails_below_batch_two(crafted.proto(model_path))
    for i, node in enumerate(proto.graph.node):
        node.name = f"{ESCAPES}{i}"
    path = tmp_path / "named.onnx"
    path.write_bytes(proto.SerializeToString())
    line = one_line_error(capsys, "generate", "the network", "--model", path)
    assert_terminal_safe(line)
    assert "onnxruntime failed running the model" in line and "\\x1b]0;owned" in line


# --------------------------------------------------------------------------- one line, exit 2


def _info_with(capsys, proto, path: pathlib.Path, metadata: dict[str, object]) -> str:
    """``nextword info`` on ``proto`` with each of ``metadata`` (key: JSON value) stored; its output."""
    for key, value in metadata.items():
        crafted.set_meta(proto, key, json.dumps(value))
    path.write_bytes(proto.SerializeToString())
    code, out, err = run_cli(capsys, "info", path)
    assert code == 0, err
    return out


def test_info_on_metadata_with_wrong_types_or_missing_fields(capsys, model_path, tmp_path):
    proto = crafted.proto(model_path)
    wrong = {
        "nextword.config": {"train": [], "model": "x", "export": 5},
        "nextword.metrics": {"best": {"val_loss": "low"}, "epochs": 3, "selected_by": [1]},
        "nextword.parity": {"max_abs_diff_random": "x", "int8_vs_fp32": []},
        "nextword.quality": {"fp32": "y", "int8": {"perplexity": None}},
        "nextword.versions": {"a": {"b": [1]}},
    }
    out = _info_with(capsys, proto, tmp_path / "types.onnx", wrong)
    assert "validation loss ?" in out and "max |Keras - ONNX| ?" in out and "perplexity ?" in out
    assert "(by ?)" in out
    keys = ("nextword.config", "nextword.metrics", "nextword.parity", "nextword.quality")
    assert "embedding ?" in _info_with(capsys, proto, tmp_path / "types.onnx", {key: {} for key in keys})


def test_huge_figures_are_printed_with_an_exponent(capsys, model_path, tmp_path):
    """A diverged model's perplexity (1e300) printed with ".2f" was a line of 300 digits."""
    assert figure(46.194, ".2f") == "46.19" and figure(1e300, ".2f") == "1e+300"
    assert figure(float("inf"), ".1f") == "inf" and figure(123456789.0, ".1f") == "123456789.0"
    out = _info_with(
        capsys,
        crafted.proto(model_path),
        tmp_path / "big.onnx",
        {"nextword.quality": {"int8": {"perplexity": 1e300}}},
    )
    assert "perplexity 1e+300," in out


def test_info_on_numbers_too_large_for_a_float(capsys, model_path, tmp_path):
    """JSON holds integers of any length: formatting a 400-digit one as ".2f" raised OverflowError."""
    huge = 10**400
    out = _info_with(
        capsys,
        crafted.proto(model_path),
        tmp_path / "huge.onnx",
        {
            "nextword.metrics": {"best": {"val_loss": huge, "val_accuracy": -huge}},
            "nextword.quality": {"int8": {"perplexity": huge, "accuracy": 0.5}},
            "nextword.parity": {"max_abs_diff_random": huge, "tolerance": huge},
        },
    )
    assert "validation loss ?" in out and "accuracy ?" in out and "perplexity ?, accuracy 50.00%" in out
    assert "max |Keras - ONNX| ?" in out


def test_evaluate_on_a_recorded_split_of_the_wrong_type(capsys, model_path, corpus_files, tmp_path):
    proto = crafted.proto(model_path)
    config = json.loads(crafted.meta(proto, "nextword.config"))
    config["provenance"]["split"]["val_fraction"] = "x"
    crafted.set_meta(proto, "nextword.config", json.dumps(config))
    path = tmp_path / "split.onnx"
    path.write_bytes(proto.SerializeToString())
    line = one_line_error(capsys, "evaluate", path, corpus_files["csv"], "--split", "val")
    assert "holds an invalid provenance: split.val_fraction must be float, got str" in line
    # A file from before the provenance record: its split is read from the train section, leniently.
    del config["provenance"]
    config["train"]["corpus"]["val_fraction"] = "x"
    crafted.set_meta(proto, "nextword.config", json.dumps(config))
    path.write_bytes(proto.SerializeToString())
    line = one_line_error(capsys, "evaluate", path, corpus_files["csv"], "--split", "val")
    assert "does not record its training split" in line and "--split all" in line


def test_score_file_that_is_a_fifo_a_folder_or_a_device(capsys, model_path, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # open() would block forever
    for path in (fifo, tmp_path, "/dev/zero"):
        line = one_line_error(capsys, "score", model_path, "--file", path)
        assert "is not a regular file" in line
    line = one_line_error(capsys, "score", model_path, "--file", tmp_path / "none.txt")
    assert "none.txt cannot be read: No such file or directory" in line


def test_model_from_the_environment_that_is_not_a_file(capsys, monkeypatch):
    monkeypatch.setenv("NEXTWORD_MODEL", "/dev/zero")
    line = one_line_error(capsys, "generate", "the network")
    assert "model file /dev/zero is not a regular file" in line and "bundled" not in line


def _run_copy(run_dir, tmp_path) -> pathlib.Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda run: (run / "config.json").write_text("[]"),
            "config.json does not hold a nextword run config",
        ),
        (
            lambda run: (run / "samples.json").write_text("[1, 2]"),
            "samples.json must hold a JSON object, not list",
        ),
        (
            lambda run: (run / "metrics.json").write_text('"x"'),
            "metrics.json must hold a JSON object, not str",
        ),
        (lambda run: (run / "tokenizer.json").write_text("{}"), "tokenizer.json: "),
        (
            lambda run: (run / "model.keras").write_bytes((run / "model.keras").read_bytes()[:2000]),
            "model.keras is not a .keras file \\(not a zip archive: truncated or damaged\\)",
        ),
    ],
)
def test_export_of_a_crafted_run_folder(capsys, run_dir, tmp_path, edit, match):
    run = _run_copy(run_dir, tmp_path)
    edit(run)
    line = one_line_error(capsys, "export", run, "--out", tmp_path / "m.onnx")
    assert re.search(match, line), line


@pytest.mark.parametrize(
    "argv, name",
    [
        (("export", "RUN", "--out", "m.onnx"), "model.keras"),
        (("train", "--resume", "RUN", "--epochs", "13"), "checkpoint.keras"),
    ],
)
def test_a_run_file_it_may_not_read_is_named_so_not_as_damaged(
    capsys, run_dir, tmp_path, monkeypatch, argv, name
):
    """ "damaged: re-run training" (or "start again with --overwrite") would have the user throw away a
    run whose file is fine."""
    run = _run_copy(run_dir, tmp_path)
    opened = pathlib.Path.open

    def guarded(self, *args, **kwargs):  # as for a user without read permission (root reads anything)
        if self.name == name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", guarded)
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, *(run if a == "RUN" else a for a in argv))
    assert f"{name}: Permission denied" in line and "damaged" not in line, line


def test_export_of_a_keras_file_naming_os_system(capsys, run_dir, tmp_path):
    """Keras' safe mode runs nothing; the refusal is one line naming the file."""
    run = _run_copy(run_dir, tmp_path)
    keras_file = run / "model.keras"
    with zipfile.ZipFile(keras_file) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    config = re.sub(  # the embedding layer, tied (a nextword class) or not, becomes os.system
        r'"class_name": "(Tied)?Embedding"',
        '"class_name": "system", "module": "os"',
        entries["config.json"].decode(),
    )
    config = config.replace('"registered_name": "nextword>TiedEmbedding"', '"registered_name": null')
    assert '"module": "os"' in config
    entries["config.json"] = config.encode()
    with zipfile.ZipFile(keras_file, "w") as target:
        for name, data in entries.items():
            target.writestr(name, data)
    line = one_line_error(capsys, "export", run, "--out", tmp_path / "m.onnx")
    assert (
        "model.keras could not be loaded as a nextword Keras model" in line
        and "nothing from it was run" in line
    )


def test_export_with_out_of_range_validation_ids(capsys, run_dir, tmp_path):
    run = _run_copy(run_dir, tmp_path)
    ids = np.fromfile(run / "val.ids", dtype=np.int32)
    ids[5] = 1_000_000
    ids.tofile(run / "val.ids")
    line = one_line_error(capsys, "export", run, "--out", tmp_path / "m.onnx")
    assert "val.ids holds token id 1000000, outside the vocabulary" in line and "--no-evaluate" in line


def test_export_to_a_folder_or_a_full_disk(capsys, run_dir, tmp_path, monkeypatch):
    line = one_line_error(capsys, "export", run_dir, "--out", tmp_path)
    assert f"--out {tmp_path} is a folder" in line
    from nextword.corpus import files

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", kwargs.get("dir"))

    monkeypatch.setattr(files.tempfile, "mkstemp", full)
    out = tmp_path / "m.onnx"
    line = one_line_error(capsys, "export", run_dir, "--out", out, "--no-evaluate", "--greedy-words", 3)
    assert f"{out}: No space left on device; free some space" in line


@pytest.mark.train
def test_train_on_a_read_only_filesystem(capsys, corpus_files, tmp_path, monkeypatch):
    target = tmp_path / "run"
    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(target)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    line = one_line_error(
        capsys, "train", corpus_files["csv"], "--out", target, "--epochs", 1, "--min-count", 1
    )
    assert "Read-only file system; the file system is read-only" in line and str(target) in line


@pytest.mark.parametrize("seed", ["4294967296", "-1"])
def test_train_with_a_seed_out_of_range_names_the_flag_and_writes_nothing(
    capsys, corpus_files, tmp_path, seed
):
    out = tmp_path / "run"
    line = one_line_error(capsys, "train", corpus_files["csv"], "--out", out, "--seed", seed)
    assert line.endswith(f"--seed must be in 0..4294967295, got {seed}"), line
    assert not out.exists()


@pytest.mark.train
def test_train_resume_of_what_is_not_a_run_says_what_it_is(capsys, tmp_path):
    (tmp_path / "afile").write_text("notes")
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "notes.txt").write_text("precious")
    expected = {
        "nope": "does not exist",
        "afile": "is a file, not a run folder",
        "unrelated": "is not a nextword run folder (no .nextword-run marker)",
    }
    for name, said in expected.items():
        line = one_line_error(capsys, "train", "--resume", tmp_path / name)
        assert f"{tmp_path / name} {said}" in line, line
        assert "give the run folder that training wrote (its --out)" in line
        assert "checkpoint" not in line
    assert not (tmp_path / "nope").exists() and (tmp_path / "afile").read_text() == "notes"
    assert [p.name for p in (tmp_path / "unrelated").iterdir()] == ["notes.txt"]


def test_train_resume_of_a_truncated_checkpoint(capsys, run_dir, tmp_path):
    run = _run_copy(run_dir, tmp_path)
    checkpoint = run / "checkpoint.keras"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    line = one_line_error(capsys, "train", "--resume", run, "--epochs", 13)
    assert f"{checkpoint} is damaged (not a readable .keras zip file" in line, line
    assert "--overwrite" in line and "File not found" not in line


# --------------------------------------------------------------------------- the default-model cache


def test_module_level_generate_keeps_a_bounded_number_of_models(model_path, tmp_path, monkeypatch):
    monkeypatch.setattr(default_module, "_models", {})
    paths = []
    for i in range(default_module.MAX_MODELS + 4):
        paths.append(tmp_path / f"copy{i}.onnx")
        shutil.copyfile(model_path, paths[-1])
        default_module.generate("the", model=paths[-1], max_words=2, seed=0)
        default_module.generate("the", model=paths[0], max_words=2, seed=0)  # the first stays in use
    cached = [path for path, _, _ in default_module._models]  # keyed by path, device and limits
    assert all(device == "cpu" for _, device, _ in default_module._models)
    # the same file with other limits is another entry: a model refused under the default caps is not
    # handed back, nor one loaded without them to a caller who kept them
    lifted = LoadLimits().without_size_caps()
    assert default_module.default_model(paths[0], limits=lifted) is not default_module.default_model(paths[0])
    del default_module._models[str(paths[0].resolve()), "cpu", lifted]
    assert len(cached) == default_module.MAX_MODELS
    assert str(paths[0].resolve()) in cached and str(paths[1].resolve()) not in cached
    assert cached[-1] == str(paths[0].resolve())  # most recently used last


def test_the_default_model_cache_loads_a_file_replaced_since(model_path, tmp_path, monkeypatch):
    """A long-running app that calls generate(..., model=path) gets the new model once the file at
    that path is replaced (a new export renamed over it), not the one loaded before; an unchanged file
    is not loaded again."""
    monkeypatch.setattr(default_module, "_models", {})
    path = tmp_path / "live.onnx"
    shutil.copyfile(model_path, path)
    first = default_module.default_model(path)
    assert default_module.default_model(path) is first  # unchanged: the same model
    fresh = tmp_path / "fresh.onnx"
    shutil.copyfile(model_path, fresh)
    os.replace(fresh, path)  # as an export writes: a new file renamed over the old one
    second = default_module.default_model(path)
    assert second is not first and default_module.default_model(path) is second
    assert len(default_module._models) == 1  # the old one is dropped, not kept beside it


def test_the_default_model_cache_keeps_its_model_while_the_file_cannot_be_read(
    model_path, tmp_path, monkeypatch
):
    """A file deleted (or mid-replacement) since it was loaded: the model loaded before goes on serving;
    a replacement that fails to load raises, and the model stays for the next call."""
    monkeypatch.setattr(default_module, "_models", {})
    path = tmp_path / "live.onnx"
    shutil.copyfile(model_path, path)
    first = default_module.default_model(path)
    path.unlink()
    assert default_module.default_model(path) is first
    path.write_bytes(b"half a file")  # a copy under way
    with pytest.raises(ModelFileError):
        default_module.default_model(path)
    path.unlink()
    assert default_module.default_model(path) is first


@pytest.mark.parametrize(("keyword", "value"), [("limits", [1]), ("limits", {}), ("device", ["cuda"])])
def test_the_default_model_cache_refuses_settings_of_the_wrong_type_even_when_it_holds_models(
    model_path, monkeypatch, keyword, value
):
    """A list for limits or device made the cache key unhashable (a bare TypeError) once the cache held
    a model, and limits={} was taken as the defaults: both named, whatever the cache holds."""
    monkeypatch.setattr(default_module, "_models", {})
    default_module.default_model(model_path)
    with pytest.raises(WrongTypeError, match=f"^{keyword} must be"):
        default_module.default_model(model_path, **{keyword: value})
