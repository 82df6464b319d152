"""The report of ``benchmarks.speed``: per-word cost against the bare step, and the targets of issue 17."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.paths import shown
from benchmarks.report import fmt_stat, markdown_table, met, spread_label

__all__ = ["plots", "render", "targets"]

FILES = ("int8", "fp32")


def _ratio(result: dict[str, Any], name: str, case: dict[str, Any], floor: str = "steps") -> float:
    """The case's time per step over the floor's (``steps``: ``forward``; ``bound_steps``: the stepper)."""
    figures = result[name]
    return figures["cases"][case["key"]]["median"] / figures[floor][str(case["batch"])]["median"]


def _strict(result: dict[str, Any], name: str, case: dict[str, Any]) -> float:
    """The ratio to the faster floor: the stepper's where the run measured it (runs before it did not)."""
    return max(_ratio(result, name, case, f) for f in _floors(result))


def _floors(result: dict[str, Any]) -> list[str]:
    return ["steps", "bound_steps"] if "bound_steps" in result["int8"] else ["steps"]


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One check per case, for the bundled (int8) file: its time per step over the faster bare step's."""
    checks = []
    for case in result["cases"]:
        value = _strict(result, "int8", case)
        forward = _ratio(result, "int8", case)
        checks.append(
            {
                "key": f"speed/{case['key']}",
                "target": f"bundled model, {case['label']}: ≤ {case['target']:g}× the bare step "
                f"(batch {case['batch']}; the faster of `forward` and the stepper)",
                "measured": f"{value:.2f}×",
                "met": value <= case["target"],
                "why": f"{forward:.2f}× the `forward` step; fp32 twin: {_strict(result, 'fp32', case):.2f}×",
            }
        )
    return checks


def _per_word(stat: dict[str, Any], rows: int) -> str:
    """``stat`` (ms per step) per text word: ``median (spread)``."""
    return fmt_stat({k: v / rows if k != "n" else v for k, v in stat.items()})


def render(result: dict[str, Any], img: str | None = None) -> str:
    """The Markdown section: one table, both files side by side."""
    settings, files = result["settings"], result["files"]
    floors = _floors(result)
    names = {"steps": "bare `model.forward` step", "bound_steps": "bare `model.stepper()` step"}
    divisor = {str(c["batch"]): c["rows"] for c in result["cases"]}  # a floor is shown per text word
    rows = []
    for floor in floors:
        for batch in result["int8"][floor]:
            label = f"{names[floor]}, state carried" + (f", {batch} rows" if batch != "1" else "")
            per = divisor.get(batch, 1)
            label += ", per row" if per > 1 else ""
            cells = []
            for f in FILES:
                own = result[f][floor][batch]["median"]
                cells += [_per_word(result[f][floor][batch], per)]
                cells += [f"{own / result[f][other][batch]['median']:.2f}×" for other in floors]
            rows.append([label, batch, *cells, "", "", ""])
    for case in result["cases"]:
        cells = []
        for name in FILES:
            cells.append(_per_word(result[name]["cases"][case["key"]], case["rows"]))
            cells += [f"{_ratio(result, name, case, floor):.2f}×" for floor in floors]
        verdicts = [met(_strict(result, name, case) <= case["target"]) for name in FILES]
        rows.append([case["label"], case["batch"], *cells, f"≤ {case['target']:g}×", *verdicts])
    short = {"steps": "vs `forward`", "bound_steps": "vs stepper"}
    headers = ["what", "batch"]
    for f in FILES:
        headers += [f"{f} ms/word", *(f"{f} {short[floor]}" for floor in floors)]
    headers += ["target", "int8", "fp32"]
    n = min(s["n"] for f in FILES for s in result[f]["cases"].values())
    defaults = ", ".join(f"{k}={v}" for k, v in result["defaults"].items()) or "none"
    int8, fp32 = (f"{files[f]['source']} (`{shown(files[f]['path'])}`)" for f in FILES)
    against = (
        "The ratios are to the bare steps of the same batch: `model.forward` (the floor issue 17 names) and "
        "`model.stepper()` (the same step through buffers bound once, which the decoding loops use); a "
        "target counts as met only against the faster floor."
        if len(floors) > 1
        else "The ratio is to the bare step of the same batch."
    )
    lines = [
        f"int8: {int8}; fp32: {fp32}. {settings['words']} words after the prompt "
        f'"{settings["prompt"]}", `stop_at_end=False`, batch 1 unless said; the bundled file\'s decoding '
        f"defaults ({defaults}) for both files. ms/word: the median of {n} interleaved rounds "
        f"({spread_label(n)}), each call divided by the steps it really took (counted outside the clock): "
        f"per row for 64 rows, per beam step for beam search. {against}",
        "",
        markdown_table(headers, rows, align="lr" + "r" * (len(headers) - 5) + "rll"),
    ]
    return "\n".join(lines)


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []
