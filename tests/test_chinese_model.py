"""A tiny model trained on a generated Chinese corpus: its tokenizer is format 5, one token per Han
ideograph, and the text it generates has no space between two ideographs (a word-level vocabulary of
version 4 held whole clauses, and decoding put a space between every two tokens)."""

from __future__ import annotations

import random
import re

import pytest

from helpers import write_corpus

SUBJECTS = ["我", "他", "我们", "老师", "学生"]
VERBS = ["喜欢", "想", "正在"]
OBJECTS = ["吃苹果", "看书", "学习中文", "喝茶"]
HAN = "\u3400-\u4dbf\u4e00-\u9fff"
HAN_CHARACTERS = set("".join(SUBJECTS + VERBS + OBJECTS))


@pytest.mark.slow
@pytest.mark.train
def test_a_model_trained_on_chinese_splits_and_writes_ideographs(tmp_path, capsys):
    from nextword.export import ExportConfig, export
    from nextword.runtime import TokenizerConfig, load
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train

    rng = random.Random(0)

    def sentence() -> str:
        return rng.choice(SUBJECTS) + rng.choice(VERBS) + rng.choice(OBJECTS) + rng.choice("。！，？")

    documents = ["".join(sentence() for _ in range(rng.randint(2, 4))) for _ in range(120)]
    files = write_corpus(tmp_path / "corpus", documents)
    run, out = str(tmp_path / "run"), str(tmp_path / "zh.onnx")
    arch = ModelConfig(embedding_dim=16, lstm_units=32, num_layers=1, dropout=0.0)
    corpus = CorpusConfig(paths=(str(files["jsonl"]),))
    train(
        TrainConfig(
            out=run,
            corpus=corpus,
            tokenizer=TokenizerConfig(),
            model=arch,
            seq_len=16,
            batch_size=8,
            learning_rate=1e-2,
            epochs=2,
            verbose=0,
        )
    )
    export(ExportConfig(run_dir=run, out=out, evaluate=False, tune_cache=False))

    model = load(out)
    tokenizer = model.tokenizer
    assert tokenizer.version == 5
    words = [t for t in tokenizer.tokens[3:] if re.search(f"[{HAN}]", t)]
    assert words and all(len(t) == 1 for t in words), words  # no clause, no two-ideograph word
    assert {"学", "习", "中", "文", "。"} <= set(tokenizer.tokens)
    texts = [model.generate(prompt, max_words=30, seed=seed) for seed in range(3) for prompt in ["", "我想"]]
    joined = "".join(texts)
    assert len(re.findall(f"[{HAN}]", joined)) > 20, texts
    assert not re.search(f"[{HAN}] +[{HAN}]", joined), texts  # ideographs written together
    assert not re.search(f"[{HAN}] +[。，]", joined), texts
    # the corpus's full-width marks come back full-width (NFKC made them ASCII: "喝茶, 学生" was written)
    assert "\uff0c" in joined and not re.search("[,!?] ", joined), texts
    marked = next(t for t in texts if "\uff0c" in t)
    seed = texts.index(marked) // 2
    prompt = ["", "我想"][texts.index(marked) % 2]
    cut = marked[: marked.index("\uff0c")]
    for typed in ("\uff0c", ","):  # a stop string typed either way cuts where the text has the mark
        assert model.generate(prompt, max_words=30, seed=seed, stop=typed) == cut
    text = "我想喝茶。学生喜欢看书。"
    assert tokenizer.decode(tokenizer.encode(text)) == text  # written back as it was typed
    assert model.generate("我想", max_words=1, temperature=0)[:1] in HAN_CHARACTERS  # no space after 想
    from nextword.cli.main import main

    assert main(["info", out]) == 0
    described = "(tokenizer format 5: as 4, and each Han ideograph is a word of its own)"
    assert described in capsys.readouterr().out
