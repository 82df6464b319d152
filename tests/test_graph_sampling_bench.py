"""benchmarks.graph_sampling: sampling heads appended to a model's graph, built, checked against numpy,
profiled and timed end to end on the tiny test model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import __main__ as listing
from benchmarks import graph_sampling
from benchmarks.graph_sampling_heads import HEADS, PREFIX, TOKEN, TOP_K, UNIFORM, with_head
from benchmarks.shipped import bundled_path
from nextword.runtime.model_file import LOGITS

KEYS = [
    "bare",
    "argmax",
    "topk1",
    "topk1_alone",
    "numpy_greedy",
    "numpy_argmax",
    "cdf",
    "cdf_f32count",
    "blocks",
    "blocks_alone",
    "numpy_full",
    "topk40",
    "topk40_ids",
    "topk40_ids_alone",
    "numpy_top_k",
]
KEY_OPS = {  # an op each head's profile must show
    "argmax": "ArgMax",
    "topk1": "TopK",
    "cdf": "CumSum",
    "cdf_f32count": "CumSum",
    "blocks": "Pad",
    "topk40": "TopK",
    "topk40_ids": "GatherElements",
}


@pytest.mark.slow
def test_graph_sampling_benchmark_runs_end_to_end(model_path, tmp_path, capsys):
    out = tmp_path / "graph_sampling.json"
    argv = ["--model", str(model_path), "--words", "5", "--rounds", "2", "--check-steps", "40"]
    assert graph_sampling.main([*argv, "--profile-steps", "5", "--result-json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {row["key"]: row for row in result["rows"]}
    assert [row["key"] for row in result["rows"]] == KEYS
    assert result["settings"]["intra_op_threads"] == 1 and result["model"]["banned"] == [0, 1]
    for row in rows.values():
        assert row["us_per_word"]["n"] == 2 and row["us_per_word"]["median"] > 0
    for head in HEADS:
        check, profile = rows[head.key]["check"], rows[head.key]["profile"]
        assert check["steps"] == 40 and check["valid"] == 40  # argmax, or the draw's bracket, every time
        if head.id_order:  # numpy's arithmetic: its token for the same draw (rounding may flip one)
            assert check["same_as_numpy"] >= 39
        assert profile["nodes"] and all(n["node"].startswith(PREFIX) for n in profile["nodes"])
        assert KEY_OPS[head.key] in {n["op"] for n in profile["nodes"]}
        assert profile["model_nodes"] == rows["bare"]["profile"]["model_nodes"]  # the step itself unchanged
    for key in graph_sampling.SECOND_GRAPH:  # the same head as a graph of its own: the same choices
        assert rows[f"{key}_alone"]["check"] == rows[key]["check"] and rows[f"{key}_alone"]["profile"] is None
    table = capsys.readouterr().out
    assert table.count("| greedy |") == 5 and table.count("| `top_k=40` |") == 4
    assert "| 40/40 | 40/40 |" in table and "median us per node" in table
    assert sum(line.startswith("- ") for line in table.splitlines()) == 3  # one conclusion per choice


@pytest.fixture(scope="module")
def bundled():
    """The bundled model (a vocabulary of 8,270: many blocks of 128, more than 40 candidates)."""
    pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to append the sampling heads")
    from nextword.runtime import load

    path = bundled_path()
    return load(path), path.read_bytes()


@pytest.mark.parametrize("key", ["argmax", "cdf_f32count", "blocks", "topk40", "topk40_ids"])
def test_heads_choose_what_numpy_chooses_on_the_bundled_model(bundled, key):
    model, data = bundled
    head = next(h for h in HEADS if h.key == key)
    check = graph_sampling.check_head(graph_sampling.Variant(with_head(data, head), model, head), 60)
    assert check["valid"] == 60  # numpy's argmax; a draw: a token whose cumulative mass brackets u
    if head.id_order:  # numpy's arithmetic and order: its token for the same draw (rounding may flip one)
        assert check["same_as_numpy"] >= 59
    else:  # the same distribution in another order: another token for most draws
        assert check["same_as_numpy"] < 60


@pytest.mark.parametrize("key", ["cdf", "blocks", "topk40_ids"])
def test_a_draw_head_is_an_inverse_cdf_of_its_uniform(bundled, key):
    """The chosen id never goes down as u grows; u near 0 takes the first possible candidate and u = 1
    the last (ids in increasing order; the banned ones are never possible)."""
    model, data = bundled
    head = next(h for h in HEADS if h.key == key)
    variant = graph_sampling.Variant(with_head(data, head), model, head)
    chosen = []
    for u in (1e-12, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        feed = variant.feed()
        feed[UNIFORM] = np.asarray(u)
        token, logits = variant.step(feed, [TOKEN, LOGITS, *variant.state_outputs])[:2]
        chosen.append(int(token.reshape(-1)[0]))
    scores = logits[0, -1].astype(np.float64)
    scores[variant.banned] = -np.inf
    possible = np.flatnonzero(np.exp(scores - scores.max()).astype(np.float32) > 0)  # float32 underflow
    if head.kind == "top_k":
        possible = np.sort(np.argsort(-scores, kind="stable")[:TOP_K])
    assert chosen == sorted(chosen) and len(set(chosen)) > 3
    assert chosen[0] == possible[0] and chosen[-1] == possible[-1]


def test_options_are_checked_and_the_benchmark_is_listed(capsys):
    with pytest.raises(SystemExit) as stop:
        graph_sampling.parse_args(["--heads", "argmax,nope"])
    assert stop.value.code == 2 and "unknown head(s) nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        graph_sampling.parse_args(["--words", "0"])
    assert listing.main() == 0
    assert "  graph_sampling " in capsys.readouterr().out
