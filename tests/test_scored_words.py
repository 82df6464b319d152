"""Each word of a scored text, on every surface: Python's ``WordScore`` has the vocabulary token scored
(``word``: ``<unk>`` for a word outside the vocabulary) and the word as read (``token``), as nextword-web's
score words do; ``nextword score --json`` gives the word as read under ``"word"``, as ``/v1/score`` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nextword.cli.main import main
from nextword.runtime import WordScore

WEB_SRC = Path(__file__).resolve().parents[1] / "web" / "src" / "index.js"
TEXT = "The network zzzqqq receives the weights."  # "zzzqqq" is outside the tiny model's vocabulary
WORDS = ["the", "network", "<unk>", "receives", "the", "weights", "."]
READ = ["the", "network", "zzzqqq", "receives", "the", "weights", "."]  # lowercased: the model lowercases


def test_a_scored_word_has_its_vocabulary_token_and_the_word_as_read(model):
    words = model.score(TEXT).words
    assert [w.word for w in words] == WORDS
    assert [w.token for w in words] == READ
    assert [w.unknown for w in words] == [w == "<unk>" for w in WORDS]
    assert [w.token for w in model.score(TEXT, cache=False).words] == READ
    with pytest.raises(ValueError, match="text must be a string, got int"):
        model.score(3)
    with pytest.raises(ValueError, match=r"text has no words to score .*: give a text with at least one"):
        model.score("  ")


def test_a_word_score_built_as_before_still_works():
    """Code that builds a WordScore(word, logprob, unknown) itself: ``token`` is then ``word``."""
    assert WordScore("the", -1.5, False) == WordScore("the", -1.5, False, "the")
    assert WordScore("the", -1.5, False).token == "the"
    assert WordScore(word="<unk>", logprob=-9.0, unknown=True, token="zzzqqq").token == "zzzqqq"
    assert WordScore("<unk>", -9.0, True).token == "<unk>"  # the word read was not given


def test_score_json_gives_the_word_as_read_as_the_server_does(capsys, model_path, model):
    code = main(["score", str(model_path), TEXT, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    words = json.loads(out)["words"]
    assert [w["word"] for w in words] == [w.token for w in model.score(TEXT).words] == READ
    assert [w["unknown"] for w in words] == [w.unknown for w in model.score(TEXT).words]
    assert "".join(w["text"] for w in words) == "The network zzzqqq receives the weights."
    assert set(words[0]) == {"word", "text", "logprob", "unknown"}  # the keys stay as documented


def test_javascript_score_words_have_pythons_word_and_token(model_path, model):
    if shutil.which("node") is None or not (WEB_SRC.parents[1] / "node_modules" / "onnxruntime-web").is_dir():
        if os.environ.get("NEXTWORD_REQUIRE_WEB") == "1":
            pytest.fail("node or web/node_modules is missing; NEXTWORD_REQUIRE_WEB=1 asks for the JS tests")
        pytest.skip("node or web/node_modules is missing (make web-setup)")
    script = (
        f"import {{ load }} from {json.dumps(WEB_SRC.as_uri())};\n"
        f"const model = await load({json.dumps(str(model_path))});\n"
        f"const {{ words }} = await model.score({json.dumps(TEXT)});\n"
        "console.log(JSON.stringify(words.map((w) => [w.word, w.token, w.unknown])));\n"
        "await model.release();\n"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    want = [[w.word, w.token, w.unknown] for w in model.score(TEXT).words]
    assert json.loads(done.stdout) == want
