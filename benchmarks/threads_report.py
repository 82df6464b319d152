"""The report of ``benchmarks.threads``: ms per step under each session setting, the best one per case,
and how far the runtime's default is from it."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.report import fmt_num, markdown_table, met, verdict_line

__all__ = ["SAME", "TOLERANCE", "best", "plots", "ran_as", "render", "targets"]

TOLERANCE = 0.10  # the default may be this much slower than the best setting
SAME = 0.01  # the default "ran as" a setting when at most this share of its steps ran otherwise
# The default's sessions, as the columns of the benchmark name their settings.
ONE, WIDE, PAIR = "1 thread", "2 threads, spinning", "2 threads, no spinning"


def shares(case: dict[str, Any]) -> dict[str, float] | None:
    """The share of the default's steps in ``case`` that ran on each of its sessions, by the setting
    each one has; None for a result that did not count them. (Results from before the pair session
    counted only the wide one.)"""
    wide = case.get("default_wide_share")
    if wide is None or "samples" not in case:
        return None
    pair = case.get("default_pair_share", 0.0)
    return {ONE: max(0.0, 1 - wide - pair), WIDE: wide, PAIR: pair}


def ran_as(case: dict[str, Any]) -> str | None:
    """The setting whose session ran (nearly) all of the default's steps in ``case``: its one-thread
    session (``"1 thread"``), its two-thread spinning one or its two-thread pair without spinning;
    None when it mixed them, or for a result that did not count them."""
    split = shares(case)
    if split is None:
        return None
    return next((setting for setting, share in split.items() if share >= 1 - SAME), None)


def figures(case: dict[str, Any]) -> dict[str, float]:
    """ms per step by setting, as the verdict reads them. Where the default ran as another setting
    (:func:`ran_as`) both are two copies of one configuration measured in the same rounds: the default
    and that setting both get the median of their samples together, the better estimate of that
    configuration; every other figure is its own median."""
    out = {s: stat["median"] for s, stat in case["ms"].items()}
    same = ran_as(case)
    if same is not None:
        out["default"] = out[same] = statistics.median([*case["samples"]["default"], *case["samples"][same]])
    return out


def best(case: dict[str, Any]) -> tuple[str, float]:
    """The fastest setting of a case other than ``default`` (which is one of them under another name),
    unless the default itself measured fastest; and the default's time over it, minus 1 (both from
    :func:`figures`)."""
    values = figures(case)
    winner = min(values, key=lambda s: (values[s], s != "default"))
    return winner, values["default"] / values[winner] - 1


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    cases = result["cases"]
    missed = [c for c in cases if best(c)[1] > TOLERANCE]
    why = "; ".join(
        f"{c['file']} batch {c['batch']} {c['load']}: the default takes {best(c)[1]:.0%} longer than "
        f"{best(c)[0]}"
        for c in missed
    )
    kept = [c for c in missed if c["load"] == "alone" and ran_as(c) == ONE]
    if kept:  # alone, yet on one thread: the model's check found these batches' numbers differ on two threads
        sizes = " and ".join(f"batch {c['batch']}" for c in kept)
        why += (
            f". Alone, the default ran {sizes} on one thread: "
            "the model's check found that the file's numbers at that batch size differ on two threads, "
            "and a call's text must not depend on what else runs: such a batch of fewer than 5 rows "
            "keeps one thread (`nextword.runtime.session_plan`)"
        )
    return [
        {
            "key": "threads",
            "target": f"the runtime's default session options within {TOLERANCE:.0%} of the best setting in "
            "every case (int8 and fp32, batch 1/8/64, alone and with 8 generating threads)",
            "measured": f"{len(cases) - len(missed)} of {len(cases)} cases",
            "met": not missed,
            "why": why or "the default is the best or within the tolerance everywhere",
        }
    ]


def render(result: dict[str, Any], img: str | None = None) -> str:
    cases, default = result["cases"], result["default"]
    settings = list(cases[0]["ms"])
    counted = all("default_wide_share" in c for c in cases)
    rows = []
    for case in cases:
        winner, gap = best(case)
        same = ran_as(case)
        extra = []
        if counted:
            split = shares(case) or {}
            extra = [
                f"{same} ({split[same]:.0%})"
                if same
                else "mixed: " + ", ".join(f"{s} {v:.0%}" for s, v in split.items() if v > 0),
                fmt_num(figures(case)["default"]) if same else "–",
            ]
        rows.append(
            [
                case["file"],
                case["batch"],
                case["load"],
                *[fmt_num(case["ms"][s]["median"]) for s in settings],
                *extra,
                winner,
                f"+{gap:.0%}" if gap > 0 else "best",
                met(gap <= TOLERANCE),
            ]
        )
    headers = ["file", "batch", "load", *[f"{s}, ms/step" for s in settings]]
    if counted:
        headers += ["the default ran as (share of its steps)", "that setting, both copies, ms/step"]
    headers += ["best", "default vs best"]
    lines = [
        (
            f"The runtime's default: {default['description']}."
            if "description" in default
            else f"The runtime's default (`default_session_options()`): {default['intra_op_num_threads']} "
            f"intra-op thread(s), spinning {default['allow_spinning']}."
        )
        + " ms per bare `model.forward` step (state carried) "
        f"of the measuring thread, median of {result['cases'][0]['ms']['default']['n']} rounds; files: "
        + "; ".join(f"{k} {f['source']}" for k, f in result["files"].items())
        + ". With 8 generating threads, each runs `Generator` steps of the same batch on the same model. "
        + (
            "Every round loads its models afresh, in the order it measures them. The default's steps "
            "are counted by the session they ran on: where (nearly) all ran on one of its sessions, "
            "the default was that column's setting, and the verdict takes that configuration's figure "
            "from both copies' samples together (their median), for the default and for that column."
            if counted
            else "Where the default has the settings of another column, the two differ by the noise alone."
        ),
        "",
        markdown_table(
            [*headers, f"within {TOLERANCE:.0%}"],
            rows,
            align="lrl" + "r" * len(settings) + ("lr" if counted else "") + "lrl",
        ),
    ]
    busy = [c for c in cases if c["background"]]
    if busy:
        rows = [
            [c["file"], c["batch"], *[fmt_num(c["background"][s]["median"]) for s in settings]] for c in busy
        ]
        lines += [
            "",
            "Words/s made by the 8 generating threads meanwhile (all together):",
            "",
            markdown_table(["file", "batch", *settings], rows),
        ]
    check = targets(result)[0]
    lines += ["", verdict_line(check)]
    return "\n".join(lines)


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []
