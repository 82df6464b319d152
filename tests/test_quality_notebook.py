"""benchmarks.quality keeps the notebook baseline's figures so that --skip-notebook carries them over,
dated and marked as not rerun, instead of dropping the row."""

from __future__ import annotations

import json
import time

from benchmarks.quality import carried_notebook_figures, notebook_figures_path, save_notebook_figures
from benchmarks.quality_report import _notebook_note

FIGURES = {
    "perplexity": 145.1,
    "accuracy": 0.198,
    "top5_accuracy": 0.396,
    "train_seconds": 822.0,
    "epochs": 10,
}


def test_figures_saved_by_a_run_are_carried_over_marked_with_their_date(tmp_path):
    path = notebook_figures_path(str(tmp_path / "quality.md"))
    assert path == tmp_path / "quality-notebook.json"
    assert carried_notebook_figures(path) is None  # nothing kept yet: the row is left out
    save_notebook_figures(path, FIGURES)
    carried = carried_notebook_figures(path)
    today = time.strftime("%Y-%m-%d")
    assert carried is not None and carried["carried_from"] == today
    assert {k: carried[k] for k in FIGURES} == FIGURES
    note = _notebook_note({"e": carried}, our_seconds=800.0)
    assert "not rerun" in note and today in note and "13.7 minutes" in note
    fresh = _notebook_note({"e": json.loads(path.read_text())}, our_seconds=800.0)
    assert "not rerun" not in fresh and "13.3 minutes, from its metrics" in fresh


def test_the_kept_figures_of_the_current_report_are_readable():
    from benchmarks.paths import DOCS_DIR

    carried = carried_notebook_figures(notebook_figures_path(str(DOCS_DIR / "quality.md")))
    assert carried is not None and carried["perplexity"] > 1 and 0 < carried["top5_accuracy"] < 1
