"""nextword-web against the Python runtime on the same machine and model: cold start and ms/word in Node
and in headless Chromium (WASM; WebGPU where the browser offers an adapter), the bytes a page downloads
(raw, gzip, brotli), and how often seeded texts equal Python's: for short prompts, and for prompts of
16 to 256 words cut from the corpus's abstracts (an int8 file's texts part from Python's more often
as the prompt grows: docs/web.md).

    python -m benchmarks.web [--model M.onnx] [--rounds 3] [--words 200] [--parity 300]
                             [--long-prompts 20] [--corpus CSV] [--write docs/web.md]

``--rounds 0`` skips the speed and download figures: the texts alone, written between their own markers.

Needs Node and web/node_modules (``make web-setup``); the browser rows need chromium, chromedriver and
selenium. Each round runs Python, Node and the browser one after the other, each in a fresh process (a
fresh browser profile: nothing cached), so load from other processes hits them alike; figures are
medians over rounds. ``make web-bench`` runs it with the defaults and rewrites the figures in docs/web.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from benchmarks.paths import DEFAULT_CORPUS
from benchmarks.results import at_least, benchmark_parser, write_text

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
BUNDLED = ROOT / "runtime" / "data" / "nextword-patents.onnx"
START, END = "<!-- web-bench:start -->", "<!-- web-bench:end -->"
PARITY_START, PARITY_END = "<!-- web-parity:start -->", "<!-- web-parity:end -->"
PROMPT_WORDS = (16, 64, 128, 256)  # the lengths of the prompts cut from the corpus's abstracts

PYTHON_SPEED = """
import json, sys, time
started = time.perf_counter()
from nextword.runtime import load
model = load(sys.argv[1])
loaded = time.perf_counter()
model.generate("a neural network", max_words=1, seed=0)
first = time.perf_counter()
words, runs, warmup = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def timed(seed):
    t = time.perf_counter()
    model.generate("a neural network", max_words=words, seed=seed, stop_at_end=False)
    return (time.perf_counter() - t) * 1000 / words
fresh = timed(0)
until = time.perf_counter() + warmup
while time.perf_counter() < until:
    timed(1)
ms = [timed(r + 2) for r in range(runs)]
result = {"load_ms": (loaded - started) * 1000, "first_word_ms": (first - loaded) * 1000}
print(json.dumps({**result, "fresh_ms_per_word": fresh, "ms_per_word": ms}))
"""


def python_speed(model: Path, words: int, runs: int, warmup: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PYTHON_SPEED, str(model), str(words), str(runs), str(warmup)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return json.loads(out.stdout.splitlines()[-1])


class NodeError(RuntimeError):
    """A Node script failed; the message holds its command and what it wrote on stderr."""


def run_node(
    command: list[str], timeout: float | None = None, cwd: Path | None = WEB
) -> subprocess.CompletedProcess[str]:
    """``command`` (node and its arguments), run in web/ by default; a failure raises
    :class:`NodeError` with node's stderr, which is what says why."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise NodeError(f"{' '.join(command)} failed (exit status {done.returncode}):\n{done.stderr.strip()}")
    return done


def node_speed(model: Path, words: int, runs: int, warmup: float) -> dict[str, Any]:
    out = run_node(["node", "bench/node.mjs", "speed", str(model), str(words), str(runs), str(warmup)], 1200)
    return json.loads(out.stdout.splitlines()[-1])


def _example_server():
    import importlib.util

    spec = importlib.util.spec_from_file_location("nextword_web_example", WEB / "example" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def browser_speed(
    url: str, words: int, runs: int, warmup: float, backend: str, *flags: str
) -> dict[str, Any]:
    """One cold start in a fresh headless Chromium (no cache), then ``runs`` generations."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", *flags):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService("/usr/bin/chromedriver"))
    try:
        browser.set_script_timeout(1200)
        browser.get(f"{url}/bench/index.html?words={words}&runs={runs}&warmup={warmup}&backend={backend}")
        deadline = time.monotonic() + 1200
        while (result := browser.execute_script("return window.benchResult")) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the benchmark page did not finish")
            time.sleep(0.2)
        result["version"] = browser.capabilities.get("browserVersion")
        return result
    finally:
        browser.quit()


def compressed_sizes(paths: list[Path]) -> dict[str, tuple[int, int, int]]:
    """(raw, gzip -9, brotli q11) bytes of each file; brotli from Node's zlib (Python has none built in)."""
    script = (
        "const {readFileSync}=require('fs');const {brotliCompressSync,constants:c}=require('zlib');"
        "const o={};for(const p of JSON.parse(process.argv[1]))o[p]=brotliCompressSync(readFileSync(p),"
        "{params:{[c.BROTLI_PARAM_QUALITY]:11}}).length;console.log(JSON.stringify(o))"
    )
    brotli = json.loads(
        run_node(["node", "-e", script, json.dumps([str(p) for p in paths])], cwd=None).stdout
    )
    return {
        str(p): (p.stat().st_size, len(gzip.compress(p.read_bytes(), compresslevel=9)), brotli[str(p)])
        for p in paths
    }


def download_table(resources: list[dict[str, Any]], url: str, model: Path) -> list[str]:
    """What the page fetched, by part, with its size raw and compressed."""
    parts: dict[str, list[Path]] = {}
    for entry in resources:
        path = entry["name"].split("?")[0].removeprefix(url)
        file = model if path == "/model.onnx" else WEB / path.lstrip("/")
        if not file.is_file():
            continue
        part = (
            "model file"
            if file == model
            else "onnxruntime-web (.mjs + .wasm)"
            if "onnxruntime-web" in path
            else "nextword-web (src/*.js)"
            if "/src/" in path
            else "benchmark page"
        )
        parts.setdefault(part, [])
        if file not in parts[part]:
            parts[part].append(file)
    sizes = compressed_sizes([p for files in parts.values() for p in files])
    rows = ["| part | files | raw | gzip -9 | brotli 11 |", "|---|---|---|---|---|"]
    totals = [0, 0, 0]
    for part in ("model file", "onnxruntime-web (.mjs + .wasm)", "nextword-web (src/*.js)"):
        files = parts.get(part, [])
        sums = [sum(sizes[str(p)][i] for p in files) for i in range(3)]
        totals = [t + s for t, s in zip(totals, sums, strict=True)]
        rows.append(f"| {part} | {len(files)} | {_mb(sums[0])} | {_mb(sums[1])} | {_mb(sums[2])} |")
    rows.append(f"| **total** | | **{_mb(totals[0])}** | **{_mb(totals[1])}** | **{_mb(totals[2])}** |")
    return rows


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def parity(model_path: Path, count: int, long_prompts: int, corpus: Path | None) -> list[str]:
    """Seeded and greedy texts from Python and from nextword-web under Node, compared: ``count`` seeded
    texts of five short prompts, and ``long_prompts`` seeded texts for each length of
    :data:`PROMPT_WORDS`, cut from the first abstracts of ``corpus`` that long (None: none)."""
    from nextword.runtime import load

    model = load(model_path)
    prompts = ["a neural network", "the present invention relates to", "", "each neuron", "a method for"]
    variants: list[dict[str, float]] = [
        {},
        {"temperature": 0.7},
        {"top_k": 40},
        {"top_p": 0.9},
        {"temperature": 0.8, "top_k": 40},
    ]
    cases: list[dict[str, Any]] = [
        {"prompt": prompts[i % len(prompts)], "options": {"seed": i, "max_words": 40, **variants[i % 5]}}
        for i in range(count)
    ]
    cases += [{"prompt": p, "options": {"temperature": 0, "max_words": 40}} for p in prompts]
    long_cases = _long_prompt_cases(corpus, long_prompts) if corpus is not None and long_prompts else {}
    for group in long_cases.values():
        cases += group
    want = [cast(str, model.generate(c["prompt"], **c["options"])) for c in cases]  # one prompt: a str
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cases.json"
        path.write_text(json.dumps({"model": str(model_path), "cases": cases}))
        out = run_node(["node", "bench/node.mjs", "texts", str(path)], 3600)
    got = [json.loads(line) for line in out.stdout.splitlines()]
    pairs = list(zip(got, want, strict=True))  # (nextword-web's text, Python's), in the order of cases
    short, greedy, rest = pairs[:count], pairs[count : count + len(prompts)], pairs[count + len(prompts) :]
    diverged = [_first_difference(g, w) for g, w in short if g != w]
    same = len(short) - len(diverged)
    lines = [
        f"- seeded, short prompts: **{same} of {len(short)}** texts identical "
        f"({100 * same / max(len(short), 1):.1f}%), 40 words each, five prompts of 0–5 words, five "
        "option sets (default, temperature 0.7, top-k 40, top-p 0.9, temperature 0.8 with top-k 40)",
        f"- greedy: {sum(g == w for g, w in greedy)} of {len(greedy)} identical",
    ]
    if diverged:
        lines.append(
            f"- where seeded texts differ, the first differing word is word {sorted(diverged)} of 40"
        )
    for words, group in long_cases.items():
        equal = sum(g == w for g, w in rest[: len(group)])
        rest = rest[len(group) :]
        lines.append(
            f"- seeded, prompts of the first {words} words of an abstract: **{equal} of {len(group)}** "
            f"identical ({100 * equal / len(group):.0f}%; one seed per abstract, default options, 40 words)"
        )
    return lines


def _long_prompt_cases(corpus: Path, per_length: int) -> dict[int, list[dict[str, Any]]]:
    """``per_length`` seeded cases for each length of :data:`PROMPT_WORDS`: the first that many words of
    the corpus's first abstracts that long, each abstract once per length."""
    from nextword.corpus import CorpusConfig, load_documents

    documents = [d.split() for d in load_documents([corpus], CorpusConfig())]
    cases: dict[int, list[dict[str, Any]]] = {}
    for words in PROMPT_WORDS:
        long_enough = [d for d in documents if len(d) >= words][:per_length]
        cases[words] = [
            {"prompt": " ".join(d[:words]), "options": {"seed": i, "max_words": 40}}
            for i, d in enumerate(long_enough)
        ]
    return {words: group for words, group in cases.items() if group}


def _first_difference(a: str, b: str) -> int:
    x, y = a.split(), b.split()
    return next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("web", __doc__)
    parser.add_argument(
        "--model", type=Path, default=BUNDLED, help="the model file (default: the bundled one)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, each running Python, Node and the browser in turn"
    )
    parser.add_argument("--words", type=int, default=200, help="words per timed generation")
    parser.add_argument(
        "--warmup", type=float, default=10, help="seconds of generating before the timed runs"
    )
    parser.add_argument(
        "--parity", type=int, default=300, help="seeded texts of short prompts compared (0: no texts)"
    )
    parser.add_argument(
        "--long-prompts",
        type=int,
        default=20,
        help=f"seeded texts compared per prompt length {PROMPT_WORDS} cut from the corpus (0: none)",
    )
    parser.add_argument(
        "--corpus", type=Path, default=DEFAULT_CORPUS, help="the corpus the long prompts are cut from"
    )
    parser.add_argument("--write", type=Path, help="rewrite the figures between the markers of this file")
    args = parser.parse_args(argv)
    at_least(parser, 1, {"--words": args.words})
    at_least(
        parser,
        0,
        {
            "--rounds": args.rounds,
            "--warmup": args.warmup,
            "--parity": args.parity,
            "--long-prompts": args.long_prompts,
        },
    )
    return args


def check_inputs(args: argparse.Namespace) -> str | None:
    """Why the run cannot start (None when it can): checked before any work, as each would otherwise end
    the run minutes in."""
    if not args.model.is_file():
        return f"model file {args.model} not found: pass --model FILE"
    if not (WEB / "node_modules").is_dir():
        return f"{WEB / 'node_modules'} not found: run make web-setup (it installs nextword-web's packages)"
    if args.parity and args.long_prompts and not args.corpus.is_file():
        return (
            f"corpus {args.corpus} not found (the long prompts are cut from it): pass --corpus CSV or "
            "--long-prompts 0"
        )
    if args.write is not None:
        if not args.write.is_file():
            return f"--write {args.write}: no such file"
        text = args.write.read_text(encoding="utf-8")
        for start, end, wanted in ((START, END, args.rounds), (PARITY_START, PARITY_END, args.parity)):
            if wanted and (start not in text or end not in text.partition(start)[2]):
                return f"--write {args.write}: the file has no {start} ... {end} markers to write between"
    if not args.rounds and not args.parity:
        return "--rounds 0 and --parity 0 leave nothing to measure"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_inputs(args)
    if problem:
        print(f"benchmarks.web: {problem}", file=sys.stderr)
        return 2
    try:
        run(args)
    except NodeError as exc:
        print(f"benchmarks.web: {exc}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> None:
    """The measurements, the report printed (and written between the markers of ``--write``): speed and
    downloads unless ``--rounds 0``, texts unless ``--parity 0``."""
    blocks = []
    if args.rounds:
        blocks.append((START, END, speed_report(args)))
    if args.parity:
        lines = ["Seeded and greedy texts, nextword-web (Node, WASM) against the Python runtime:", ""]
        corpus = args.corpus if args.long_prompts else None
        lines += parity(args.model, args.parity, args.long_prompts, corpus)
        blocks.append((PARITY_START, PARITY_END, lines))
    for start, end, lines in blocks:
        text = "\n".join(lines)
        print(text)
        if args.write:
            doc = args.write.read_text(encoding="utf-8")
            head, _, rest = doc.partition(start)
            _, _, tail = rest.partition(end)
            write_text(args.write, f"{head}{start}\n{text}\n{end}{tail}")


def speed_report(args: argparse.Namespace) -> list[str]:
    """Cold start and ms/word per runtime, WebGPU, and the bytes the page downloads: the report's lines."""
    server = _example_server().start(args.model)
    results: dict[str, list[dict[str, Any]]] = {
        "Python runtime": [],
        "Node (WASM)": [],
        "Chromium (WASM)": [],
    }
    try:
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
            results["Python runtime"].append(python_speed(args.model, args.words, 3, args.warmup))
            results["Node (WASM)"].append(node_speed(args.model, args.words, 3, args.warmup))
            results["Chromium (WASM)"].append(browser_speed(server.url, args.words, 3, args.warmup, "wasm"))
        webgpu_default = browser_speed(server.url, 1, 1, 0, "webgpu")
        webgpu = browser_speed(server.url, args.words, 3, args.warmup, "webgpu", "--enable-unsafe-webgpu")
        browser = results["Chromium (WASM)"][-1]
        downloads = download_table(browser["resources"], server.url, args.model)
    finally:
        server.stop()

    lines = [
        f"Model: `{args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}`; "
        f"{args.rounds} rounds, each a fresh process (a fresh browser profile) per runtime; "
        f"{args.words} words per generation (temperature 1, seeded, never ending early), batch 1, "
        f"{args.warmup:g} s of generating between the first generation and the timed ones, "
        f"one thread. Chromium {browser.get('version')} headless; Node {_node_version()}; "
        f"Python {sys.version.split()[0]}.",
        "",
        "| runtime | cold start: load (fetch/read + session) | first word | ms/word, first generation | "
        "ms/word after warm-up (median; min–max) |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        load_ms = statistics.median(r["load_ms"] for r in runs)
        first = statistics.median(r["first_word_ms"] for r in runs)
        per_word = [m for r in runs for m in r["ms_per_word"]]
        fresh = statistics.median(r["fresh_ms_per_word"] for r in runs)
        lines.append(
            f"| {name} | {load_ms:.0f} ms | {first:.1f} ms | {fresh:.2f} | "
            f"{statistics.median(per_word):.2f} ({min(per_word):.2f}–{max(per_word):.2f}) |"
        )
    lines += ["", *webgpu_lines(webgpu_default, webgpu)]
    lines += [
        "",
        "Bytes the benchmark page downloaded (its own files left out), raw and compressed:",
        "",
        *downloads,
    ]
    return lines


def webgpu_lines(default: dict[str, Any], flagged: dict[str, Any]) -> list[str]:
    """What WebGPU this Chromium offers, as is and with --enable-unsafe-webgpu, and how fast it ran."""
    offered = "no adapter" if "unavailable" in default else "an adapter"
    lines = [f"WebGPU: headless Chromium as it starts offers {offered} ({default.get('unavailable', 'ok')})."]
    if "unavailable" in flagged:
        return [*lines, f"With --enable-unsafe-webgpu: still none ({flagged['unavailable']})."]
    adapter = ", ".join(f"{k} {v}" for k, v in (flagged.get("adapter") or {}).items() if v)
    per_word = statistics.median(flagged["ms_per_word"])
    return [
        *lines,
        f"With --enable-unsafe-webgpu it offers one ({adapter or 'no details'}); the webgpu execution "
        f"provider (falling back to WASM for the ops it lacks) then runs at {per_word:.2f} ms/word, "
        f"cold load {flagged['load_ms']:.0f} ms.",
    ]


def _node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
