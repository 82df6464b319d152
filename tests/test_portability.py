"""Windows and macOS behaviour, played on Linux: Intel Macs' onnxruntime, the file browsers' metadata
files in a run folder, command hints quoted for cmd.exe, a script that serves with workers but without
``if __name__ == "__main__":``, a temporary file Windows will not delete, an encoding named "charmap",
and hard links that Windows refuses with EINVAL.

Where a test plays Windows it patches ``os`` in the one module under test (:class:`OsAs`): the real
``os.name`` stays, so pathlib and the test runner go on as on Linux."""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class OsAs:
    """``os`` as a module sees it on another platform: ``name`` set, the rest the real module's."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str):
        return getattr(os, attr)


# ----------------------------------------------------------------------- 1. onnxruntime on Intel Macs


def _onnxruntime_requirements(platform: str, machine: str, python: str) -> list[str]:
    """The onnxruntime requirements of pyproject.toml that apply on that platform and Python."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    environment = {"sys_platform": platform, "platform_machine": machine, "python_version": python}
    wanted = []
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == "onnxruntime" and requirement.marker.evaluate(environment):
            wanted.append(requirement)
    return [str(r.specifier) for r in wanted]


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_an_intel_mac_is_asked_for_the_last_onnxruntime_built_for_it_that_scores_int8_right(python):
    """onnxruntime publishes no macOS x86-64 wheels after 1.23.2, and `>=1.25` left nothing to install."""
    from packaging.specifiers import SpecifierSet

    (specifier,) = _onnxruntime_requirements("darwin", "x86_64", python)
    allowed = SpecifierSet(specifier)
    assert "1.20.1" in allowed and "1.20.0" in allowed
    assert not any(v in allowed for v in ("1.19.2", "1.21.0", "1.23.2", "1.25.0"))


@pytest.mark.parametrize(
    ("platform", "machine", "python", "expected"),
    [
        ("linux", "x86_64", "3.12", ">=1.25"),
        ("darwin", "arm64", "3.12", ">=1.25"),
        ("win32", "AMD64", "3.13", ">=1.25"),
        ("linux", "x86_64", "3.10", "!=1.21.*,!=1.22.*,!=1.23.*,>=1.19"),
        ("darwin", "arm64", "3.10", "!=1.21.*,!=1.22.*,!=1.23.*,>=1.19"),
    ],
)
def test_other_platforms_keep_their_onnxruntime_bounds(platform, machine, python, expected):
    assert _onnxruntime_requirements(platform, machine, python) == [expected]


def test_the_int8_warning_on_an_intel_mac_names_the_release_it_can_install(monkeypatch, caplog):
    from nextword.runtime import onnxruntime_build as build

    monkeypatch.setattr(build.ort, "__version__", "1.23.2")
    monkeypatch.setattr(build, "sys", types.SimpleNamespace(platform="darwin", version_info=(3, 12, 0)))
    monkeypatch.setattr(build, "platform", types.SimpleNamespace(machine=lambda: "x86_64"))
    monkeypatch.setattr(build, "_WARNED_INT8", set())
    with caplog.at_level(logging.WARNING):
        build.warn_if_int8_scores_wrong("m.onnx")
    assert "pip install onnxruntime==1.20.1" in caplog.text and "for Intel Macs" in caplog.text
    assert "Upgrade onnxruntime to 1.25" not in caplog.text


# ------------------------------------------------------------- 2. .DS_Store, Thumbs.db in a run folder

OS_FILES = (".DS_Store", "._config.json", "Thumbs.db", "desktop.ini")


def _fake_run(folder: Path) -> Path:
    """A folder that holds a run's names (what --overwrite looks at), not a trained run."""
    folder.mkdir()
    for name in (".nextword-run", "config.json", "tokenizer.json", "metrics.json"):
        (folder / name).write_text("{}")
    return folder


def _check_run_dir(folder: Path, tmp_path: Path, overwrite: bool = False) -> bool:
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    from nextword.train import CorpusConfig, TrainConfig
    from nextword.train.files import RunDir
    from nextword.train.prechecks import check_run_dir

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a document\n")
    config = TrainConfig(out=str(folder), corpus=CorpusConfig(paths=(str(corpus),)), overwrite=overwrite)
    return check_run_dir(RunDir(folder), config)


def test_a_folder_holding_only_file_browser_files_is_an_empty_one_to_train_in(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in OS_FILES:
        (folder / name).write_bytes(b"\0\0\0\1Bud1")
    assert _check_run_dir(folder, tmp_path) is False  # a new run, nothing to replace


def test_a_folder_that_is_not_a_run_is_refused_naming_what_it_holds(tmp_path):
    from nextword.train.files import RunExistsError

    folder = tmp_path / "thesis"
    folder.mkdir()
    for name in ("chapter1.tex", "chapter2.tex", "figures.pdf", "notes.txt", ".DS_Store"):
        (folder / name).write_text("precious")
    with pytest.raises(
        RunExistsError, match=r"holds files \(chapter1\.tex, chapter2\.tex, figures\.pdf and 1 more\)"
    ):
        _check_run_dir(folder, tmp_path)


def test_overwrite_replaces_a_run_beside_file_browser_files_and_removes_them(tmp_path):
    from nextword.train.files import RunDir

    run = RunDir(_fake_run(tmp_path / "run"))
    for name in OS_FILES:
        (run.root / name).write_bytes(b"\0\0\0\1Bud1")
    assert run.foreign_entries() == [] and run.is_run()
    run.check_replaceable()
    run.clear()
    assert list(run.root.iterdir()) == []


def test_a_file_browser_name_that_is_a_folder_or_a_link_is_still_foreign(tmp_path):
    from nextword.train.files import NotARunError, RunDir

    run = RunDir(_fake_run(tmp_path / "run"))
    (run.root / ".DS_Store").mkdir()
    (run.root / "Thumbs.db").symlink_to(tmp_path / "elsewhere")
    assert run.foreign_entries() == [".DS_Store", "Thumbs.db"]
    with pytest.raises(NotARunError, match=r"did not write \(\.DS_Store, Thumbs\.db\)"):
        run.check_replaceable()


# ------------------------------------------------------------------- 3. command hints for cmd.exe


def test_a_command_shown_on_windows_is_quoted_for_cmd(monkeypatch):
    from nextword.cli import display

    words = ["nextword", "export", "runs\\my run", "--out", "MODEL.onnx"]
    assert display.shown_command(words) == "nextword export 'runs\\my run' --out MODEL.onnx"
    monkeypatch.setattr(display, "os", OsAs("nt"))
    assert display.shown_command(words) == 'nextword export "runs\\my run" --out MODEL.onnx'
    assert display.shown_command(["nextword", "export", "runs\\tiny"]) == "nextword export runs\\tiny"


def test_the_next_step_after_training_is_a_command_cmd_runs(monkeypatch, capsys):
    from nextword.cli import display, training
    from nextword.train.result import TrainResult

    monkeypatch.setattr(display, "os", OsAs("nt"))
    result = TrainResult("runs\\my run", 3, 3, 4.0, 54.6, stopped_early=False)
    args = types.SimpleNamespace(resume=None, epochs=None)
    training._print_trained(args, result)
    assert '`nextword export "runs\\my run" --out MODEL.onnx`' in capsys.readouterr().out
    training._print_trained(args, TrainResult("runs\\tiny", 1, 1, 4.0, 54.6, False, out_of_time=True))
    assert "`nextword train --resume runs\\tiny`" in capsys.readouterr().out


def test_library_advice_in_cli_terms_is_quoted_for_cmd_on_windows(monkeypatch):
    from nextword.cli import display
    from nextword.cli.args import cli_terms
    from nextword.train import TrainConfig

    message = "continue it with nextword.train.resume('runs\\\\my run', epochs=9); or out='my model.onnx'"
    monkeypatch.setattr(display, "os", OsAs("nt"))
    said = cli_terms(message, (TrainConfig,))
    assert 'nextword train --resume "runs\\my run" --epochs 9' in said and '--out "my model.onnx"' in said
    monkeypatch.setattr(display, "os", os)
    assert "nextword train --resume 'runs\\my run' --epochs 9" in cli_terms(message, (TrainConfig,))


# ------------------------------------------------------- 4. serve() with workers, no __main__ guard


def test_a_script_serving_with_workers_without_the_main_guard_stops_and_names_it(tmp_path):
    """Each spawned worker ran the script again, failed in multiprocessing's bootstrapping, and was
    started again forever: nothing served, and the script never ended."""
    pytest.importorskip("uvicorn", reason="install nextword[serve] to test the server")
    from importlib.metadata import version

    if tuple(int(p) for p in version("uvicorn").split(".")[:2] if p.isdigit()) < (0, 50):
        pytest.skip("uvicorn before 0.50 starts a worker that failed to start again: the script never ends")
    script = tmp_path / "unguarded_server.py"
    script.write_text(
        textwrap.dedent(
            """
            import nextword.serve.server
            from nextword.serve import ServeConfig, serve

            nextword.serve.server.WORKER_READY_SECONDS = 5  # uvicorn's wait on a worker that never answers
            serve(ServeConfig(port=0, workers=2))
            """
        ),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        start_new_session=True,  # the workers too are ended below if it hangs
    )
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        pytest.fail(f"the script did not end: {err.decode(errors='replace')[-3000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    said = err.decode(errors="replace")
    assert process.returncode == 1, said[-3000:]
    last = said.strip().splitlines()[-1]
    assert last.startswith("nextword.serve.main_guard.UnguardedScriptError: serve() with workers > 1"), said
    assert 'under `if __name__ == "__main__":`' in last and str(script) in last
    assert "bootstrapping phase" not in said  # multiprocessing's own error: no worker got that far


def test_the_guard_check_leaves_a_process_that_is_not_starting_alone():
    from nextword.serve.main_guard import exit_if_bootstrapping

    exit_if_bootstrapping()  # the test process: no SystemExit


def test_the_workers_report_file_is_named_only_while_the_workers_run(monkeypatch):
    """NEXTWORD_SERVE_UNGUARDED names the supervisor's report file for its workers alone: left set after
    serve() returned, it named a removed file to whatever the program started next."""
    from nextword.serve.main_guard import REPORT_ENV, UnguardedScriptError, said_by_workers

    monkeypatch.delenv(REPORT_ENV, raising=False)
    with said_by_workers():
        report = Path(os.environ[REPORT_ENV])
        assert report.is_file() and report.read_text(encoding="utf-8") == ""
    assert REPORT_ENV not in os.environ and not report.exists()

    with pytest.raises(UnguardedScriptError, match=r"^what a worker said$"), said_by_workers():
        Path(os.environ[REPORT_ENV]).write_text("what a worker said\n", encoding="utf-8")
        raise RuntimeError("a worker failed to start")  # what serve() raises as uvicorn stops
    assert REPORT_ENV not in os.environ

    monkeypatch.setenv(REPORT_ENV, "the program's own")
    with said_by_workers():
        assert os.environ[REPORT_ENV] != "the program's own"
    assert os.environ[REPORT_ENV] == "the program's own"


# -------------------------------------------------- 5. a temporary file that cannot be removed at once


def _windows_unlink(real):
    """os.unlink as Windows does it: a read-only file is refused."""

    def unlink(path, *args, **kwargs):
        if os.path.exists(path) and not os.stat(path).st_mode & 0o200:
            raise PermissionError(errno.EACCES, "Access is denied", str(path))
        return real(path, *args, **kwargs)

    return unlink


def test_a_failed_replace_is_the_error_raised_not_the_cleanup_of_a_read_only_temporary(monkeypatch, tmp_path):
    from nextword.corpus.files import atomic_path

    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    target.chmod(0o444)  # the temporary file takes its mode before the rename

    def locked(src, dst):  # Windows: the target is open in another program
        raise PermissionError(errno.EACCES, "Access is denied", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", locked)
    monkeypatch.setattr(os, "unlink", _windows_unlink(os.unlink))
    with pytest.raises(PermissionError) as raised, atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert raised.value.filename == str(target), raised.value  # the user's file, not the temporary one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # made writable, then removed
    assert target.read_bytes() == b"old"


def test_a_temporary_that_cannot_be_removed_at_all_is_left_with_a_warning(monkeypatch, tmp_path, caplog):
    from nextword.corpus.files import atomic_path

    target = tmp_path / "data.json"

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Access is denied", str(path))

    monkeypatch.setattr(os, "unlink", refuse)
    caplog.set_level(logging.WARNING)
    with pytest.raises(ValueError, match="the caller's"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise ValueError("the caller's")
    assert "could not remove the temporary file" in caplog.text and tmp.name in caplog.text


# ------------------------------------------------------ 6. an 8-bit code page's name, Windows' advice


def test_characters_a_code_page_lacks_are_noted_with_its_name_and_the_windows_fix(monkeypatch):
    from nextword.cli import display

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252")
    display.writes_what_it_can(stream)
    try:
        stream.write("a 中文 b")
        stream.flush()
        assert raw.getvalue() == b"a ?? b"
        assert sorted(display.REPLACED) == ["cp1252"]  # the encoder's own name is "charmap"
        assert "LANG=C.UTF-8" in display.replaced_note()
        monkeypatch.setattr(display, "os", OsAs("nt"))
        note = display.replaced_note()
        assert "encoding (cp1252)" in note and "set PYTHONUTF8=1" in note and "$env:PYTHONUTF8=1" in note
        assert "LANG" not in note
    finally:
        display.REPLACED.clear()


# ------------------------------------------------ 7. hard links on FAT and SMB; a folder as a corpus


@pytest.mark.parametrize("platform", ["nt", "posix"])
def test_a_hard_link_windows_refuses_with_einval_falls_back_to_a_rename(monkeypatch, tmp_path, platform):
    from nextword.corpus import files

    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EINVAL, "Invalid argument", str(src), None, str(dst))

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(files, "os", OsAs(platform))
    target = tmp_path / "vocab.json"
    if platform == "posix":  # EINVAL there is not "no hard links": said, not worked around
        with (
            pytest.raises(OSError, match="Invalid argument"),
            files.atomic_path(target, replace=False) as tmp,
        ):
            tmp.write_text("{}")
        return
    with files.atomic_path(target, replace=False) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["vocab.json"]


def test_a_folder_given_as_a_corpus_file_is_answered_for_every_shell(tmp_path):
    from nextword.corpus import CorpusConfig, CorpusError
    from nextword.corpus.readers import check_file

    with pytest.raises(CorpusError) as raised:
        check_file(tmp_path, CorpusConfig())
    message = str(raised.value)
    assert f"{tmp_path / '*.txt'} in a POSIX shell" in message and "each by name" in message
    assert "cmd and PowerShell do not expand" in message and "Get-ChildItem" in message
