"""The quality report says which loss chose the model's best epoch, and what a choice made by the
validation loss can have moved on the documents it reports."""

from __future__ import annotations

import math

from benchmarks.quality_report import _selection_note

VAL = [4.8, 4.5, 4.40, 4.31, 4.30, 4.32, 4.36, 4.50]  # epochs 1-8; epoch 5 is the best


def _metrics(selected_by: str | None) -> dict:
    epochs = [{"epoch": i + 1, "val_loss": v, "dev_loss": v + 0.1} for i, v in enumerate(VAL)]
    metrics = {"epochs": epochs, "best": epochs[4]}
    return metrics if selected_by is None else {**metrics, "selected_by": selected_by}


def test_a_choice_by_the_validation_loss_is_reported_with_its_largest_effect():
    for metrics in (_metrics(None), _metrics("val_loss")):  # files from before selected_by: val_loss
        note = _selection_note(metrics, 50)
        assert "best epoch (5 of 8) was chosen by the validation loss" in note
        # epochs 3-7 around it: the worst is epoch 3, 0.10 above the best
        assert "epochs 3-7" in note and "at most 0.100 higher" in note and "50-word windows" in note
        assert f"{math.expm1(0.1):.1%} in perplexity" in note


def test_a_choice_by_the_development_loss_says_the_validation_documents_chose_nothing():
    note = _selection_note(_metrics("dev_loss"), 50)
    assert "chosen by the development documents' loss" in note and "chose nothing" in note
    assert "at most" not in note
    assert _selection_note({"epochs": [], "best": None}, 50) == "- The model file records no training epochs."
