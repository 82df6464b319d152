"""The report of ``benchmarks.multistep`` (its section of docs/benchmarks.md): the table of greedy words
per session call, and what the file's decoding rules leave of each call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.paths import shown
from benchmarks.report import fmt_num, fmt_stat, markdown_table, spread_label

BARE = "bare stepper step (no choice: the same token fed back)"


def words_per_call(flags: Sequence[Sequence[bool]], steps: int) -> float:
    """Mean words a call of ``steps`` unrolled steps would give where ``flags[p][i]`` says the rules
    overruled the graph at word ``i`` after prompt ``p``: a call's words run up to and including the
    first overruled one (chosen by the rules from that step's logits, which the call computed), and
    the next call starts after it."""
    calls = words = 0
    for row in flags:
        start = 0
        while start < len(row):
            window = row[start : start + steps]
            taken = window.index(True) + 1 if True in window else len(window)
            calls, words, start = calls + 1, words + taken, start + taken
    return words / calls if calls else 0.0


def plots(result: dict[str, Any], img_dir: Path) -> None:
    """No plots: the table says it all (``benchmarks.document`` asks every section)."""


def render(result: dict[str, Any], img_rel: str = "") -> str:
    """What was measured, the table (each row against the stepper on its own thread setting, against
    the runtime's default greedy loop and against its bare step) and what it shows."""
    rows, settings = result["rows"], result["settings"]
    median = {row["key"]: row["us_per_word"]["median"] for row in rows}
    greedy = {
        row["setting"]: median[row["key"]] for row in rows if row["steps"] is None and row["key"] != "bare"
    }
    table = []
    for row in rows:
        stat, check = row["us_per_word"], row["check"]
        own = greedy[row["setting"]] if row["steps"] is not None else None
        table.append(
            [
                row["label"],
                row["setting"],
                fmt_stat(stat),
                f"{stat['median'] / own:.2f}×" if own else "–",
                f"{stat['median'] / median['default']:.2f}×",
                f"{stat['median'] / median['bare']:.2f}×",
                f"{check['same_as_stepper']}/{check['words']}" if check else "–",
                fmt_num(row["build_ms"], 3) if row["build_ms"] is not None else "–",
            ]
        )
    headers = [
        "greedy words",
        "threads",
        "us/word",
        "vs the stepper, same threads",
        "vs the default",
        "vs the default's bare step",
        "same token as the default",
        "graph and session built, ms",
    ]
    model = result["model"]
    intro = (
        f"Greedy decoding with K words per `session.run`: the model's step graph copied K times, each "
        f"copy's logits masked (padding and unknown set to `-inf` by adding 0 or `-inf`) and its `ArgMax` "
        f"fed to the next copy (`benchmarks.multistep`). Model: {shown(model['path'])}; batch 1, "
        f"{settings['words']} words after the prompt's last token, the state carried; us per word, the "
        f"median of {rows[0]['us_per_word']['n']} interleaved rounds "
        f"({spread_label(rows[0]['us_per_word']['n'])}). The stepper rows choose "
        "as greedy decoding does (the bound stepper, then the banned ids set to `-inf` and numpy's "
        "`argmax`); *default* is `load()` without options (on two cores or more, two spinning threads "
        "for a step that runs alone, as every step here does). The unrolled graphs run through "
        "`session.run` with the runtime's session options for their column's threads."
    )
    lines = [intro, "", markdown_table(headers, table, align="ll" + "r" * (len(headers) - 2)), ""]
    unrolled_rows = [row for row in rows if row["steps"] is not None]
    if unrolled_rows:
        best = min(unrolled_rows, key=lambda row: median[row["key"]])
        same = all(row["check"]["same_as_stepper"] == row["check"]["words"] for row in unrolled_rows)
        lines.append(
            f"- With no rule but padding and unknown banned, the fastest: {best['label']} on "
            f"{best['setting']}, {fmt_num(median[best['key']], 3)} us "
            f"per word: {median[best['key']] / median['default']:.2f}× the default's greedy loop and "
            f"{median[best['key']] / median['bare']:.2f}× its bare step (issue 17's greedy target: ≤ 1.2× "
            "the bare step). "
            + (
                "Every unrolled graph chose the default's tokens at every word."
                if same
                else "**Some unrolled graphs chose other tokens than the default** (the column above)."
            )
        )
        lines += _rule_lines(result, median)
        lines.append(
            "- Not built into the runtime. It would need an ONNX writer in the runtime (which reads files "
            "with its own bounded parser and never imports `onnx`), one more session per model, built on "
            "the first greedy call (the first table's last column: its cost, paid once, against a few tens "
            "of us saved per word), and a single-step fallback wherever a rule the graph does not know "
            "overrules its choice (an n-gram ban, `min_words`, a repetition penalty: the estimate above). "
            "It serves "
            "greedy decoding only: sampling's draw must stay numpy's, so its loop still calls the session "
            "once per word."
        )
    return "\n".join(lines)


def _rule_lines(result: dict[str, Any], median: dict[str, float]) -> list[str]:
    """What the file's decoding rules do to the unrolled graphs: how often they overrule its choice,
    and what each K would then cost per word."""
    rules, rows = result.get("rules"), result["rows"]
    if not rules or not rules["words"]:
        return []
    share = rules["overruled"] / rules["words"]
    table, costs = [], {}
    for steps in sorted({row["steps"] for row in rows if row["steps"] is not None}):
        fastest = min((row for row in rows if row["steps"] == steps), key=lambda row: median[row["key"]])
        per_call = words_per_call(rules["flags"], steps)
        cost = median[fastest["key"]] * steps / per_call  # every call computes all its steps
        costs[steps] = cost
        table.append(
            [
                steps,
                f"{per_call:.2f}",
                fastest["setting"],
                fmt_num(cost, 3),
                f"{cost / median['bare']:.2f}×",
            ]
        )
    headers = ["K", "words per call", "threads (the fastest)", "us per word", "vs the default's bare step"]
    best = min(costs, key=costs.__getitem__)
    return [
        f"- The file's decoding rules, greedy (`no_repeat_ngram_size={rules['no_repeat_ngram_size']}`, "
        f"`repetition_penalty={rules['repetition_penalty']}`, `min_words={rules['min_words']}`), "
        f"overrule the graph's `ArgMax` at {rules['overruled']:,} of {rules['words']:,} greedy words "
        f"({share:.1%}; {len(rules['prompts'])} prompts, {rules['words'] // len(rules['prompts']):,} "
        "words each). A call could keep its words only up to the first overruled one (chosen from that "
        "step's logits), so with the file's defaults each call gives fewer words than it computes; "
        "estimated from the figures above (a call's time is its K steps whatever it keeps):",
        "",
        markdown_table(headers, table),
        "",
        f"- With the file's defaults the best of them, K = {best} at {fmt_num(costs[best], 3)} us per "
        f"word, is {costs[best] / median['default']:.2f}× the default's greedy loop"
        + (
            " (slower: the graph's gain does not survive the rules)."
            if costs[best] > median["default"]
            else "."
        ),
    ]
