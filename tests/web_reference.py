"""Reference outputs of the Python runtime for the JavaScript runtime's parity tests (tests/test_web.py).

Each function returns JSON-ready data: inputs, and what the Python runtime makes of them. The Node tests
under web/test/ read it and check that nextword-web gives the same. float32 arrays travel as base64 of
their little-endian bytes, integers that may not fit a double as strings.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nextword.runtime.stepper import ForwardStepper

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"

# Strings whose tokenization depends on the finer points of Python's Unicode handling: NFKC, \w, \s,
# \d, [a-z] under IGNORECASE, lower() with final sigma, upper() at sentence starts, versions.
TRICKY_TEXTS = [
    # case mappings newer than some Pythons' Unicode (16.0: Latin lambda, Garay): Python's tables, not the
    # engine's toLowerCase()
    "\ua7da\ua7db \ua7cb \U00010d50\U00010d70 \ua7dc",
    "ΟΔΟΣ ΣΑΣ Σ ΑΣ. Α\u0308Σ ΑΣ\u0308Β 'ΑΣ' ΑΣ1",
    "İstanbul ıı İİ Iı (1ı) (1İ) (12A) (3K) (4\u017f)",
    "STRASSE straße ẞ ß ŉ ǅ ǈ ǆ ΐ ﬃ ﬅ",
    "ＡＢＣ１２３ （１２） x² H₂O ①② ½ ㎏ ℡",
    "٣٫٥ (١٢) (१२) ٣,٥ 3,٥ Ⅻ 〇 々 ᛮ",
    "e\u0301 ﬀ\u0301 한국어 \u1112\u1161\u11ab 神经网络 ｶﾀｶﾅ",
    "😀 👍🏽 🧠 👨\u200d👩\u200d👧 ©® ™ ∑ ∞",
    "¿qué? ¡sí! مرحبا، كيف؟ نعم؛ لا۔ है। ॥ ❤️ 🇫🇷🇩🇪 🇫 x 🇷 1️⃣ می\u200cخواهم a\u200d b \u200c",
    "हिन्दी नमस्ते। نصٌّ عَرَبِيّ שָׁלוֹם צה״ל col·lecció ·x y· בֵּית־סֵפֶר ٣٫٥ ١٬٠٠٠ x٫ ٫٣",
    "İstanbul x\u0304 \u0301a 1\u0301,2 a-\u0301 \u20dd",
    "#\ufe0f\u20e3 *\u20e3 🏴\U000e0067\U000e007f x \U000e0067",
    "it works. (it runs.) then (twice) it stops. ¿por qué? ¡sí! hola, ¿qué? ((a)) . ( b",
    "a\u00a0b\u2003c\u3000d\u200be\u1680f\u180eg\u2028h\u2029i\ufeffj",
    "k\x1cl\x1dm\x1en\x1fo\x85p\x00q\x7fr\x9fs\t\n\r\x0b\x0ct",
    "new \U0001e030 \U0001fae8 \U00011f04\U00011f05 \U0001e4d0 \U00031350 end",
    '«quoted» „this“ `tick´ it‘s ‛odd′ ‟x” "plain"',
    "1,000,000 1,2 a,1 1,a 3.5.6 e.g. U.S.A. and/or/not x--y 'tis rock'n'roll -5 5- a- --",
    "(12a') (102, 104) (10-12) ( 7 ) (7b'') (a) (ii) (12)(13) x(1)y",
    # the dot after initials ends no sentence; a percent sign is glued to a number
    "as e.g. this, i.e. that, a.k.a. x. the u.s. law. 1.2. w.sub.ij. x_.y. ab.c. α.β. (e.g. it) e.g.. so",
    "90% 9 % a % ٣% 1.5%. %% x2% (10%) 10%, 20 %",
    "\uffff \ue000 \U0010fffd \U000e0041 \u0378 \u0530",
    # what version 4 drops (a zero-width space: a space), and the joiners and emoji parts it keeps
    "infor\u00admation net\u200bwork\u200b \ufeffThe a\u200e b\u200f \u202eevil\u202c \u2066x\u2069 "
    "w\u2060j f\u2061(x) 2\u20623 \u061cع \u180e \U0001bca0 \U0001d173 \u00ad(12)\u00ad x\u00ad\u0301",
    # each of them between two letters, and the characters beside their ranges, which stay
    " ".join(f"a{chr(c)}b" for c in [0xAD, 0x61C, 0x180E, *range(0x200B, 0x2010), *range(0x2028, 0x2030)])
    + " "
    + " ".join(f"a{chr(c)}b" for c in [*range(0x205F, 0x2071), 0xFEFF, 0xFEFE, 0xFF00])
    + " "
    + " ".join(f"a{chr(c)}b" for c in [*range(0x1BC9F, 0x1BCA5), *range(0x1D172, 0x1D17C)]),
]
# Tokenizer format 5's rules at their edges: what NFKC makes Han (Kangxi radicals, circled, squared and
# compatibility ideographs), the ranges' neighbours (Yi, CJK strokes, hexagrams), the tatweel in
# presentation forms and between marks, quotes beside Hebrew letters (full-width, pointed, presentation
# forms, at a word's edge); decoding's unspaced scripts, CJK marks, Greek and Armenian sentence ends
TRICKY_TEXTS += [
    "⼀⼆ ㊀㈠ ㍻ 🈐 豈 \ufa0e\ufa0f \U0002f800 \U0003134a \u3004\u3005\u3006\u3007\u3008 \u4dbf\u4dc0 "
    "\u9fff\ua000ꀁ \u31c0 \u3400x 中-文 3.5中 中's <unk>中 〡〸中",
    '\ufe71 \ufe77ب بـَـّ ـ \u0640\u0654 ا\u0640\u0654 כ\uff02ב ה\u05b8"ב "א" א"" ""ב '
    '\ufb2e"\ufb21 א"b a"ב א""ב א\u00ad"ב',
    "ΤΙ ΛΕΣ\u037e ΚΑΛΆ; ok; Ἀθῆναι; 12; ԻՆՉ ԷՍ։ ԼԱՎ ՝ ՜ ՞ 「引用」『二重』【注】"
    "〔注〕〈a〉《b》〖c〗〘d〙〚e〛〝f〞〟 、。",
    "テスト。テスト! ｶﾀｶﾅ。ㇰㇱ ひらがな、漢字 한국어. ไทย ลาว ລາວ ខ្មែរ မြန်မာ 50٪ ٥٠ ٪ x٪",
    # each end of each Han range between two letters, and the code point just outside it
    " ".join(
        f"a{chr(c)}b"
        for first, last in [
            (0x3005, 0x3007),
            (0x3400, 0x4DBF),
            (0x4E00, 0x9FFF),
            (0xF900, 0xFAFF),
            (0x20000, 0x3FFFF),
        ]
        for c in (first - 1, first, last, last + 1)
    ),
    # the Hebrew letters' range at both ends of a gershayim typed as '"', and one a dropped mark hides
    'ת"א א"ת \u05cf"א א"\u05eb צה\u200f"ל',
]

# From the fourth on, they lose a figure reference between a lone high and a lone low surrogate: still
# two tokens.
LONE_SURROGATE_TEXTS = [
    "\ud800",
    "a\udc00b",
    "\udbff x \udfff \ud83d",
    "\ud83d(1)\ude00",
    "x \ud83d (1)(2) \ude00y",
    "\ud83d(1)\ude00(2)\ude01 (3) ",
    "\u03a3\udbff (3a)\udfff\u03a3 \u0130",
    # ... or lose a character that only formats text (tokenizer format 4) between them
    "\ud800\u00ad\udc00",
    "\udbff\u00ad\udc00 \ud800\u00ad\udfff \udbff\ufeff\udfff \udc00\u00ad\ud800",
    "a\ud83d\u00ad\u2060\ude00b \ud83d\u200b\ude00 (1)\ufeff\udc00 \udbff\ufeff(2)\udfff",
    # ... or lose a tatweel (format 5) between them, or hold Han ideographs
    "\ud800\u0640\udc00 \udbff\u00ad\u0640\u0640\udfff \ud83d\u0640\ude00\u4e2d\ud840 \U00020000\udc00",
    # ... format 5's rules in the pieces of a text cut where a dropped soft hyphen joined two of them
    '\ud800\u00ad\udc00 צה"ל 中, كبـير',
]


def f32_b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def python_tokenizer_texts() -> list[str]:
    """The Python tests' own tokenizer strings, plus the tricky ones above."""
    from tokenizer_cases import DECODE_CASES, TOKENIZE_CASES

    texts = [text for text, _ in TOKENIZE_CASES] + [text for text, _ in DECODE_CASES]
    texts += [
        "The CPU (12) runs",
        "steps (a) and (ii)",
        "the network ( a model ) learns . it works , well ? yes !",
        "the network (a model) learns. it works, well? yes!",
        "Ünïcode wörds, and more words.",
        "<eod> <unk> <pad> word",
        "the <UNK> layer<unk>s a<unk>b <<unk>> <unk <unk > < unk> <unk>>",
    ]
    return texts + TRICKY_TEXTS


def tokenizer_reference(bundled_json: str) -> dict[str, Any]:
    """Tokens, ids, decoded text and pieces for every test string, under four tokenizers built here (of
    version 5), the bundled model's, and the first of them as a version-1 tokenizer (a literal ``<unk>``
    split into ``<``, ``unk``, ``>``: files exported before version 2 keep that rule), as a version-3
    one (characters that only format text are symbols of their own) and as a version-4 one (Han runs
    are words, the tatweel stays, a Hebrew ``"`` is a quotation mark)."""
    from nextword.runtime.tokenizer import Tokenizer, TokenizerConfig, tokenize

    texts = python_tokenizer_texts()
    configs = [
        TokenizerConfig(min_count=1),
        TokenizerConfig(min_count=1, lowercase=False),
        TokenizerConfig(min_count=1, drop_figure_refs=False),
        TokenizerConfig(min_count=1, lowercase=False, drop_figure_refs=False),
    ]
    tokenizers = [Tokenizer.build(texts, config) for config in configs] + [Tokenizer.from_json(bundled_json)]
    first = tokenizers[0]
    assert first.version == 5  # its texts hold Han ideographs
    tokenizers.append(Tokenizer(first.tokens, first.config, version=1))
    assert tokenizers[-1].tokenize("a <unk> b") != first.tokenize("a <unk> b")  # the rules differ
    tokenizers.append(Tokenizer(first.tokens, first.config, version=3))
    assert tokenizers[-1].tokenize("a\u00adb") != first.tokenize("a\u00adb")
    tokenizers.append(Tokenizer(first.tokens, first.config, version=4))
    assert tokenizers[-1].tokenize("中文") != first.tokenize("中文")
    cases = []
    for tokenizer in tokenizers:
        rows = []
        for text in texts:
            ids = tokenizer.encode(text)
            tokens = [tokenizer.token_of(i) for i in ids]
            rows.append(
                {
                    "text": text,
                    "tokens": tokenizer.tokenize(text),
                    "ids": ids,
                    "decoded": tokenizer.decode(ids),
                    "decoded_with_ends": tokenizer.decode([2, *ids, 2, *ids[:3], 0]),
                    "pieces_after_open": list(tokenizer.pieces(tokens, previous="(")),
                    "pieces_after_period": list(tokenizer.pieces(tokens, previous=".")),
                    # after each prefix, padding between the tokens (a prompt given as ids may hold it)
                    "begins_sentence": [
                        tokenizer.begins_sentence(reversed([t for u in tokens[:k] for t in ("<pad>", u)]))
                        for k in range(len(tokens) + 1)
                    ],
                }
            )
        cases.append({"json": tokenizer.to_json(), "rows": rows})
    lone = [{"text": t, "tokens": tokenize(t, configs[0])} for t in LONE_SURROGATE_TEXTS]
    return {"cases": cases, "lone_surrogates": lone, "from_json_errors": _from_json_errors(tokenizers[0])}


def _from_json_errors(tokenizer) -> list[dict[str, str]]:
    """Malformed tokenizer JSON and Python's message for each."""
    from nextword.runtime.tokenizer import Tokenizer

    base = json.loads(tokenizer.to_json())

    def mutated(change: Callable[[dict], None]) -> str:
        data = json.loads(json.dumps(base))
        change(data)
        return json.dumps(data, ensure_ascii=False)

    texts = [
        mutated(lambda d: d.update(version=99)),
        mutated(lambda d: d.update(version=1.0)),
        mutated(lambda d: d.update(version=2.0)),
        mutated(lambda d: d.update(version=3)),
        mutated(lambda d: d.update(version=0)),
        mutated(lambda d: d.update(version=True)),
        mutated(lambda d: d.update(version="1")),
        mutated(lambda d: d.update(format="other")),
        mutated(lambda d: d["tokens"].append(d["tokens"][5])),
        mutated(lambda d: d["tokens"].pop(0)),
        mutated(lambda d: d["tokens"].__setitem__(1, 7)),
        mutated(lambda d: d["tokens"].append("")),
        mutated(lambda d: d["tokens"].append(None)),
        mutated(lambda d: d["tokens"].append("two words")),
        mutated(lambda d: d["tokens"].append("bell\x07")),
        mutated(lambda d: d["tokens"].append("\ud800")),
        mutated(lambda d: d["tokens"].append("ab" * 501)),
        mutated(lambda d: d["tokens"].append({"k": [1.5, -0.0, 1e-7, 1e16, 2**70]})),
        mutated(lambda d: d["config"].update(colour="blue", Ärger=1, zz=2)),
        mutated(lambda d: d["config"].update(min_count=0)),
        mutated(lambda d: d["config"].update(min_count=1.5)),
        mutated(lambda d: d["config"].update(max_vocab=3)),
        mutated(lambda d: d["config"].update(max_vocab=True)),
        mutated(lambda d: d["config"].update(lowercase="yes")),
        mutated(lambda d: d["config"].update(drop_figure_refs=0)),
        mutated(lambda d: d.update(config=[])),
        mutated(lambda d: d.update(tokens="abc")),
        mutated(lambda d: d.pop("tokens")),
        '{"format": "nextword.tokenizer", "version": 1, "config": {}, "tokens": ["<pad>", "<unk>", "<eod>"]}',
        "[1, 2]",
        "{not json",
        "",
        "\ufeff{}",
        '{"a": 1,}',
        '{"a" 1}',
        '["\\x"]',
        '["\\u12"]',
        '"abc',
        "1" * 4400,
        "[" * 5000,
        '{"format": "nextword.tokenizer", "version": NaN}',
        '{"format": "nextword.tokenizer", "version": -Infinity}',
        '{"format": "nextword.tokenizer", "version": 1e400}',
        '{"format": "nextword.tokenizer", "version": "v\\u00e9\\ud83d\\ude00\\ud800\\n\'"}',
    ]
    if sys.version_info >= (3, 13):  # its json module words these two otherwise than 3.11's, which
        texts = [text for text in texts if text not in ('{"a": 1,}', "[" * 5000)]  # nextword-web speaks
    out = []
    for text in texts:
        try:
            Tokenizer.from_json(text)
            message = None
        except ValueError as exc:
            message = str(exc)
        out.append({"json": text, "message": message})
    return out


def sampler_reference(model) -> dict[str, Any]:
    """sample_next on real and random logits under many settings: the ids Python draws."""
    from nextword.runtime.sampling import sample_next

    prompts = ["a neural network", "the present invention relates to", "", "each neuron has", "method"]
    ids = [model.prompt_ids(p) for p in prompts]
    rows = []
    for prompt in ids:
        last, _ = model.feed(np.asarray([prompt]), model.initial_state(1))
        rows.append(last[0])
    real = np.stack(rows).astype(np.float32)  # (5, V)
    rng = np.random.default_rng(7)
    random_sets = {
        "real": real,
        "random_300": (rng.standard_normal((4, 300)) * 3).astype(np.float32),
        "random_128": (rng.standard_normal((3, 128)) * 5).astype(np.float32),
        "random_1000_flat": (rng.standard_normal((3, 1000)) * 0.05).astype(np.float32),
        "ties": (np.round(rng.standard_normal((3, 700)) * 4) / 2).astype(np.float32),
        "dead_rows": np.where(
            np.arange(4)[:, None] % 2 == 1, -np.inf, rng.standard_normal((4, 200)) * 2
        ).astype(np.float32),
    }
    settings = [
        {"temperature": 0.0},
        {"temperature": 1.0},
        {"temperature": 0.7},
        {"temperature": 1.3},
        {"temperature": 3.0},
        {"temperature": 0.05},
        {"temperature": 1.0, "top_k": 1},
        {"temperature": 1.0, "top_k": 5},
        {"temperature": 0.8, "top_k": 40},
        {"temperature": 1.0, "top_p": 0.5},
        {"temperature": 1.0, "top_p": 0.9},
        {"temperature": 0.9, "top_p": 0.999},
        {"temperature": 1.0, "top_p": 1.0},
        {"temperature": 0.8, "top_k": 40, "top_p": 0.9},
        {"temperature": 1.2, "top_k": 250, "top_p": 0.95},
    ]
    cases = []
    for name, logits in random_sets.items():
        for setting in settings:
            for seed in (0, 1, 2**40 + 3):
                rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(logits))]
                banned = [0, 1] if name == "real" else []
                draws = [sample_next(logits, **setting, rngs=rngs, banned=banned).tolist() for _ in range(4)]
                cases.append({"set": name, **setting, "seed": str(seed), "banned": banned, "draws": draws})
    logit_sets = {
        name: {"rows": len(v), "vocab": v.shape[1], "data": f32_b64(v)} for name, v in random_sets.items()
    }
    return {"logits": logit_sets, "cases": cases, **_numeric_reference(real)}


def _numeric_reference(real: np.ndarray) -> dict[str, Any]:
    """numpy's float32 exp, log and sums, on values like the sampler's and beam search's."""
    rng = np.random.default_rng(11)
    x = np.concatenate(
        [
            (real[0] - real[0].max()).astype(np.float32),
            (-rng.random(200_000) * 110).astype(np.float32),
            rng.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
            np.array([0.0, -0.0, np.inf, -np.inf, 88.72283935546875, -103.97208404541015625], np.float32),
        ]
    )
    # beam search takes the log of a row's sum of exps: from 1 to the vocabulary's size
    x_log = np.concatenate(
        [
            (1 + rng.random(200_000) * 10_000).astype(np.float32),
            (1 + rng.random(20_000)).astype(np.float32),
            rng.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
            np.array([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan, -1.0, 1e-45], np.float32),
            np.array([0.70710677, 0.7071068], np.float32),  # either side of the mantissa's fold
        ]
    )
    kernels = {}
    for name, fn, inputs in (("exp", np.exp, x), ("log", np.log, x_log)):
        with np.errstate(all="ignore"):
            y = fn(inputs)
            correctly_rounded = fn(inputs.astype(np.float64)).astype(np.float32)
        finite = np.isfinite(y)
        flavour = "simd" if (y[finite] != correctly_rounded[finite]).any() else "libm"
        kernels[name] = {"flavour": flavour, "x": f32_b64(inputs), "y": f32_b64(y)}
    sums = []
    for n in (1, 7, 8, 9, 127, 128, 129, 300, 8192, 8193, 8664, 20000):
        a = (rng.random(n) ** 6).astype(np.float32) * (rng.random(n) < 0.9)
        starts = np.arange(0, n, 128)
        sums.append(
            {
                "data": f32_b64(a),
                "reduceat": f32_b64(np.add.reduceat(a, starts)),
                "sum64": float(a[None].sum(axis=-1, dtype=np.float64)[0]),
                "sum32": float(a[None].sum(axis=-1)[0]),  # a row's float32 sum, as log_softmax takes it
            }
        )
    return {**kernels, "sums": sums}


def rng_reference() -> list[dict[str, Any]]:
    """SeedSequence(seed).spawn(n) -> default_rng(child).random() draws."""
    out = []
    for seed in (0, 1, 42, 2**32 - 1, 2**32, 2**64 + 5, 2**128 + 99, 10**40):
        children = np.random.SeedSequence(seed).spawn(3)
        draws = [[g.random() for _ in range(5)] for g in map(np.random.default_rng, children)]
        out.append({"seed": str(seed), "draws": draws})
    return out


def run_node(test_file: str, reference: dict[str, Any], folder: Path, timeout: float = 900) -> str:
    """Run one Node test file of web/test against ``reference``; returns its output, fails on failure."""
    path = folder / f"{Path(test_file).stem}-reference.json"
    path.write_text(json.dumps(reference, allow_nan=True), encoding="utf-8")
    # a test that never settles fails alone, named, rather than holding the run until ``timeout``
    per_test = f"--test-timeout={int(min(timeout, 300) * 1000)}"
    result = subprocess.run(
        ["node", "--test", per_test, "--test-reporter=spec", str(WEB / "test" / test_file)],
        cwd=WEB,
        env={**_environ(), "NEXTWORD_WEB_REFERENCE": str(path)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test {test_file} failed:\n{output[-12000:]}"
    return output


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("NODE_OPTIONS")}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


GREEDY_PROMPTS = [
    "a neural network",
    "the present invention relates to",
    "",
    "   ",
    "a method for training ",
    "The System (12) comprises",
    "each neuron",
    "wherein the weights are",
    "a",
    "the processor receives an input signal.",
    "unknownwordxyz and another qqq",
    "an apparatus, comprising:",
    "in one embodiment, the",
    "ΑΣ ünïcode ﬁlter ＡＢＣ",
    "deep learning",
    "the output layer (optional) emits 3.5 units;",
    "a plurality of",
    "the",
    "according to claim 1,",
    "image recognition using convolutional",
    "a neural network " * 90,  # over 256 tokens: the prompt is fed in two rounds
    "what? yes! no.",
    "training data",
    "speech",
]
# Prompts that end in a mark an English vocabulary lacks: the next word is glued to it, and capitalized
# where a sentence began (greedy alone, in beams and in suggestions); after initials, no capital, and
# after a number, a percent sign glued to it.
MARK_PROMPTS = ["the network ¿", "it works. ¡", "the input, e.g.", "an accuracy of greater than 90"]

VARIANTS = [
    {},
    {"stop": ["."]},
    {"stop": ["\uff0c", "\uff4e\uff45\uff54\uff57\uff4f\uff52\uff4b"], "min_words": 3},  # full-width: NFKC
    {"min_words": 30},
    {"no_repeat_ngram_size": 2},
    {"no_repeat_ngram_size": 1, "max_words": 60},
    {"repetition_penalty": 1.3},
    {"repetition_penalty": 0.8, "no_repeat_ngram_size": 3},
    {"allow_unknown": True},
    {"stop_at_end": False, "max_words": 60},
    {"max_words": 0},
    {"max_words": 1},
]

SAMPLING = [
    {},
    {"temperature": 0.7},
    {"temperature": 1.4},
    {"top_k": 40},
    {"top_p": 0.9},
    {"temperature": 0.8, "top_k": 40, "top_p": 0.95},
    {"repetition_penalty": 1.2, "no_repeat_ngram_size": 3},
    {"stop": ["."], "min_words": 5},
    {"top_k": 1},
]

# Beam search: the rules, several prompts at once (batches of prompts x beams), hypotheses that end the
# document or run out of allowed words, length penalties (0, 1 and 2: powers every engine computes
# alike), stop strings cut after the search.
BEAMS = [
    {"num_beams": 4, "max_words": 30},
    {"num_beams": 2, "max_words": 20, "prompts": 4},
    {"num_beams": 5, "num_return_sequences": 3, "max_words": 25, "no_repeat_ngram_size": 3},
    {"num_beams": 3, "max_words": 25, "repetition_penalty": 1.4, "min_words": 10},
    {"num_beams": 8, "num_return_sequences": 8, "max_words": 30, "length_penalty": 0.0},
    {"num_beams": 4, "num_return_sequences": 2, "max_words": 30, "length_penalty": 2.0, "stop": ["\uff0e"]},
    {"num_beams": 3, "max_words": 40, "no_repeat_ngram_size": 1, "stop_at_end": False},
    {"num_beams": 2, "max_words": 15, "allow_unknown": True, "prompts": 3},
    {"num_beams": 4, "max_words": 0},
    {"num_beams": 4, "max_words": 25, "cache": True},  # where the file has a continuous cache
]

INVALID_OPTIONS = [
    {"max_words": -1},
    {"max_words": 20000},
    {"max_words": 2.5},
    {"min_words": 60},
    {"min_words": -2, "max_words": 10},
    {"temperature": -0.5},
    {"top_k": -1},
    {"top_k": 1.5},
    {"top_p": 0},
    {"top_p": 1.5},
    {"repetition_penalty": 0},
    {"repetition_penalty": -1},
    {"no_repeat_ngram_size": -1},
    {"num_return_sequences": 0},
    {"num_return_sequences": 300},
    {"num_beams": 0},
    {"seed": -1},
    {"seed": 1.5},
    {"num_beams": 2, "top_k": 40},
    {"num_beams": 2, "top_k": 40, "top_p": 0.9, "temperature": 0.7},
    {"num_beams": 2, "num_return_sequences": 3},
    {"num_return_sequences": 100, "prompts": 3},
]


def recorded_generate(
    model, prompt: str | list[str], options: dict[str, Any], states: bool = False
) -> tuple[Any, list[dict]]:
    """``model.generate`` with every session call recorded: the ids fed and the logits returned (with
    ``states``, also the last layer's new ``h``, which the continuous cache keeps)."""
    calls: list[dict[str, Any]] = []
    original = model.forward

    def forward(input_ids, state, logits_from=0):
        logits, new_state = original(input_ids, state, logits_from)
        ids, shape = np.asarray(input_ids).tolist(), list(logits.shape)
        calls.append({"ids": ids, "logits_from": logits_from, "logits": f32_b64(logits), "shape": shape})
        if states:
            calls[-1]["h"] = f32_b64(new_state[-2])
        return logits, new_state

    model.forward = forward  # the instance attributes shadow the methods for this call only
    model.stepper = lambda: ForwardStepper(model)  # single-token steps through the recorder too
    idle, model._idle = model._idle, []  # no bound stepper of an earlier call: each step is recorded
    try:
        text = model.generate(prompt, **options)
    finally:
        del model.forward, model.stepper
        model._idle = idle  # the recorder's steppers are not kept
    return text, calls


def greedy_steps(model, prompt: str, options: dict[str, Any], top: int = 10) -> tuple[str, list[dict]]:
    """``model.generate`` of one greedy text with what it chose from at every word: the scores after the
    rules (and the cache), as ``{"chosen": id, "top": the best ids, "scores": theirs}`` (best first, ties
    by id, ``-inf`` left out). nextword-web's parity test reads from them how close a near tie was."""
    from nextword.runtime import batch

    steps: list[dict[str, Any]] = []
    single, batched = batch.sample_one, batch.sample

    def record(row: np.ndarray, chosen: int) -> None:
        best = np.argsort(-row, kind="stable")[:top]
        best = best[np.isfinite(row[best])]
        steps.append({"chosen": chosen, "top": best.tolist(), "scores": row[best].tolist()})

    def sample_one(row, rng, temperature, top_k=None, top_p=None):
        scores = row.copy()
        chosen = single(row, rng, temperature, top_k, top_p)
        record(scores, chosen)
        return chosen

    def sample(scores, rngs, temperature, top_k=None, top_p=None):
        assert len(scores) == 1, "one prompt, one row"
        row = scores[0].copy()
        chosen = batched(scores, rngs, temperature, top_k, top_p)
        record(row, int(chosen[0]))
        return chosen

    batch.sample_one, batch.sample = sample_one, sample
    try:
        text = model.generate(prompt, **options)
    finally:
        batch.sample_one, batch.sample = single, batched
    return text, steps


def _suggestion_texts(model, prompt: str, k: int) -> dict[str, str]:
    """The text that appends each of the ``k`` next words to ``prompt``, as ``nextword serve`` shows it."""
    from nextword.runtime import PromptEnd

    end, texts = PromptEnd.of_text(model.tokenizer, prompt), {}
    for word, _ in model.next_words(prompt, k):
        text = model.tokenizer.piece(word, end.previous, end.starts)
        texts[word] = text.lstrip(" ") if end.lstrip else text
    return texts


def generation_reference(
    model, *, seeds: int, replays: int, greedy_prompts: list[str] = GREEDY_PROMPTS
) -> dict[str, Any]:
    """What the Python runtime generates, streams, suggests and scores for the cases above; for the
    first ``replays`` greedy and seeded cases, also every session call's input ids and output logits."""
    from nextword.runtime import GenerationConfig

    greedy = [
        {"prompt": p, "options": {"temperature": 0, "max_words": 40}, "text": None} for p in greedy_prompts
    ]
    greedy.append({"prompt": greedy_prompts, "options": {"temperature": 0, "max_words": 25}, "text": None})
    greedy += [
        {"prompt": p, "options": {"temperature": 0, "max_words": 40}, "text": None} for p in MARK_PROMPTS
    ]
    for i, variant in enumerate(VARIANTS):
        prompt = greedy_prompts[i % 8]
        greedy.append({"prompt": prompt, "options": {"temperature": 0, "max_words": 40, **variant}})
    sampled = []
    for seed in range(seeds):
        options = {"seed": seed, "max_words": 40, **SAMPLING[seed % len(SAMPLING)]}
        sampled.append({"prompt": greedy_prompts[seed % len(greedy_prompts)], "options": options})
    for seed in (3, 2**63 + 1):
        options = {"seed": seed, "max_words": 25, "num_return_sequences": 3, "temperature": 0.9}
        sampled.append({"prompt": greedy_prompts[:4], "options": options})
        sampled.append({"prompt": "a neural network", "options": {**options, "top_p": 0.8}})
    for case in greedy + sampled:
        case["text"] = model.generate(case["prompt"], **case["options"])
    for case in greedy:
        if isinstance(case["prompt"], str):
            text, case["steps"] = greedy_steps(model, case["prompt"], case["options"])
            assert text == case["text"]
    replayed = []
    for case in greedy[-len(VARIANTS) :][:replays] + sampled[-4:][:replays] + sampled[:replays]:
        text, calls = recorded_generate(model, case["prompt"], case["options"])
        assert text == case["text"]
        replayed.append({**case, "calls": calls})
    streams = []
    for case in sampled[:12] + greedy[-len(VARIANTS) :]:
        if isinstance(case["prompt"], str) and case["options"].get("num_return_sequences", 1) == 1:
            gen = model.generator(**case["options"])
            (row,) = gen.add(case["prompt"])
            gen.run()
            pieces = list(model.stream(case["prompt"], **case["options"]))
            streams.append({**case, "pieces": pieces, "reason": gen.finish_reason(row)})
    for case in greedy + sampled + streams + replayed:
        case["options"] = {k: str(v) if k == "seed" else v for k, v in case["options"].items()}
    beams = []
    for i, options in enumerate(BEAMS):
        options = dict(options)
        count = options.pop("prompts", 1)
        if options.get("cache") and model.cache_settings is None:
            continue
        prompt = [greedy_prompts[(i + j) % 8] for j in range(count)] if count > 1 else greedy_prompts[i % 8]
        text, calls = recorded_generate(model, prompt, options, states=True)
        # every session call's logits while they stay small (a few MB): the bundled model's only for the
        # shortest beam cases
        small = sum(len(call["logits"]) for call in calls) < 6_000_000
        beams.append({"prompt": prompt, "options": options, "text": text, "calls": calls if small else None})
    options = {"num_beams": 3, "max_words": 8}
    text, calls = recorded_generate(model, MARK_PROMPTS, options, states=True)
    beams.append({"prompt": MARK_PROMPTS, "options": options, "text": text, "calls": calls})
    next_words = [
        {"prompt": p, "words": model.next_words(p, 10), "texts": _suggestion_texts(model, p, 10)}
        for p in [*greedy_prompts[:8], *MARK_PROMPTS]
    ]
    scores = []
    for text in [*greedy_prompts[:10], "a neural network " * 200]:
        if len(model.prompt_ids(text)) >= 2:
            s = model.score(text)
            read = model.tokenizer.tokenize(text)
            pieces = list(model.tokenizer.pieces(read))
            words = [
                [w.word, w.logprob, w.unknown, t, p] for w, t, p in zip(s.words, read, pieces, strict=True)
            ]
            scores.append(
                {"text": text, "total": s.total_logprob, "perplexity": s.perplexity, "words": words}
            )
    errors = []
    for options in INVALID_OPTIONS:
        options = dict(options)
        prompts = options.pop("prompts", 1)
        try:
            model.generate(["x"] * prompts if prompts > 1 else "x", **options)
            message = None
        except ValueError as exc:
            message = str(exc)
        errors.append({"options": options, "prompts": prompts, "message": message})
    defaults = GenerationConfig().changes()
    return {
        "quantized": bool(model.info.config.get("export", {}).get("int8")),
        "greedy": greedy,
        "sampled": sampled,
        "replayed": replayed,
        "streams": streams,
        "beams": beams,
        "next_words": next_words,
        "scores": scores,
        "errors": errors,
        "info": {
            "vocab_size": model.vocab_size,
            "state_sizes": list(model.info.state_sizes),
            "format_version": model.info.format_version,
            "generation": {camel(k): v for k, v in model.info.generation.changes().items()},
            "defaults_changed": defaults,
        },
    }


@functools.cache
def _node_version() -> str | None:
    """``node --version`` where it is too old for the tests (Debian 12's Node 18 knows no --test-timeout:
    every test failed with "bad option"), else None."""
    found = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    parts = found.lstrip("v").split(".")
    major, minor = (int(p) if p.isdigit() else -1 for p in [*parts, "", ""][:2])
    return None if (major == 20 and minor >= 19) or (major == 22 and minor >= 12) or major > 22 else found


def need_node() -> None:
    """Skip the calling test where Node or web/node_modules is missing; fail it instead under
    ``NEXTWORD_REQUIRE_WEB=1`` (CI's setting where both are installed)."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed (Node 20+ runs nextword-web's tests)"
    elif (found := _node_version()) is not None:
        missing = f"Node ^20.19 or >=22.12 runs nextword-web's tests (its --test options), found {found}"
    elif not (WEB / "node_modules" / "onnxruntime-web").is_dir():
        missing = "web/node_modules is missing: run `make web-setup` (npm ci in web/)"
    if missing and os.environ.get("NEXTWORD_REQUIRE_WEB") == "1":
        pytest.fail(f"{missing}; NEXTWORD_REQUIRE_WEB=1 asks for the JavaScript tests")
    if missing:
        pytest.skip(missing)
