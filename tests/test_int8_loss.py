"""Export warns where int8 loses much of a model: a short fine-tuning of an int8 base (the bundled model)
moves few weights past half an 8-bit step, and `--int8` rounded them back, leaving a file near the base's
quality while the fp32 one had learned the new corpus, without a word (a user's walkthrough: perplexity
113 in fp32, 341 in int8)."""

from __future__ import annotations

import logging
import math

import pytest

from nextword.export.quantize import INT8_LOSS_WARNING, int8_loss


def _quality(fp32: float, int8: float) -> dict:
    return {
        "split": "validation",
        "precision": "int8",
        "fp32": {"perplexity": fp32},
        "int8": {"perplexity": int8},
    }


def test_a_large_loss_is_said_with_both_figures_and_the_way_out():
    said = int8_loss(_quality(113.02, 341.3))
    assert said is not None
    assert "341.30 against 113.02 in fp32" in said and "3.0x" in said
    assert "without --int8" in said and "fine-tuning of an int8 base" in said


@pytest.mark.parametrize(
    ("fp32", "int8"),
    [
        (100.0, 125.0),  # a quarter more: far from the usual cost, under a percent
        (100, 300),  # figures given as integers (a report read back from JSON)
    ],
)
def test_a_loss_well_over_the_usual_is_said(fp32, int8):
    said = int8_loss(_quality(fp32, int8))
    assert said is not None and f"{int8:.2f} against {fp32:.2f} in fp32" in said, said


@pytest.mark.parametrize(
    ("fp32", "int8"),
    [
        (68.96, 68.97),  # the bundled model's own figures: 0.02%
        (50.0, 50.0 * INT8_LOSS_WARNING),  # at the threshold: not over it
        (50.0, 40.0),  # int8 better (noise)
        (math.inf, 1e9),  # no finite fp32 figure to compare with
        (50.0, math.nan),
        (0.0, 5.0),
    ],
)
def test_no_warning_where_int8_costs_little_or_a_figure_is_missing(fp32, int8):
    assert int8_loss(_quality(fp32, int8)) is None


def test_no_warning_without_both_figures():
    assert int8_loss({}) is None
    assert int8_loss({"fp32": {"perplexity": 50.0}}) is None  # an fp32 export
    assert int8_loss({"fp32": {"perplexity": 50.0}, "int8": {"perplexity": None}}) is None
    assert int8_loss({"int8": {"perplexity": 50.0}}) is None  # no fp32 figure to compare with


def test_export_says_it_after_measuring_both(run_dir, tmp_path, caplog, monkeypatch):
    """A real int8 export of the test run: no warning at the real threshold (its int8 figure is within a
    few percent), then the same export with a threshold below 1 says it, with the figures it measured."""
    from nextword.export import ExportConfig, export, quantize

    config = ExportConfig(run_dir=str(run_dir), out=str(tmp_path / "int8.onnx"), int8=True)
    with caplog.at_level(logging.WARNING, logger="nextword.export"):
        report = export(config)
    assert "int8 loses much" not in caplog.text
    caplog.clear()
    monkeypatch.setattr(quantize, "INT8_LOSS_WARNING", 0.5)
    with caplog.at_level(logging.WARNING, logger="nextword.export"):
        export(config)
    fp32, int8 = (report.quality[p]["perplexity"] for p in ("fp32", "int8"))
    assert f"validation perplexity {int8:.2f} against {fp32:.2f} in fp32" in caplog.text, caplog.text
