"""benchmarks.quality keeps the notebook baseline's figures so that --skip-notebook carries them over,
dated and marked as not rerun, instead of dropping the row, and says when they were measured on other
data than the report's."""

from __future__ import annotations

import json
import time

from benchmarks.quality import (
    Splits,
    carried_notebook_figures,
    notebook_data,
    notebook_figures_path,
    save_notebook_figures,
)
from benchmarks.quality_report import _notebook_note

FIGURES = {
    "perplexity": 145.1,
    "accuracy": 0.198,
    "top5_accuracy": 0.396,
    "train_seconds": 822.0,
    "epochs": 10,
}
SPLITS = Splits(train=["a b c", "d e"], dev=["f"], val=["g h"], scheme="fraction 0.1", documents=4)
DATA = notebook_data(SPLITS, range(30), "dedup-v3")


def test_figures_saved_by_a_run_are_carried_over_marked_with_their_date(tmp_path):
    path = notebook_figures_path(str(tmp_path / "quality.md"))
    assert path == tmp_path / "quality-notebook.json"
    assert carried_notebook_figures(path, DATA) is None  # nothing kept yet: the row is left out
    save_notebook_figures(path, FIGURES, DATA)
    carried = carried_notebook_figures(path, DATA)
    today = time.strftime("%Y-%m-%d")
    assert carried is not None and carried["carried_from"] == today and carried["same_data"]
    assert {k: carried[k] for k in FIGURES} == FIGURES
    note = _notebook_note({"e": carried}, our_seconds=800.0)
    assert "not rerun" in note and today in note and "13.7 minutes" in note
    assert note.endswith("on the same machine and the same training documents.")
    fresh = _notebook_note({"e": json.loads(path.read_text())}, our_seconds=800.0)
    assert "not rerun" not in fresh and "13.3 minutes, from its metrics" in fresh


def test_figures_of_other_data_are_carried_over_saying_so(tmp_path):
    path = notebook_figures_path(str(tmp_path / "quality.md"))
    save_notebook_figures(path, FIGURES, DATA)
    other_documents = Splits(["a b c", "d e x"], ["f"], ["g h"], "fraction 0.1", 4)
    retrained = notebook_data(other_documents, range(28), "dedup-v4")
    assert retrained["train_documents"] == DATA["train_documents"]  # same count, other text
    assert retrained["train_digest"] != DATA["train_digest"]
    carried = carried_notebook_figures(path, retrained)
    assert carried is not None and carried["same_data"] is False
    note = _notebook_note({"e": carried}, our_seconds=800.0)
    assert "on other data than the rows above: 2 training documents of a `dedup-v3` split" in note
    assert "a vocabulary of 30 words" in note and "`dedup-v4` split with 28 words" in note
    assert "same training documents" not in note
    path.write_text(json.dumps({"measured": "2026-01-02", **FIGURES}))  # kept before the data was
    unknown = carried_notebook_figures(path, DATA)
    assert unknown is not None and unknown["same_data"] is None
    assert "do not record which training documents" in _notebook_note({"e": unknown}, our_seconds=800.0)


def test_the_kept_figures_of_the_current_report_are_readable():
    from benchmarks.paths import DOCS_DIR

    carried = carried_notebook_figures(notebook_figures_path(str(DOCS_DIR / "quality.md")), DATA)
    assert carried is not None and carried["perplexity"] > 1 and 0 < carried["top5_accuracy"] < 1
