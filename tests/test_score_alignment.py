"""The score view's alignment of scored words to the text as typed (serve/static/align.js), run under
Node: combining marks typed in another order than Unicode's canonical one, and emoji sequences."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ALIGN = Path(__file__).resolve().parents[1] / "serve" / "static" / "align.js"
SCRIPT = """
import { alignWords } from %s;
const cases = JSON.parse(process.argv[1]);
const shown = (text, spans) => spans.map((s) => [text.slice(s.start, s.end), s.words.map((w) => w.word)]);
const scored = (words) => words.map((word) => ({ word }));
console.log(JSON.stringify(cases.map(([text, words]) => shown(text, alignWords(text, scored(words))))));
"""


def spans(cases: list[tuple[str, list[str]]]) -> list[list[list]]:
    if shutil.which("node") is None:
        if os.environ.get("NEXTWORD_REQUIRE_WEB") == "1":
            pytest.fail("node is missing; NEXTWORD_REQUIRE_WEB=1 asks for the JavaScript tests")
        pytest.skip("node is missing: the page's alignment runs in JavaScript")
    script = SCRIPT % json.dumps(ALIGN.as_uri())
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_marks_typed_out_of_canonical_order_still_match_their_words():
    """An Arabic shadda typed before its vowel: the token (NFKC) has the vowel first. Two such words in a
    row were shown as one span holding both."""
    canonical = "يُحِبُّ الرَّجُلَ"
    typed = canonical.replace("\u064f\u0651", "\u0651\u064f").replace("\u064e\u0651", "\u0651\u064e")
    assert typed != canonical
    (found,) = spans([(typed, canonical.split())])
    assert found == [[word, [canonical.split()[i]]] for i, word in enumerate(typed.split())]


def test_tokens_of_one_emoji_share_its_text():
    """A skin tone or the second letter of a flag is a token of its own: it had a span of no width."""
    (found,) = spans([("great 👍🏽 ok 🇫🇷", ["great", "👍", "🏽", "ok", "🇫", "🇷"])])
    assert found == [["great", ["great"]], ["👍🏽", ["👍", "🏽"]], ["ok", ["ok"]], ["🇫🇷", ["🇫", "🇷"]]]
