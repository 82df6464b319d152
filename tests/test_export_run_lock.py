"""Export and training in the same run folder: an export holds the folder shared while it reads the run,
so a training (a new run, an overwrite, a resume) that would replace what it reads is refused meanwhile;
exports share it; and a run that another process trains, which an export reads as it is, fails the
export if it is replaced before the file is written, rather than giving a file of two runs."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")

from nextword.cli.main import main
from nextword.export import ExportConfig, export
from nextword.train import RunBusyError, resume, train
from nextword.train.files import RunDir

pytestmark = pytest.mark.slow


def test_a_training_started_while_an_export_reads_the_run_is_refused(
    run_dir, tiny_config, tmp_path, monkeypatch
):
    """`nextword train --overwrite` (or `--resume`) that started while an export read the run went ahead:
    the export wrote, exit status 0, a model file of two runs (one corpus's provenance, the other's
    quality figures and cache tuning)."""
    from nextword.export import exporter

    run = shutil.copytree(run_dir, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    real, refusals = exporter.check_parity, []

    def trainings_meanwhile(*args, **kwargs):
        starts = (
            lambda: train(replace(tiny_config, out=str(run), overwrite=True, epochs=1)),
            lambda: resume(str(run), epochs=20),
        )
        for start in starts:
            with pytest.raises(RunBusyError) as refused:
                start()
            refusals.append(str(refused.value))
        assert not RunDir(run).busy()  # an export is no training: a warning would say "being trained"
        return real(*args, **kwargs)

    monkeypatch.setattr(exporter, "check_parity", trainings_meanwhile)
    export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))
    assert len(refusals) == 2
    for said in refusals:
        assert f"run folder {run} is being read by a nextword export" in said
        assert "wait for the export to end, and try again" in said
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    RunDir(run).check_free()  # the export's hold ends with it


def test_exports_share_the_run_and_a_training_is_told_what_holds_it(
    run_dir, corpus_files, tmp_path, capsys, caplog
):
    run = shutil.copytree(run_dir, tmp_path / "run")
    with RunDir(run).reading() as training:  # as another export reads it
        assert training is False
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))  # not refused
        code = main(["-q", "train", str(corpus_files["csv"]), "--out", str(run), "--overwrite"])
        _, err = capsys.readouterr()
    assert (tmp_path / "m.onnx").is_file()
    assert "being trained by another process" not in caplog.text
    assert code == 2
    assert err == (
        f"nextword train: error: run folder {run} is being read by a nextword export, and a training "
        "started now would replace what it reads; wait for the export to end, and try again\n"
    )


def test_a_run_replaced_while_it_is_exported_fails_the_export(run_dir, tmp_path, monkeypatch, capsys):
    """A run that another process trains is exported as it is (its best model so far), with nothing held:
    that training may end, and a `train --overwrite` start there, before the export is done. The
    export went on reading the new run's files and wrote a file of both."""
    from nextword.export import exporter

    run = shutil.copytree(run_dir, tmp_path / "run")
    newer = shutil.copytree(run_dir, tmp_path / "newer")  # the new run's files
    real = exporter.check_parity

    def replaced_meanwhile(*args, **kwargs):
        aside = tmp_path / ".run.replaced"
        aside.mkdir()
        for path in list(run.iterdir()):  # as an overwrite does: the run set aside, the new one written
            path.rename(aside / path.name)
        for path in newer.iterdir():
            shutil.copyfile(path, run / path.name)
        return real(*args, **kwargs)

    monkeypatch.setattr(exporter, "check_parity", replaced_meanwhile)
    out = tmp_path / "m.onnx"
    with RunDir(run).in_use():  # a training holds the folder
        code = main(["-q", "export", str(run), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 1 and not out.exists()
    assert err.endswith(
        f"nextword export: failed: the run in {run} was replaced while it was exported (a training "
        "started there with --overwrite, or the folder was made again), so what was read may mix two "
        "runs; nothing was written: export again\n"
    )
