"""Deduplication of unrelated short documents (a sentence or a line each) under the two ways of keeping
MinHash values: the low bits of each minimum (split schemes dedup-v1 to dedup-v4) and the scrambled
ones of dedup-v5, the default of new runs. The documents are 2 to 9 words drawn from a million, so no
two are alike and every group found is a false one (docs/dedup.md).

    python -m benchmarks.dedup_short [--documents 100000,200000] [--seed 0]
"""

from __future__ import annotations

import random
import sys
import time

from benchmarks.report import markdown_table
from benchmarks.results import benchmark_parser, positive_ints

NAME = "dedup_short"


def short_documents(n: int, seed: int, words: tuple[int, int] = (2, 9)) -> list[str]:
    """``n`` documents of ``words`` random words each (``w`` and a number below a million)."""
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(10**6)}" for _ in range(rng.randint(*words))) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(NAME, __doc__)
    parser.add_argument("--documents", default="100000,200000", help="corpus sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random words")
    args = parser.parse_args(argv)
    sizes = positive_ints(parser, "--documents", args.documents)

    from nextword.corpus.dedup import find_duplicates
    from nextword.runtime.provenance import DedupSettings

    rows = []
    for n in sizes:
        documents = short_documents(n, args.seed)
        for values, mixed in (("low bits (dedup-v1 to v4)", False), ("scrambled (dedup-v5)", True)):
            started = time.perf_counter()
            found = find_duplicates(documents, DedupSettings(), marks=True, mixed=mixed)
            seconds = time.perf_counter() - started
            rows.append(
                [
                    f"{n:,}",
                    values,
                    f"{found.near_duplicate_documents:,}",
                    f"{found.near_duplicate_groups:,}",
                    f"{int(found.group_sizes().max()):,}",
                    f"{seconds:.1f}",
                ]
            )
    print(
        markdown_table(
            ["documents", "MinHash values", "in false groups", "groups", "largest", "seconds"], rows
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
