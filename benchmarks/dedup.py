"""Deduplication before the split: what it catches and misses on the reference corpus (docs/dedup.md).

Measures, on a corpus small enough to compare every pair of documents (the reference corpus, 3,522
abstracts):

1. exact duplicates under several normalisations: rows in groups of identical texts, distinct texts;
2. the true Jaccard similarity of the word 5-shingle sets of every pair of distinct documents that share
   a shingle (an inverted index), against what ``nextword.corpus.dedup`` does with them at several
   thresholds: pairs caught (both in one group) and missed, per band of true similarity, and the groups
   formed;
3. examples of pairs just above and just below the default threshold, caught or missed;
4. what reaches the validation documents of the split (fraction 0.1, seed 0): the document-index split
   (``--keep-duplicates``, and every model before deduplication) against the deduplicated one, counting
   validation documents with an identical or similar training document.

    python -m benchmarks.dedup                      # the reference corpus, about a minute
    python -m benchmarks.dedup --corpus other.csv   # any corpus nextword reads
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys
import time
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.environment import machine_info
from benchmarks.paths import DEFAULT_CORPUS
from benchmarks.report import markdown_table
from benchmarks.results import benchmark_parser, save_result
from nextword.corpus import CorpusConfig, load_documents, split_corpus
from nextword.corpus.dedup import find_duplicates
from nextword.corpus.minhash import document_words
from nextword.corpus.schemes import dedup_options
from nextword.runtime.provenance import SPLIT_DEDUPLICATED, DedupSettings

NAME = "dedup"
BANDS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0001]
THRESHOLDS = [0.1, 0.15, 0.2, 0.3, 0.5]
LEAK_LEVELS = [0.2, 0.5, 0.8]
NEW_RUNS = dedup_options(SPLIT_DEDUPLICATED)  # deduplicate as a new run does (words with marks, mixed values)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("dedup", __doc__)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="corpus file (default: %(default)s)")
    parser.add_argument(
        "--text-column", default="auto", help="CSV column holding the text (default: as nextword train)"
    )
    parser.add_argument("--examples", type=int, default=3, help="examples on each side of the threshold")
    parser.add_argument("--result-json", metavar="PATH", help="where to write the figures")
    return parser.parse_args(argv)


def exact_counts(documents: list[str]) -> list[dict[str, Any]]:
    """Distinct texts and rows in groups of identical texts, under each normalisation."""
    normalisations = {
        "as read": lambda t: t,
        "case and whitespace folded": lambda t: " ".join(t.lower().split()),
        "+ NFKC": lambda t: " ".join(unicodedata.normalize("NFKC", t).casefold().split()),
        "+ punctuation (nextword's words)": lambda t: " ".join(document_words(t, marks=True)),
    }
    rows = []
    for name, key in normalisations.items():
        counts = collections.Counter(key(d) for d in documents)
        in_groups = sum(n for n in counts.values() if n > 1)
        rows.append({"normalisation": name, "distinct": len(counts), "rows_in_groups": in_groups})
    prefix = collections.Counter(" ".join(d.lower().split())[:150] for d in documents)
    rows.append(
        {
            "normalisation": "first 150 characters (case and whitespace folded)",
            "distinct": len(prefix),
            "rows_in_groups": sum(n for n in prefix.values() if n > 1),
        }
    )
    return rows


def true_similarities(documents: list[str], kept: np.ndarray, k: int) -> dict[tuple[int, int], float]:
    """Jaccard similarity of the k-word shingle sets of every pair of ``kept`` documents sharing one."""
    shingles = {}
    for i in kept.tolist():
        words = document_words(documents[i], marks=True)
        shingles[i] = {tuple(words[j : j + k]) for j in range(max(1, len(words) - k + 1))}
    index = collections.defaultdict(list)
    for i, own in shingles.items():
        for shingle in own:
            index[shingle].append(i)
    shared: collections.Counter[tuple[int, int]] = collections.Counter()
    for holders in index.values():
        for x in range(len(holders)):
            for y in range(x + 1, len(holders)):
                shared[(holders[x], holders[y])] += 1
    return {(a, b): n / (len(shingles[a]) + len(shingles[b]) - n) for (a, b), n in shared.items()}


def caught_by_band(similar: dict[tuple[int, int], float], group: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for low, high in itertools.pairwise(BANDS):
        pairs = [p for p, j in similar.items() if low <= j < high]
        caught = sum(group[a] == group[b] for a, b in pairs)
        rows.append({"low": low, "high": min(high, 1.0), "pairs": len(pairs), "caught": int(caught)})
    return rows


def leakage(
    similar: dict[tuple[int, int], float], labels: np.ndarray, representative: np.ndarray
) -> dict[str, int]:
    """Validation documents with a training document of the same words, or at least this similar.

    ``representative`` maps each document to the first one with its words; ``similar`` holds the true
    similarities among those first ones."""
    neighbours = collections.defaultdict(list)
    for (a, b), j in similar.items():
        neighbours[a].append((b, j))
        neighbours[b].append((a, j))
    val, train = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    train_reps = set(representative[train].tolist())
    result = {"validation_documents": len(val), "training_documents": len(train), "identical": 0}
    result.update({f"similar_{level}": 0 for level in LEAK_LEVELS})
    for v in representative[val].tolist():
        identical = v in train_reps
        result["identical"] += identical
        for level in LEAK_LEVELS:
            result[f"similar_{level}"] += identical or any(
                j >= level and b in train_reps for b, j in neighbours[v]
            )
    return result


def by_threshold(documents: list[str], similar: dict[tuple[int, int], float]) -> dict[float, dict[str, Any]]:
    """What ``nextword.corpus.dedup`` groups at each of :data:`THRESHOLDS`."""
    out = {}
    for threshold in THRESHOLDS:
        groups = find_duplicates(documents, DedupSettings(threshold=threshold), **NEW_RUNS)
        out[threshold] = {
            "exact_duplicates": groups.exact_duplicates,
            "groups": groups.near_duplicate_groups,
            "documents_in_groups": groups.near_duplicate_documents,
            "largest_group": int(groups.group_sizes().max()),
            "by_similarity": caught_by_band(similar, groups.group),
        }
    return out


def examples(
    documents: list[str],
    similar: dict[tuple[int, int], float],
    group: np.ndarray,
    threshold: float,
    count: int,
) -> dict[str, list[dict[str, Any]]]:
    """Up to ``count`` pairs of each kind (caught or missed, above or below ``threshold``) near it."""
    found: dict[str, list[dict[str, Any]]] = {
        "caught_below": [],
        "missed_above": [],
        "caught_above": [],
        "missed_below": [],
    }
    for (a, b), j in sorted(similar.items(), key=lambda item: abs(item[1] - threshold)):
        kind = ("caught_" if group[a] == group[b] else "missed_") + ("above" if j >= threshold else "below")
        if len(found[kind]) < count and abs(j - threshold) < 0.1:
            found[kind].append({"similarity": round(j, 3), "a": documents[a][:300], "b": documents[b][:300]})
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.corpus).is_file():
        raise SystemExit(f"corpus {args.corpus} not found: pass --corpus FILE")
    config = CorpusConfig(paths=(args.corpus,), text_column=args.text_column)
    documents = load_documents(config.paths, config)
    default = DedupSettings()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "corpus": args.corpus,
        "documents": len(documents),
    }
    results["exact"] = exact_counts(documents)

    started = time.perf_counter()
    found = find_duplicates(documents, default, **NEW_RUNS)
    results["seconds"] = time.perf_counter() - started
    kept = np.flatnonzero(~found.dropped)
    first_of: dict[str, int] = {}
    representative = np.array(
        [first_of.setdefault(" ".join(document_words(d, marks=True)), i) for i, d in enumerate(documents)]
    )
    similar = true_similarities(documents, kept, default.shingle_words)

    results["thresholds"] = by_threshold(documents, similar)
    results["examples"] = examples(documents, similar, found.group, default.threshold, args.examples)

    by_index = split_corpus(replace(config, keep_duplicates=True))
    deduplicated = split_corpus(config)
    results["splits"] = {
        "by document index (--keep-duplicates)": leakage(similar, by_index.labels, representative),
        "deduplicated (default)": leakage(similar, deduplicated.labels, representative),
    }
    results["split_counts"] = {
        "train_documents": deduplicated.counts.train_documents,
        "val_documents": deduplicated.counts.val_documents,
        "exact_duplicates": deduplicated.counts.exact_duplicates,
        "near_duplicate_groups": deduplicated.counts.near_duplicate_groups,
        "near_duplicate_documents": deduplicated.counts.near_duplicate_documents,
    }
    path = save_result(NAME, results, args.result_json)
    print(markdown(results))
    print(f"\nfigures: {path}", file=sys.stderr)
    return 0


def markdown(results: dict[str, Any]) -> str:
    out = [f"Corpus: {results['corpus']} ({results['documents']:,} documents)", ""]
    out.append(
        markdown_table(
            ["exact duplicates: normalisation", "distinct texts", "rows in groups of identical texts"],
            [
                [r["normalisation"], f"{r['distinct']:,}", f"{r['rows_in_groups']:,}"]
                for r in results["exact"]
            ],
        )
    )
    out += [
        "",
        "Near-duplicates: pairs of distinct documents by true Jaccard similarity of their word "
        "5-shingles, and the share each threshold puts in one group:",
        "",
    ]
    thresholds = results["thresholds"]
    first = next(iter(thresholds.values()))["by_similarity"]
    headers = ["true similarity", "pairs", *[f"caught at {t:g}" for t in thresholds]]
    rows = []
    for i, band in enumerate(first):
        row = [f"{band['low']:.2f}-{band['high']:.2f}", f"{band['pairs']:,}"]
        for figures in thresholds.values():
            b = figures["by_similarity"][i]
            row.append(f"{b['caught']} ({b['caught'] / b['pairs']:.0%})" if b["pairs"] else "-")
        rows.append(row)
    for name, key in (("groups (documents in them)", "groups"), ("largest group", "largest_group")):
        row = [name, ""]
        for figures in thresholds.values():
            row.append(
                f"{figures['groups']} ({figures['documents_in_groups']})"
                if key == "groups"
                else str(figures[key])
            )
        rows.append(row)
    out.append(markdown_table(headers, rows))
    out += ["", f"Hashing and grouping at the default threshold: {results['seconds']:.2f} s", ""]
    splits = results["splits"]
    headers = [
        "split (fraction 0.1, seed 0)",
        "training",
        "validation",
        "validation documents with a training twin (same words)",
        *[f"... or a training document at similarity >= {level}" for level in LEAK_LEVELS],
    ]
    rows = [
        [
            name,
            f"{s['training_documents']:,}",
            f"{s['validation_documents']:,}",
            s["identical"],
            *[s[f"similar_{level}"] for level in LEAK_LEVELS],
        ]
        for name, s in splits.items()
    ]
    out.append(markdown_table(headers, rows))
    out += ["", "Examples near the default threshold:"]
    for kind, pairs in results["examples"].items():
        for pair in pairs:
            out += [
                "",
                f"- {kind.replace('_', ' ')} (similarity {pair['similarity']}):",
                f"  - A: {pair['a']}",
                f"  - B: {pair['b']}",
            ]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
