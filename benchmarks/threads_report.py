"""The report of ``benchmarks.threads``: ms per step under each session setting, the best one per case,
and how far the runtime's default is from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import fmt_num, markdown_table, met

__all__ = ["TOLERANCE", "best", "plots", "render", "targets"]

TOLERANCE = 0.10  # the default may be this much slower than the best setting


def best(case: dict[str, Any]) -> tuple[str, float]:
    """The fastest setting of a case other than ``default`` (which is one of them under another name),
    unless the default itself measured fastest; and the default's time over it, minus 1."""
    medians = {s: stat["median"] for s, stat in case["ms"].items()}
    winner = min(medians, key=lambda s: medians[s])
    return winner, medians["default"] / medians[winner] - 1


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    cases = result["cases"]
    missed = [c for c in cases if best(c)[1] > TOLERANCE]
    why = "; ".join(
        f"{c['file']} batch {c['batch']} {c['load']}: the default takes {best(c)[1]:.0%} longer than "
        f"{best(c)[0]}"
        for c in missed
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
    rows = []
    for case in cases:
        winner, gap = best(case)
        rows.append(
            [
                case["file"],
                case["batch"],
                case["load"],
                *[fmt_num(case["ms"][s]["median"]) for s in settings],
                winner,
                f"+{gap:.0%}" if gap > 0 else "best",
                met(gap <= TOLERANCE),
            ]
        )
    headers = ["file", "batch", "load", *[f"{s}, ms/step" for s in settings], "best", "default vs best"]
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
        "Where the default has the settings of another column, the two differ by the noise alone.",
        "",
        markdown_table(
            [*headers, f"within {TOLERANCE:.0%}"], rows, align="lrl" + "r" * len(settings) + "lrl"
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
    lines += ["", f"- {check['target']}: **{check['measured']}**, {met(check['met'])}. {check['why']}."]
    return "\n".join(lines)


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []
