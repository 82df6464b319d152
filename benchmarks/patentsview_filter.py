"""Throughput and memory of ``nextword corpus patentsview`` on synthetic PatentsView-shaped files.

Generates, in a temporary folder, a ``g_patent_abstract.tsv.zip`` of ``--rows`` rows (about 700 bytes of
abstract each, like the real table) and a matching ``g_patent.tsv.zip``, both quoted the PatentsView way
(tabs between fields, ``"`` around text, doubled quotes inside, some fields with quotes, tabs and line
breaks, 2% of the abstracts with non-ASCII text as in the reference corpus). Then, each in a fresh
child process so that the generator's memory does not count, it times:

- the floor: decompressing the abstract member and reading it line by line, both with plain iteration of
  the zip member and with the 1 MiB reads that ``collect`` uses; and decompression alone;
- ``collect`` on the abstracts alone (one pass);
- ``collect`` with the patents file (three passes: abstracts, patents, abstracts again);

and prints a Markdown table: rows per second, CPU time, the child's peak resident memory and, for
``collect``, where the time went (from the reader's debug log): the share of it that the helper thread
spent decompressing, and the share the parser spent waiting for that thread. When the first is near
100%, decompression sets the pace.

    python -m benchmarks.patentsview_filter               # 1,000,000 rows: about a minute to generate
    python -m benchmarks.patentsview_filter --rows 50000  # a quick look
    python -m benchmarks.patentsview_filter --bombs 1024  # hostile members of 1 GiB instead (below)

With ``--bombs MIB`` it measures hostile abstract members instead, each ``MIB`` MiB unzipped: one line of
NULs with no line break (a 1 GiB one zips to about 1 MB), and nothing but line breaks; a matching row
comes before and after each. Reported: wall and CPU time, the child's peak RSS, the rows written and
the rows skipped with their reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import cast

from benchmarks.childproc import child_env
from benchmarks.results import benchmark_parser

QUERY = ("neural network", "deep learning")
WORDS = (  # noqa: SIM905 (one string reads better than sixty)
    "a the of to and in for is are with said which by an on from at least one first second device system "
    "method apparatus signal data layer unit module circuit memory processor control value input output "
    "plurality network node weight image vehicle sensor wireless communication receiving determining "
    "based configured generate portion surface member substrate electrode optical light source power"
).split()


def quote(text: str) -> str:
    """A PatentsView text field: in double quotes, with quotes inside doubled."""
    return '"' + text.replace('"', '""') + '"'


def abstract(rng: random.Random, i: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(80, 150))
    roll = rng.random()
    if roll < 0.0005:
        words[rng.randrange(len(words))] = rng.choice(QUERY)  # a match: about 500 per million rows
    elif roll < 0.001:
        words[rng.randrange(len(words))] = "neural networks"  # a near miss: plural
    text = " ".join(words).capitalize() + "."
    if i % 50 == 0:
        text = text.replace(" said ", ' "said" ', 1)  # doubled quotes: the slow path of the reader
    if i % 1000 == 0:
        text = text.replace(" the ", " the\n", 1).replace(" of ", "\tof ", 1)  # a line break, a tab
    if i % 50 == 25:  # non-ASCII text, in 2% of the rows as in the reference corpus: read in full
        text = text.replace(" of ", " of 5 µm at 20 °C ", 1)
    return text


def generate(folder: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """Write g_patent_abstract.tsv.zip and g_patent.tsv.zip with ``rows`` rows each."""
    rng = random.Random(seed)
    paths = {"abstracts": folder / "g_patent_abstract.tsv.zip", "patents": folder / "g_patent.tsv.zip"}
    with (
        zipfile.ZipFile(paths["abstracts"], "w", zipfile.ZIP_DEFLATED) as za,
        zipfile.ZipFile(paths["patents"], "w", zipfile.ZIP_DEFLATED) as zp,
        za.open("g_patent_abstract.tsv", "w", force_zip64=True) as fa,
        zp.open("g_patent.tsv", "w", force_zip64=True) as fp,
    ):
        fa.write(b'"patent_id"\t"patent_abstract"\n')
        fp.write(
            b'"patent_id"\t"patent_type"\t"patent_date"\t"patent_title"\t"wipo_kind"\t"num_claims"\t'
            b'"withdrawn"\t"filename"\n'
        )
        batch_a: list[str] = []
        batch_p: list[str] = []
        for i in range(rows):
            patent_id = str(10_000_000 + i) if i % 20 else f"D{900_000 + i}"
            year = 1976 + i * 48 // max(rows, 1)
            title = " ".join(rng.choices(WORDS, k=rng.randint(4, 12))).capitalize()
            if rng.random() < 0.0002:
                title += " using a neural network"  # title matches, most of them title-only
            batch_a.append(f"{quote(patent_id)}\t{quote(abstract(rng, i))}\n")
            granted = f"{year}-06-{1 + i % 28:02d}"
            batch_p.append(
                f"{quote(patent_id)}\t{quote('utility')}\t{quote(granted)}\t{quote(title)}\t{quote('B2')}\t"
                f"{rng.randint(1, 40)}\t0\t{quote(f'ipg{year % 100:02d}.xml')}\n"
            )
            if len(batch_a) == 20_000:
                fa.write("".join(batch_a).encode())
                fp.write("".join(batch_p).encode())
                batch_a, batch_p = [], []
        fa.write("".join(batch_a).encode())
        fp.write("".join(batch_p).encode())
    return paths


BOMBS = {"bomb-line": b"\x00", "bomb-blank": b"\n"}  # kind -> the byte it is made of


def generate_bombs(folder: Path, mib: int) -> None:
    """One abstracts table per bomb: a matching row, ``mib`` MiB of the bomb's byte, a matching row."""
    for kind, byte in BOMBS.items():
        path = folder / kind / "g_patent_abstract.tsv.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        block = byte * (1 << 20)
        with (
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
            z.open("g_patent_abstract.tsv", "w", force_zip64=True) as f,
        ):
            f.write(b'"patent_id"\t"patent_abstract"\n"1"\t"A neural network before it."\n')
            for _ in range(mib):
                f.write(block)
            f.write(b'\n"2"\t"A neural network after it."\n')


# -- measurements, each run in a child process -------------------------------------------------------------


class _Timing(logging.Handler):
    """Adds up, over the reader's passes, the seconds its helper thread spent decompressing and the
    seconds its parser waited for that thread (from the reader's debug log line about each pass)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.decompressing = self.decompressing_cpu = self.waiting = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for it" in str(record.msg):
            # the reader's line (corpus/patentsview/table.py) ends with these three seconds
            *_, decompressing, cpu, waiting = cast("tuple[float, ...]", record.args)
            self.decompressing += float(decompressing)
            self.decompressing_cpu += float(cpu)
            self.waiting += float(waiting)


def _child(kind: str, folder: Path) -> dict:
    abstracts, patents = folder / "g_patent_abstract.tsv.zip", folder / "g_patent.tsv.zip"
    if kind in BOMBS:
        abstracts = folder / kind / "g_patent_abstract.tsv.zip"
    timing = _Timing()
    if kind.startswith("collect") or kind in BOMBS:
        from nextword.corpus.patentsview import PatentsViewConfig, collect  # imports are not timed

        log = logging.getLogger("nextword.corpus.patentsview")
        log.setLevel(logging.DEBUG)
        log.addHandler(timing)
    start, cpu_start = time.perf_counter(), time.process_time()
    result: dict = {}
    if kind == "iterate":
        with zipfile.ZipFile(abstracts) as z, z.open("g_patent_abstract.tsv") as f:
            result["rows"] = sum(1 for _ in f) - 1
    elif kind == "chunks":
        with zipfile.ZipFile(abstracts) as z, z.open("g_patent_abstract.tsv") as f:
            lines, tail = 0, b""
            while chunk := f.read(1 << 20):
                parts = (tail + chunk).split(b"\n")
                tail = parts.pop()
                lines += len(parts)
            result["rows"] = lines + bool(tail) - 1
    elif kind == "decompress":
        with zipfile.ZipFile(abstracts) as z, z.open("g_patent_abstract.tsv") as f:
            while f.read(1 << 20):
                pass
        result["seconds"] = time.perf_counter() - start
        result.setdefault("cpu_seconds", time.process_time() - cpu_start)
        with zipfile.ZipFile(abstracts) as z, z.open("g_patent_abstract.tsv") as f:
            result["rows"] = sum(1 for _ in f) - 1  # counted after the clock stops
    else:
        config = PatentsViewConfig(
            abstracts=str(abstracts),
            patents=str(patents) if kind == "collect3" else None,
            query=QUERY,
            out=str(folder / f"{kind}.csv"),
            progress=False,
            overwrite=True,  # each round writes the same file
        )
        summary = collect(config)
        result["rows"] = summary.rows_scanned[abstracts.name]
        result["read"] = sum(summary.rows_scanned.values()) + (result["rows"] if kind == "collect3" else 0)
        result["written"] = summary.written
        result["skipped"] = summary.skipped
        result["skipped_rows"] = [str(row) for row in summary.skipped_rows]
        result["decompressing"] = timing.decompressing
        result["decompressing_cpu"] = timing.decompressing_cpu
        result["waiting"] = timing.waiting
    result.setdefault("seconds", time.perf_counter() - start)
    result.setdefault("cpu_seconds", time.process_time() - cpu_start)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec; ru_maxrss would keep the
    peak of the forking parent (the generator), so it is the fallback only."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kinds: list[str], folder: Path, repeat: int) -> dict[str, dict]:
    """Run each measurement ``repeat`` times, each in a fresh interpreter, taking turns so that a slow
    spell of the machine hits them all alike; keep each one's fastest run."""
    best: dict[str, dict] = {}
    for _ in range(repeat):
        for kind in kinds:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.patentsview_filter", "--child", kind, str(folder)],
                env=child_env(quiet_tf=False),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{kind} failed:\n{done.stderr}")
            result = json.loads(done.stdout.splitlines()[-1])
            if kind not in best or result["seconds"] < best[kind]["seconds"]:
                best[kind] = result
    return best


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("patentsview_filter", __doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="abstract (and patent) rows to generate")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the fastest counts")
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep the files")
    parser.add_argument("--bombs", type=int, metavar="MIB", help="measure hostile members of MIB MiB instead")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]))))
        return

    if args.bombs:
        bombs(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        paths = generate(folder, args.rows)
        with zipfile.ZipFile(paths["abstracts"]) as z:
            unzipped = z.getinfo("g_patent_abstract.tsv").file_size
        print(
            f"generated {args.rows:,} rows in {time.perf_counter() - start:.0f} s: abstracts "
            f"{paths['abstracts'].stat().st_size / 1e6:.0f} MB zipped, {unzipped / 1e6:.0f} MB unzipped; "
            f"patents {paths['patents'].stat().st_size / 1e6:.0f} MB zipped",
            file=sys.stderr,
        )
        runs = [
            ("iterate", "floor: decompress, iterate the zip member line by line"),
            ("chunks", "floor: decompress in 1 MiB reads, split into lines"),
            ("decompress", "decompression alone, 1 MiB reads (no lines)"),
            ("collect1", "filter: collect, abstracts only (1 pass)"),
            ("collect3", "collect with --patents (3 passes: abstracts, patents, abstracts)"),
        ]
        results = measure([kind for kind, _ in runs], folder, args.repeat)

    floor = results["chunks"]["rows"] / results["chunks"]["seconds"]
    bare = results["decompress"]["rows"] / results["decompress"]["seconds"]
    print(f"\n{args.rows:,} abstract rows, {unzipped / 1e6:.0f} MB unzipped; query {' / '.join(QUERY)}\n")
    print(
        "| run | wall s | CPU s | rows/s | vs floor | vs decompression | decompressing | waiting | peak RSS |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, label in runs:
        r = results[kind]
        rate = r.get("read", r["rows"]) / r["seconds"]
        versus = (f"{rate / floor:.0%}", f"{rate / bare:.0%}") if kind != "collect3" else ("-", "-")
        shares = [f"{r[key] / r['seconds']:.0%}" if key in r else "-" for key in ("decompressing", "waiting")]
        if "written" in r:
            label += f", wrote {r['written']:,}"
        print(
            f"| {label} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {rate:,.0f} | {versus[0]} | "
            f"{versus[1]} | {shares[0]} | {shares[1]} | {r['peak_rss_mb']:.0f} MB |"
        )
    print(
        "\nrows/s: rows read per wall-clock second, all passes together; CPU s: all threads of the child; "
        "decompressing, waiting: shares of the wall time that the reader's helper thread spent decompressing "
        "and that its parser spent waiting for it; "
        f"peak RSS: the child's VmHWM; best of {args.repeat} run(s) each, taking turns."
    )
    one_pass, alone = results["collect1"], results["decompress"]
    print(
        f"\nIn the 1-pass filter the helper thread spent {one_pass['decompressing']:.2f} s decompressing "
        f"({one_pass['decompressing_cpu']:.2f} s of CPU), against {alone['seconds']:.2f} s "
        f"({alone['cpu_seconds']:.2f} s of CPU) for the same decompression alone."
    )


def bombs(args: argparse.Namespace) -> None:
    """Measure ``collect`` on the hostile members of ``args.bombs`` MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        start = time.perf_counter()
        generate_bombs(folder, args.bombs)
        print(f"generated the bombs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        results = measure(list(BOMBS), folder, args.repeat)
        sizes = {k: (folder / k / "g_patent_abstract.tsv.zip").stat().st_size for k in BOMBS}
    labels = {"bomb-line": "one line of NULs, no line break", "bomb-blank": "nothing but line breaks"}
    print(f"\nhostile abstract members of {args.bombs:,} MiB unzipped, default --max-record-bytes\n")
    print("| member | zipped | wall s | CPU s | peak RSS | rows written | skipped |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for kind in BOMBS:
        r = results[kind]
        skipped = "; ".join(r["skipped_rows"]) or "-"
        print(
            f"| {labels[kind]} | {sizes[kind] / 1e6:.1f} MB | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
            f"{r['peak_rss_mb']:.0f} MB | {r['written']} | {skipped} |"
        )


if __name__ == "__main__":
    main()
