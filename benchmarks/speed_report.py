"""The report of ``benchmarks.speed``: per-word cost against the bare step, and the targets of issue 17."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.paths import REPO
from benchmarks.report import fmt_stat, markdown_table, met, spread_label

__all__ = ["plots", "render", "targets"]

FILES = ("int8", "fp32")


def _ratio(result: dict[str, Any], name: str, case: dict[str, Any]) -> float:
    figures = result[name]
    return figures["cases"][case["key"]]["median"] / figures["steps"][str(case["batch"])]["median"]


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One check per case, for the bundled (int8) file: its time per step over the bare step's."""
    checks = []
    for case in result["cases"]:
        value = _ratio(result, "int8", case)
        checks.append(
            {
                "key": f"speed/{case['key']}",
                "target": f"bundled model, {case['label']}: ≤ {case['target']:g}× the bare step "
                f"(batch {case['batch']})",
                "measured": f"{value:.2f}×",
                "met": value <= case["target"],
                "why": f"fp32 twin: {_ratio(result, 'fp32', case):.2f}×",
            }
        )
    return checks


def _per_word(stat: dict[str, Any], rows: int) -> str:
    """``stat`` (ms per step) per text word: ``median (spread)``."""
    return fmt_stat({k: v / rows if k != "n" else v for k, v in stat.items()})


def _shown(path: str) -> str:
    """``path`` relative to the repository when inside it."""
    return str(Path(path).resolve().relative_to(REPO)) if Path(path).resolve().is_relative_to(REPO) else path


def render(result: dict[str, Any], img: str | None = None) -> str:
    """The Markdown section: one table, both files side by side."""
    settings, files = result["settings"], result["files"]
    divisor = {str(c["batch"]): c["rows"] for c in result["cases"]}  # a floor is shown per text word
    rows = []
    for batch, _ in result["int8"]["steps"].items():
        label = "bare `model.forward` step, state carried" + (f", {batch} rows" if batch != "1" else "")
        per = divisor.get(batch, 1)
        label += ", per row" if per > 1 else ""
        figures = [_per_word(result[f]["steps"][batch], per) for f in FILES]
        rows.append([label, batch, figures[0], "1.00×", figures[1], "1.00×", "", "", ""])
    for case in result["cases"]:
        cells = []
        for name in FILES:
            cells += [
                _per_word(result[name]["cases"][case["key"]], case["rows"]),
                f"{_ratio(result, name, case):.2f}×",
            ]
        verdicts = [met(_ratio(result, name, case) <= case["target"]) for name in FILES]
        rows.append([case["label"], case["batch"], *cells, f"≤ {case['target']:g}×", *verdicts])
    headers = ["what", "batch", "int8 ms/word", "int8 vs bare step", "fp32 ms/word", "fp32 vs bare step"]
    headers += ["target", "int8", "fp32"]
    n = min(s["n"] for f in FILES for s in result[f]["cases"].values())
    defaults = ", ".join(f"{k}={v}" for k, v in result["defaults"].items()) or "none"
    int8, fp32 = (f"{files[f]['source']} (`{_shown(files[f]['path'])}`)" for f in FILES)
    lines = [
        f"int8: {int8}; fp32: {fp32}. {settings['words']} words after the prompt "
        f'"{settings["prompt"]}", `stop_at_end=False`, batch 1 unless said; the bundled file\'s decoding '
        f"defaults ({defaults}) for both files. ms/word: the median of {n} interleaved rounds "
        f"({spread_label(n)}), each call divided by the steps it really took (counted outside the clock): "
        "per row for 64 rows, per beam step for beam search. The ratio is to the bare step of the same "
        "batch.",
        "",
        markdown_table(headers, rows, align="lrrrrrrll"),
    ]
    return "\n".join(lines)


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []
