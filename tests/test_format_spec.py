"""docs/model-format.md is enough to read a model file: a reader written from that document alone
(onnxruntime, numpy, the standard library; nothing of nextword) gives the runtime's tokens, greedy
words and text under the file's decoding rules, and scores with and without the cache, on the bundled
file (tokenizer version 2, int8, cosine gated cache) and on a tiny model trained here on several
scripts (tokenizer version 3, fp32)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import re
import unicodedata
from collections import deque
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

BUNDLED = Path(__file__).resolve().parents[1] / "runtime" / "data" / "nextword-patents.onnx"


# Combining marks, categories Mn, Mc and Me (Unicode 14 in Python 3.11, the table the document names).
MARKS = "".join(chr(c) for c in range(0x300, 0x110000) if unicodedata.category(chr(c))[0] == "M")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
QUOTES = re.compile('["“”„‟«»`]')
APOSTROPHES = re.compile("[‘’‛′]")
FIGURE = re.compile(r"\s*\(\s*\d+[a-z]?'*(?:\s*[,-]\s*\d+[a-z]?'*)*\s*\)", re.IGNORECASE)


def _pattern(version: int) -> re.Pattern[str]:
    w = r"\w" + (MARKS if version == 3 else "")  # \w: letters, numbers and "_"
    join = "[-/'.]" if version < 3 else "[-/'.\u00b7\u05be\u05f3\u05f4\u200c\u200d]"
    digits = "," if version < 3 else "[,\u066b\u066c]"
    word = rf"[{w}]+(?:(?:{join}|(?<=\d){digits}(?=\d))[{w}]+)*"
    return re.compile(("<unk>|" if version > 1 else "") + word + rf"|[^{w}\s]")


PATTERNS = {v: _pattern(v) for v in (1, 2, 3)}
PATTERNS[4] = PATTERNS[5] = PATTERNS[3]
# Version 4's characters that only format text, as the document lists them, dropped before NFKC; the
# zero-width space (U+200B) becomes a space.
DROPPED = re.compile(
    "[\u00ad\u061c\u180e\u200e\u200f\u202a-\u202e\u2066-\u2069\u2060-\u2064\u206a-\u206f\ufeff"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a]"
)


# Version 5: the Han ideographs, each a token; the tatweel; a '"' between two Hebrew letters; an ASCII
# , ! ? : ; after a Basic Multilingual Plane ideograph or kana back in its full-width form
HAN = "\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
GERSHAYIM = re.compile('(?<=[\u05d0-\u05ea])"(?=[\u05d0-\u05ea])')
FULL_WIDTH = dict(zip(",!?:;", "\uff0c\uff01\uff1f\uff1a\uff1b", strict=True))
AFTER_IDEOGRAPH = re.compile(
    "(?<=[\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff])[,!?:;]"
)


def tokenize(text: str, config: dict, version: int) -> list[str]:
    if version >= 4:
        text = DROPPED.sub("", text.replace("\u200b", " "))
    text = unicodedata.normalize("NFKC", text)
    if version >= 5:
        text = unicodedata.normalize("NFKC", text.replace("\u0640", "")) if "\u0640" in text else text
        text = GERSHAYIM.sub("\u05f4", text)
        text = AFTER_IDEOGRAPH.sub(lambda m: FULL_WIDTH[m[0]], text)
    text = APOSTROPHES.sub("'", QUOTES.sub(" ", CONTROL.sub(" ", text)))
    text = FIGURE.sub("", text) if config["drop_figure_refs"] else text
    text = text.lower() if config["lowercase"] else text
    text = re.sub(f"[{HAN}]", r" \g<0> ", text) if version >= 5 else text
    return PATTERNS[version].findall(text)


NO_SPACE_BEFORE = set(".,;:)?!\u060c\u061b\u061f\u06d4\u0964\u0965\u200c\u200d\u20e3\u0589\u055d\u055c\u055e")
NO_SPACE_BEFORE |= set(map(chr, [*range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400), *range(0x1361, 0x1369)]))
NO_SPACE_BEFORE |= set("、。〉》」』】〕〗〙〛〞〟") | set(FULL_WIDTH.values())
NO_SPACE_AFTER = set("(¿¡\u200c\u200d〈《「『【〔〖〘〚〝")
UNSPACED = re.compile(
    f"[{HAN}\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3001-\u303f"
    "\uff0c\uff01\uff1f\uff1a\uff1b\u0e01-\u0e5b\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f]"
)
INITIALS = re.compile(r"[^\W\d_](\.[^\W\d_])+")
FLAGS = set(map(chr, range(0x1F1E6, 0x1F200)))
CONTINUES = re.compile(f"[{MARKS}\U000e0020-\U000e007f]")
GREEK_LETTER = re.compile(r"(?=[\u0370-\u03ff\u1f00-\u1fff])[^\W\d_]")


def ends_sentence(token: str, before: str | None) -> bool:
    """``.``, ``?``, ``!``, ``。`` or ``։``, but a ``.`` after initials (``before``: the token before it),
    and ``;`` after a Greek letter."""
    if token == ";":
        return before is not None and GREEK_LETTER.fullmatch(before[-1:]) is not None
    return token in (".", "?", "!", "。", "։") and not (
        token == "." and before and INITIALS.fullmatch(before)
    )


def write(tokens, lowercase, previous=None, starts=True, lstrip=False) -> str:
    """Detokenize; ``previous``/``starts``: the token before and whether the first begins a sentence."""
    text, paragraph = "", False
    for t in tokens:
        if t in ("<pad>", "<eod>"):
            if t == "<eod>":
                paragraph, previous, starts = paragraph or previous is not None, None, True
            continue
        joined = previous in NO_SPACE_AFTER or t in NO_SPACE_BEFORE or CONTINUES.match(t) is not None
        joined = joined or (t in "%٪" and re.search(r"\d$", previous or "") is not None)
        joined = joined or bool(UNSPACED.match(t) and UNSPACED.match((previous or " ")[-1]))
        space = "" if previous is None or joined or (t in FLAGS and previous in FLAGS) else " "
        capital = unicodedata.normalize("NFC", t[:1].upper() + t[1:])
        piece = ("\n\n" if paragraph else "") + space + (capital if lowercase and starts else t)
        text, paragraph = text + (piece.lstrip(" ") if lstrip and not text else piece), False
        previous, starts = t, ends_sentence(t, previous) or (starts and t in "()¿¡")
    return text


def ngram_bans(text: list[int], k: int) -> list[int]:
    """The ids that would complete a ``k``-gram already in ``text``: those that followed the last
    ``k - 1`` ids wherever they occurred before (every id of ``text`` for ``k = 1``; none for 0)."""
    if not k or len(text) < k - 1:
        return []
    tail = text[len(text) - k + 1 :]
    return [text[i + k - 1] for i in range(len(text) - k + 1) if text[i : i + k - 1] == tail]


def lse(x: np.ndarray) -> float:
    """log(sum(exp(x))) in float64."""
    x = np.asarray(x, np.float64)
    return float(x.max() + math.log(np.exp(x - x.max()).sum()))


class Reader:
    def __init__(self, path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        assert meta["nextword.format_version"] in ("2", "3")
        tok = json.loads(meta["nextword.tokenizer"])
        assert tok["format"] == "nextword.tokenizer" and tok["tokens"][:3] == ["<pad>", "<unk>", "<eod>"]
        self.tokens, self.config, self.version = tok["tokens"], tok["config"], tok["version"]
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.cache = json.loads(meta["nextword.cache"]) if "nextword.cache" in meta else None
        self.defaults = json.loads(meta.get("nextword.generation", "{}"))  # the decoding defaults
        self.widths = {
            i.name: i.shape[1] for i in self.session.get_inputs() if re.fullmatch(r"[hc]_\d+", i.name)
        }
        self.last_h = f"h_{len(self.widths) // 2 - 1}"  # the last LSTM layer's h: the cache's states

    def encode(self, text: str) -> list[int]:
        return [self.index.get(t, 1) for t in tokenize(text, self.config, self.version)]

    def run(self, ids, state, logits_from: int = -1):
        """Feed ``ids`` after ``state`` (None: zeros); the logits from ``logits_from`` on and the new
        state."""
        state = state or {n: np.zeros((1, w), np.float32) for n, w in self.widths.items()}
        feed = {"input_ids": np.array([ids], np.int64), "logits_from": np.array(logits_from, np.int64)}
        names = [o.name for o in self.session.get_outputs()]  # found by name: the order is not fixed
        out = dict(zip(names, self.session.run(None, {**state, **feed}), strict=True))
        logits = out["logits"][0]
        return logits[-1] if logits_from == -1 else logits, {n: out[n + "_out"] for n in self.widths}

    def greedy(self, prompt: str, n: int, cached: bool = False, **options) -> tuple[list[int], str]:
        """Greedy ids after ``prompt`` and the text they continue it with, under "Decoding rules":
        the file's decoding defaults, ``options`` overriding them."""
        rules = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "min_words": 0}
        rules.update({k: v for k, v in self.defaults.items() if k in rules}, **options)
        ids, cache, state, out = [2, *self.encode(prompt)], Cache(self.cache) if cached else None, None, []
        for token in [ids] if cache is None else [[i] for i in ids]:  # with a cache: a token per call
            logits, state = self.run(token, state)
            cache = cache and cache.observe(token[0], state[self.last_h][0])
        text, k = ids[1:], rules["no_repeat_ngram_size"]  # what the rules read: no opening <eod>
        while len(out) < n:
            scores = cache.mix_logits(logits) if cache else logits.copy()
            scores[[0, 1]] = -np.inf  # <pad> and <unk> are never generated
            scores[2] = -np.inf if len(out) < rules["min_words"] else scores[2]
            if (penalty := rules["repetition_penalty"]) != 1:
                seen = sorted(set(text))
                scores[seen] = np.where(scores[seen] > 0, scores[seen] / penalty, scores[seen] * penalty)
            scores[ngram_bans(text, k)] = -np.inf
            if (token := int(scores.argmax())) == 2:
                break
            out.append(token)
            text.append(token)
            logits, state = self.run([token], state)
            cache = cache and cache.observe(token, state[self.last_h][0])
        words = tokenize(prompt, self.config, self.version)  # as written: a word the vocabulary lacks too
        starts = True  # whether the continuation begins a sentence
        for before, t in zip([None, *words], words, strict=False):
            starts = ends_sentence(t, before) or (starts and t in "()¿¡")
        previous = words[-1] if words else None
        tokens = [self.tokens[i] for i in out]
        return out, write(tokens, self.config["lowercase"], previous, starts, prompt[-1:].isspace())

    def score(self, text: str, cached: bool = True) -> tuple[float, float]:
        """Total log-probability of ``text`` after <eod>, with the file's cache or the model alone
        (calls of 256 tokens, logits at every position), and its perplexity."""
        ids, cache, state, total = [2, *self.encode(text)], Cache(self.cache), None, 0.0
        if not cached:
            for start in range(0, len(ids) - 1, 256):
                logits, state = self.run(ids[start : min(start + 256, len(ids) - 1)], state, 0)
                for row, after in zip(logits, ids[start + 1 : start + 257], strict=True):
                    total += float(row.astype(np.float64)[after] - lse(row))
            return total, math.exp(-total / (len(ids) - 1))
        for token, after in itertools.pairwise(ids):
            logits, state = self.run([token], state)
            cache.observe(token, state[self.last_h][0])
            total += cache.log_prob(logits.astype(np.float64) - lse(logits), after)
        return total, math.exp(-total / (len(ids) - 1))


class Cache:
    """The continuous cache, as "The continuous cache" spells it out."""

    def __init__(self, settings: dict):
        self.s, self.query = settings, None
        self.keys, self.values = deque(maxlen=settings["window"]), deque(maxlen=settings["window"])

    def observe(self, token: int, h: np.ndarray) -> Cache:
        if self.query is not None:  # the pair (h_i, x_{i+1}) enters when x_{i+1} is fed
            self.keys.append(self.query)
            self.values.append(token)
        if self.s.get("similarity", "dot") == "cosine":
            norm = math.sqrt(float((h.astype(np.float64) ** 2).sum()))
            h = (h.astype(np.float64) / norm).astype(np.float32) if norm > 0 else h
        self.query = h
        return self

    def _parts(self) -> tuple[dict[int, float], float]:
        s = self.s["theta"] * (np.array(self.keys, np.float32) @ self.query).astype(np.float64)
        p: dict[int, float] = {}
        for w, v in zip(np.exp(s - lse(s)), self.values, strict=True):
            p[v] = p.get(v, 0.0) + w
        gate = self.s.get("gate")
        return p, gate[0] + gate[1] * lse(s) if gate else math.log(self.s["mix"] / (1 - self.s["mix"]))

    def log_prob(self, lp: np.ndarray, w: int) -> float:
        if not self.keys:
            return float(lp[w])
        p, z = self._parts()
        softplus = max(z, 0) + math.log1p(math.exp(-abs(z)))
        share, keep = z - softplus, -softplus
        if not self.s.get("gate"):
            share, keep = math.log(self.s["mix"]), math.log1p(-self.s["mix"])
        return float(np.logaddexp(lp[w] + keep, share + math.log(p[w]))) if w in p else float(lp[w] + keep)

    def mix_logits(self, logits: np.ndarray) -> np.ndarray:
        out = logits.copy()
        if self.keys:
            p, z = self._parts()
            for v, pv in p.items():
                out[v] = np.float32(np.logaddexp(float(logits[v]), z + lse(logits) + math.log(pv)))
        return out


SEP = " | "
PROBES = (
    " | the present invention"
    " | Hello, World! (12) foo (12a) (102, 104) (10-12) (12A) (12') x(3)y"
    ' | a"b don"t «hi» `tick` ‹single› | a\x01b a\x7fb a\u200bb | it’s ‘quoted’ ′prime ″'
    " | e.g. 3.5 1,000 and/or feed-forward co--op a_b U.S.A. | x² 3½ ﬁ ß ǆemal"
    " | ŞIK IŞIK İstanbul | नमस्ते दुनिया | مَرْحَبًا بِكُمْ ٣٫٥ ١٬٠٠٠ (٣)"
    " | שָׁלוֹם תל־אביב צה״ל | col·lecció می‌خواهم | ¿Qué tal? ¡Hola!"
    " | 👍🏽 👨‍👩‍👧 🇫🇷 #️⃣ 🏴󠁧󠁢󠁳󠁣󠁴󠁿 | <unk> <UNK> <pad> <eod> a<unk>b <<unk>>"
    " | x\ty\nz a\u2028b \ufeffbom \u0301x | 10:30 https://example.com rock'n'roll 'quoted'"
    " | 1,2,3 1, 000 a- -a | 90% 9 % a % e.g. this i.e. that. 1.2. w.sub.ij. next"
    " | infor\u00admation net\u200bwork a\u200eb \u202eevil\u202c w\u2060j"
    " \u2066x\u2069 \u061c\u0639 \U0001d173 "
    " | 我想喝茶。学生「你好」《书》、人々 〇 ⼀ 𠀋x | 私は毎日りんごを食べます テスト ｶﾀｶﾅ"
    " | 我想喝茶,你呢? 好:是;对! テスト, x,y 3,5 〇! 𠀋, 茶 , ！"
    ' | לארה"ב צה"ל "שלום" כ\uff02ב | كبـــير ا\u0640\u0654 \ufe71 | ΤΙ ΛΕΣ\u037e πού; a; 12;'
    " | ԻՆՉ Է։ լավ ՝ ሰላም። ጤና፣ 90٪ ٩٠ ٪ | ฉัน ชอบ กินข้าว ລາວ ខ្មែរ မြန်မာ | İstanbul. ΐ. ΐδε"
).split(SEP)  # the first is ""
PROMPTS = (
    " | the present invention | A neural network (12) is | The method of claim 1, wherein"
    " | zzqx blorf | the ¿ | Done. ¿¿ | What is it? | the ( | Ends with a space  | (the"
    " | नमस्ते | the input, e.g. | an accuracy of greater than 90"
).split(SEP)  # the first is ""


def runtime_greedy(model, prompt: str, n: int, cache: bool = False, **options):
    """The runtime's greedy ids and text: the file's decoding defaults, ``options`` overriding them."""
    gen = model.generator()
    config = dataclasses.replace(model.info.generation, temperature=0, max_words=n, cache=cache, **options)
    (row,) = gen.add(prompt, config)
    gen.run()
    return gen.tokens(row), gen.text(row)


def same_scores(path, texts: list[str]):
    """A reader and the runtime's model of ``path``, after checking their scores of ``texts``, with the
    file's cache (as `nextword score`) and without."""
    from nextword.runtime import load

    reader, model = Reader(path), load(path)
    for text, cached in itertools.product(texts, [True, False]):
        expected = model.score(text, cache=cached)
        assert reader.score(text, cached) == pytest.approx(
            (expected.total_logprob, expected.perplexity), rel=1e-6
        ), (text, cached)
    return reader, model


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("lowercase", [True, False])
def test_tokenizer(version, lowercase):
    from nextword.runtime.tokenizer import Tokenizer, TokenizerConfig

    config = {"lowercase": lowercase, "drop_figure_refs": lowercase}
    runtime = Tokenizer(["<pad>", "<unk>", "<eod>"], TokenizerConfig(**config), version)
    for text in PROBES:
        tokens = tokenize(text, config, version)
        assert tokens == runtime.tokenize(text), (version, text)
        assert write(tokens, lowercase) == "".join(runtime.pieces(tokens)), (version, text)  # as written


def test_bundled():
    text = "the present invention relates to a neural network. the neural network has a plurality of layers."
    reader, model = same_scores(BUNDLED, [" ".join([text] * 16), "A zzqx (3) x."])  # 288 words: two calls
    assert reader.version == 2 and reader.cache["similarity"] == "cosine"
    assert reader.defaults == {"no_repeat_ngram_size": 4}  # greedy text reads the decoding rules
    for prompt in PROMPTS:
        assert reader.encode(prompt) == model.tokenizer.encode(prompt)
        assert reader.greedy(prompt, 30) == runtime_greedy(model, prompt, 30), prompt
    for prompt in ["", "a neural network is trained by a neural network"]:
        assert reader.greedy(prompt, 30, cached=True) == runtime_greedy(model, prompt, 30, cache=True)


TINY_PROMPTS = " | नमस्ते | مَرْحَبًا | ¿Qué | Hola. ¿Qué tal | The zorax works 👍🏽 | x ¿ | ¡ | (".split(SEP)
RULES = [{"no_repeat_ngram_size": 1}, {"no_repeat_ngram_size": 2, "repetition_penalty": 1.5}]
RULES += [{"repetition_penalty": 0.5, "min_words": 8}]
TINY_TEXTS = ["¿Qué tal el zorax? ¡Muy bien! ¿Qué tal el zorax?", "नमस्ते दुनिया , यह tavum है । " * 3]
TRAIN = {"seq_len": 16, "batch_size": 8, "learning_rate": 1e-2, "epochs": 3, "verbose": 0}
NAMES = ["zorax", "quelin", "brinode", "tavum"]
PHRASES = (
    "नमस्ते दुनिया , यह {n} है । | مَرْحَبًا بِكُمْ فِي {n} ؟ | ¿Qué tal el {n}? ¡Muy bien!"
    " | The {n} works 👍🏽 and 🇫🇷 wins. | שָׁלוֹם {n} וְ col·lecció (12) ends."
    " | We saw {n} at 3.5 km, e.g. 1,000!"
).split(SEP)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tokenizer-version-3 model trained on several scripts, and copies of it carrying caches."""
    for module in ("tensorflow", "keras", "tf2onnx", "onnx"):
        pytest.importorskip(module, reason=f"{module} missing: install nextword[train]")
    import onnx

    from helpers import write_corpus
    from nextword.export import ExportConfig, export
    from nextword.runtime import TokenizerConfig
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train

    rng, folder = random.Random(0), tmp_path_factory.mktemp("spec")
    docs = [" ".join(rng.choice(PHRASES).format(n=rng.choice(NAMES)) for _ in range(4)) for _ in range(60)]
    files = write_corpus(folder / "corpus", docs)
    arch = ModelConfig(embedding_dim=16, lstm_units=32, num_layers=2, dropout=0.0)
    corpus, run = CorpusConfig(paths=(str(files["csv"]),)), str(folder / "run")
    train(TrainConfig(out=run, corpus=corpus, tokenizer=TokenizerConfig(min_count=1), model=arch, **TRAIN))
    export(ExportConfig(run_dir=run, out=str(folder / "m.onnx"), evaluate=False, tune_cache=False))
    paths = [folder / "m.onnx"]
    for name, version, cache in [
        ("dot", "2", {"theta": 0.5, "mix": 0.2, "window": 8}),
        ("cos", "3", {"theta": 3.0, "window": 16, "similarity": "cosine", "gate": [-1.5, 0.3]}),
    ]:
        proto = onnx.load(paths[0])
        next(p for p in proto.metadata_props if p.key == "nextword.format_version").value = version
        entry = proto.metadata_props.add()
        entry.key, entry.value = "nextword.cache", json.dumps({**cache, "tuning": {}})
        onnx.save(proto, folder / f"{name}.onnx")
        paths.append(folder / f"{name}.onnx")
    return paths


def test_tiny_version_3(tiny):
    reader, model = same_scores(tiny[0], [])
    assert reader.version == 3 and "नमस्ते" in reader.index and "مَرْحَبًا" in reader.index
    ended = 0  # greedy texts that <eod> ends though the rules forbid every id already in the text
    for prompt in TINY_PROMPTS:
        assert reader.encode(prompt) == model.tokenizer.encode(prompt)
        assert reader.greedy(prompt, 25) == runtime_greedy(model, prompt, 25), prompt
        for options in RULES:
            ids, text = reader.greedy(prompt, 25, **options)
            assert (ids, text) == runtime_greedy(model, prompt, 25, **options), (prompt, options)
            ended += options == RULES[0] and len(ids) < 25
    assert ended  # the <eod> opening the document is no word of the text
    rng = random.Random(1)  # detokenizing any ids, documents and padding included
    for _ in range(500):
        ids = [rng.randrange(len(reader.tokens)) for _ in range(rng.randint(1, 10))]
        assert write([reader.tokens[i] for i in ids], True) == model.tokenizer.decode(ids), ids
    for path in tiny[1:]:
        same_scores(path, TINY_TEXTS)
