"""The report of ``benchmarks.graph_sampling``: per-word cost of each way to choose the next token, where
a head's time goes (onnxruntime's profile), and what the figures say."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.report import fmt_num, fmt_stat, markdown_table, spread_label

__all__ = ["conclusions", "plots", "render", "targets"]


def _median(row: dict[str, Any]) -> float:
    return float(row["us_per_word"]["median"])


def _check(row: dict[str, Any]) -> tuple[str, str]:
    check = row.get("check")
    if not check:
        return "–", "–"
    n = check["steps"]
    return f"{check['same_as_numpy']}/{n}", f"{check['valid']}/{n}"


def _exact(row: dict[str, Any]) -> bool:
    """Whether a head chose numpy's token for the same draw in 99% of the checked steps or more."""
    check = row.get("check") or {}
    return bool(check) and check["same_as_numpy"] >= 0.99 * check["steps"]


def _versus(what: str, row: dict[str, Any], numpy: dict[str, Any], bare: float) -> str:
    gap = _median(row) - _median(numpy)
    return (
        f"{what} ({row['label']}) takes {fmt_num(_median(row))} us per word, {fmt_num(abs(gap))} us "
        f"{'more' if gap > 0 else 'less'} than the bare step + numpy ({fmt_num(_median(numpy))} us): "
        f"choosing costs {fmt_num(_median(row) - bare)} us against {fmt_num(_median(numpy) - bare)} us"
    )


def conclusions(result: dict[str, Any]) -> list[str]:
    """One line per kind of choice: the fastest head against numpy per word, and the fastest of those
    that keep numpy's tokens when that is another head."""
    rows = result["rows"]
    bare = _median(rows[0])
    lines = []
    for kind, label in result["kinds"].items():
        heads = [r for r in rows if r["kind"] == kind and not r["key"].startswith("numpy_")]
        numpy = next(r for r in rows if r["key"] == f"numpy_{kind}")
        if not heads:
            continue
        best = min(heads, key=_median)
        line = f"{label}: " + _versus("the fastest head", best, numpy, bare)
        exact = [r for r in heads if _exact(r)]
        if not _exact(best) and exact:
            line += "; " + _versus(
                "the fastest that keeps numpy's tokens", min(exact, key=_median), numpy, bare
            )
        alone = next((r for r in rows if r["key"] == "numpy_argmax"), None)
        if kind == "greedy" and alone is not None:
            line += (
                f"; numpy's `argmax` alone costs {fmt_num(_median(alone) - bare)} us (`sample()` adds its "
                "call, its check for a row whose every entry is `-inf` and its result array)"
            )
        lines.append(line + ".")
    return lines


def _profile_rows(result: dict[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    """Per head: its kernels and the model's; per op type: the median kernel time of one node."""
    per_head: list[list[Any]] = []
    per_op: dict[str, list[float]] = {}
    for row in result["rows"]:
        prof = row.get("profile")
        if not prof:
            continue
        ops: dict[str, list[float]] = {}
        for node in prof["nodes"]:
            ops.setdefault(node["op"], []).append(node["us"])
            per_op.setdefault(node["op"], []).append(node["us"])
        largest = sorted(ops.items(), key=lambda item: -sum(item[1]))[:4]
        shown = " · ".join(
            f"{op}{f' ×{len(us)}' if len(us) > 1 else ''} {fmt_num(sum(us), 2)}" for op, us in largest
        )
        label = row["label"].removeprefix("graph: ")
        per_head.append(
            [label, len(prof["nodes"]), fmt_num(prof["head_us"]), fmt_num(prof["model_us"]), shown or "–"]
        )
    op_rows = [
        [
            f"`{op}`",
            len(us),
            fmt_num(statistics.median(us), 2),
            f"{fmt_num(min(us), 2)}–{fmt_num(max(us), 2)}",
        ]
        for op, us in sorted(per_op.items(), key=lambda item: -statistics.median(item[1]))
    ]
    return per_head, op_rows


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """None: the benchmark measures a candidate of issue 17, not a target."""
    return []


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []


def render(result: dict[str, Any], img: str | None = None) -> str:
    """The Markdown section: per-word table, profile tables, conclusions."""
    settings, model, rows = result["settings"], result["model"], result["rows"]
    bare = _median(rows[0])
    n = rows[0]["us_per_word"]["n"]
    table = []
    for row in rows:
        same, valid = _check(row)
        cost = fmt_num(_median(row) - bare) if row["kind"] else "–"
        choice = result["kinds"].get(row["kind"], "none")
        ratio = f"{_median(row) / bare:.2f}×"
        table.append([choice, row["label"], fmt_stat(row["us_per_word"]), ratio, cost, same, valid])
    load = result["machine"].get("load_average_1min", {})
    lines = [
        "### Sampling in the graph against numpy",
        "",
        f"Model `{Path(model['path']).name}` (vocabulary {model['vocab']:,}, banned ids {model['banned']}); "
        f"batch 1, one intra-op thread, `session.run` (no I/O binding), the state carried and the chosen "
        f"token fed back; {settings['words']} words per variant per round, median of {n} interleaved "
        f"rounds ({spread_label(n)} in parentheses). Load average (1 min) before/after: "
        f"{fmt_num(load.get('before'), 2)}/{fmt_num(load.get('after'), 2)} on "
        f"{result['machine']['usable_cores']} cores.",
        "",
        markdown_table(
            ["choice", "how", "us/word", "vs bare", "choosing, us/word", "same token as numpy", "valid"],
            table,
            align="llrrrrr",
        ),
        "",
        "*choosing*: us per word over the bare step. *same token as numpy*: steps where the head chose "
        "what `runtime.sampling.sample` chose on the same logits and the same uniform draw; *valid*: "
        "greedy, numpy's argmax; a draw, a token whose cumulative mass (in the order the head "
        "accumulates) brackets the draw.",
        "",
    ]
    per_head, op_rows = _profile_rows(result)
    if per_head:
        lines += [
            f"onnxruntime's profile, {settings['profile_steps']} steps: median kernel time per node, us. "
            + _profiler_note(result),
            "",
            markdown_table(
                ["variant", "head nodes", "head kernels", "model kernels", "largest head ops"], per_head
            ),
            "",
            markdown_table(["op", "nodes in all heads", "median us per node", "range"], op_rows),
            "",
        ]
    lines += [f"- {line}" for line in conclusions(result)]
    return "\n".join(lines) + "\n"


def _profiler_note(result: dict[str, Any]) -> str:
    """How far the profiled kernel times overstate the unprofiled step (whole microseconds, per node)."""
    bare = result["rows"][0]
    prof = bare.get("profile")
    if not prof or not prof["model_nodes"]:
        return ""
    extra = (prof["model_us"] - _median(bare)) / prof["model_nodes"]
    return (
        "The profiler counts whole microseconds and slows each kernel: the bare step's "
        f"{prof['model_nodes']} kernels sum to {fmt_num(prof['model_us'])} us under it, the whole "
        f"unprofiled step takes {fmt_num(_median(bare))} us"
        + (
            f" (about {fmt_num(extra, 2)} us per node more), so read small figures as upper bounds."
            if extra > 0
            else "."
        )
    )
