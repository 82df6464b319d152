import json

import pytest
from tokenizer_cases import TOKENIZE_CASES

from helpers import synthetic_documents
from nextword.runtime.tokenizer import EOD, PAD, SPECIAL_TOKENS, UNK, Tokenizer, TokenizerConfig, tokenize

DEFAULT = TokenizerConfig()


@pytest.mark.parametrize(("text", "tokens"), TOKENIZE_CASES)
def test_tokenize(text, tokens):
    assert tokenize(text, DEFAULT) == tokens


def test_options_keep_case_and_figure_refs():
    config = TokenizerConfig(lowercase=False, drop_figure_refs=False)
    assert tokenize("The CPU (12) runs", config) == ["The", "CPU", "(", "12", ")", "runs"]


def test_enumerations_in_parentheses_are_not_figure_refs():
    assert tokenize("steps (a) and (ii)", DEFAULT) == ["steps", "(", "a", ")", "and", "(", "ii", ")"]


# The figure-reference pattern as it was before it started only at the start of a run of whitespace.
_FIGURE_REF_BEFORE = r"\s*\(\s*\d+[a-z]?'*(?:\s*[,-]\s*\d+[a-z]?'*)*\s*\)"


def test_figure_refs_are_dropped_as_before_in_linear_time():
    """Tried from every space of a long run, the old pattern's leading whitespace rescanned the rest of
    the run: 100,000 spaces took 8.5 s to tokenize, a megabyte minutes (a server's prompt too). The
    pattern now starts only where a run starts, and drops exactly what it dropped."""
    import random
    import re
    import subprocess
    import sys

    from nextword.runtime import splitting

    before = re.compile(_FIGURE_REF_BEFORE, re.IGNORECASE)
    pieces = [" ", "  ", "\t", "\n", "\u00a0", "(", ")", ",", "-", "1", "23", "a", "B", "'", "x", "é"]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert splitting._FIGURE_REF.sub("", text) == before.sub("", text), repr(text)
    # two million characters of whitespace: under a second now, hours before (a generous bound, not a
    # speed target: a hang fails it)
    code = (
        "from nextword.runtime.tokenizer import TokenizerConfig, tokenize;"
        "assert tokenize('a' + ' ' * 1_000_000 + '(' + '\\t' * 1_000_000, TokenizerConfig()) == ['a', '(']"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_build_counts_training_documents_only_with_min_count_and_max_vocab():
    docs = ["b a a c. b a", "a d"]
    tok = Tokenizer.build(docs, TokenizerConfig(min_count=2))
    assert tok.tokens == [*SPECIAL_TOKENS, "a", "b"]  # c, d and "." appear once
    assert tok.encode("a b c zzz") == [3, 4, tok.unk_id, tok.unk_id]
    capped = Tokenizer.build(docs, TokenizerConfig(min_count=1, max_vocab=5))
    assert capped.tokens == [*SPECIAL_TOKENS, "a", "b"]
    ties = Tokenizer.build(["z y x"], TokenizerConfig(min_count=1))
    assert ties.tokens[3:] == ["x", "y", "z"]  # equal counts: alphabetical, so builds are reproducible
    # ``tokens`` is the caller's own copy; ``table`` the shared, immutable vocabulary
    copy = tok.tokens
    copy.append("zzz")
    assert tok.tokens == [*SPECIAL_TOKENS, "a", "b"] and tok.table == (*SPECIAL_TOKENS, "a", "b")
    assert tok.table is tok.table and Tokenizer.from_json(tok.to_json()) == tok


def test_special_tokens_have_fixed_ids():
    tok = Tokenizer.build(["hello world"], TokenizerConfig(min_count=1))
    assert (tok.token_of(tok.pad_id), tok.token_of(tok.unk_id), tok.token_of(tok.eod_id)) == (PAD, UNK, EOD)
    # text never produces padding or a document end; "<unk>" is the unknown word (below)
    assert tokenize("<eod> <pad>", DEFAULT) == ["<", "eod", ">", "<", "pad", ">"]


def test_a_literal_unk_is_one_unknown_word():
    """Corpora that mark rare words "<unk>" (Penn Treebank, WikiText) and texts generated with unknown
    words allowed: one unknown word per mark, not "<", "unk", ">"."""
    assert tokenize("the <unk> layer of <UNK>s, a<unk>b", DEFAULT) == [
        "the", "<unk>", "layer", "of", "<unk>", "s", ",", "a", "<unk>", "b"
    ]  # fmt: skip
    assert tokenize("<unk >, < unk>, <Unk>", TokenizerConfig(lowercase=False)) == [
        "<", "unk", ">", ",", "<", "unk", ">", ",", "<", "Unk", ">"
    ]  # fmt: skip
    ptb = ["the <unk> company said <unk> shares rose", "the <unk> fell"] * 3
    tok = Tokenizer.build(ptb, TokenizerConfig(min_count=1))
    assert not {"unk", "<", ">"} & set(tok.tokens) and tok.tokens.count(UNK) == 1
    ids = tok.encode("the <unk> company")
    assert ids == [tok.id_of("the"), tok.unk_id, tok.id_of("company")]
    assert tok.decode(ids) == "The <unk> company" and tok.encode(tok.decode(ids)) == ids  # reads back
    with pytest.raises(ValueError, match=r"decode takes token ids \(a list of ints\), got str: encode\(\)"):
        tok.decode("12")  # its characters were read as ids: "token id '1' is not in this vocabulary"
    with pytest.raises(ValueError, match="got bytes"):
        tok.decode(b"\x03\x04")  # its bytes were read as ids 3 and 4


def test_version_1_tokenizers_keep_their_rules():
    """A tokenizer written before version 2 splits "<unk>" as its model was trained to see it, and stays
    version 1 when written again; a version this nextword does not know is refused."""
    docs = ["the <unk> layer"] * 2
    new = Tokenizer.build(docs, TokenizerConfig(min_count=1))
    old = Tokenizer.from_json(new.to_json().replace('"version":3', '"version":1'))
    assert (new.version, old.version) == (3, 1) and old != new
    assert old.tokenize("the <unk> layer") == ["the", "<", "unk", ">", "layer"]
    assert tokenize("the <unk> layer", DEFAULT, version=1) == old.tokenize("the <unk> layer")
    assert json.loads(old.to_json())["version"] == 1 and Tokenizer.from_json(old.to_json()) == old
    with pytest.raises(
        ValueError,
        match=r"version 6 is not supported \(this nextword reads versions 1, 2, 3, 4 and 5\); upgrade",
    ):
        Tokenizer.from_json(new.to_json().replace('"version":3', '"version":6'))
    with pytest.raises(ValueError, match="format version must be one of"):
        Tokenizer(new.tokens, version=6)


def test_special_token_text_in_documents_does_not_enter_the_vocabulary():
    tok = Tokenizer.build(["<eod> <unk> <pad> word"] * 3, TokenizerConfig(min_count=1))
    assert tok.tokens.count(EOD) == 1 and tok.tokens.count(UNK) == 1 and tok.tokens.count(PAD) == 1


def test_json_round_trip_keeps_vocabulary_and_config():
    tok = Tokenizer.build(
        ["Ünïcode wörds, and more words."] * 2, TokenizerConfig(min_count=2, lowercase=False)
    )
    again = Tokenizer.from_json(tok.to_json())
    assert again == tok
    assert again.config.lowercase is False
    data = json.loads(tok.to_json())
    assert data["format"] == "nextword.tokenizer" and data["version"] == 3  # no invisible character


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=99), "version 99 is not supported"),
        (lambda d: d.update(format="other"), "not a nextword tokenizer"),
        (lambda d: d["tokens"].append("word"), "appears twice"),
        (
            lambda d: d["tokens"].pop(0),
            r"must start with the special tokens .*, got \['<unk>', '<eod>', 'word'\]$",
        ),
        (lambda d: d["tokens"].append(""), "non-empty string"),
        (lambda d: d["config"].update(colour="blue"), "unknown fields"),
        (lambda d: d["config"].update(min_count=0), "min_count"),
    ],
)
def test_from_json_rejects_malformed_input(mutate, message):
    data = json.loads(Tokenizer.build(["word word"], TokenizerConfig(min_count=1)).to_json())
    mutate(data)
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_json(json.dumps(data))


def test_from_json_rejects_invalid_json():
    with pytest.raises(ValueError, match="does not parse"):
        Tokenizer.from_json("{not json")


def test_decode_is_readable():
    tok = Tokenizer.build(
        ["the network ( a model ) learns . it works , well ? yes !"], TokenizerConfig(min_count=1)
    )
    text = "the network (a model) learns. it works, well? yes!"
    assert tok.decode(tok.encode(text)) == "The network (a model) learns. It works, well? Yes!"


@pytest.mark.parametrize(
    "text",
    [
        "¿Qué hora es? ¡Hola, señor!",  # Spanish opening marks
        "مرحبا، كيف حالك؟ نعم؛ لا۔",  # Arabic comma, question mark, semicolon; the Urdu full stop
        "यह अच्छा है। ठीक॥",  # Devanagari dandas
        "Great 👍🏽 ❤️ 🇫🇷🇩🇪 👨\u200d👩\u200d👧 1️⃣ done",  # skin tone, variation selector, flags, ZWJ, keycap
        "می\u200cخواهم",  # Persian: a zero-width non-joiner inside a word
        # keycaps; a subdivision flag: a black flag and tag characters
        "#\ufe0f\u20e3 *\u20e3 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f ok",
    ],
)
def test_decode_puts_back_non_english_punctuation_and_emoji_sequences(text):
    """Each of these came back with spaces inside (``¿ qué``, ``حالك ؟``, ``👍 🏽``, ``🇫 🇷``)."""
    tok = Tokenizer.build([text], TokenizerConfig(min_count=1, lowercase=False))
    assert tok.decode(tok.encode(text)) == text


def test_decode_keeps_case_when_not_lowercasing():
    tok = Tokenizer.build(["the CPU runs."], TokenizerConfig(min_count=1, lowercase=False))
    assert tok.decode(tok.encode("the CPU runs.")) == "the CPU runs."


def test_decode_renders_document_ends_as_paragraphs_and_skips_padding():
    tok = Tokenizer.build(["one doc. two doc."], TokenizerConfig(min_count=1))
    ids = [tok.eod_id, *tok.encode("one doc."), tok.eod_id, *tok.encode("two doc."), tok.eod_id, tok.pad_id]
    assert tok.decode(ids) == "One doc.\n\nTwo doc."


def test_pieces_continue_a_prompt():
    tok = Tokenizer.build(["a b . c"], TokenizerConfig(min_count=1))
    assert list(tok.pieces(["b", ".", "c"], previous="a")) == [" b", ".", " C"]
    assert "".join(tok.pieces(["a", "b"])) == "A b"


def test_round_trip_of_normalized_text():
    text = "the input layer receives a signal, and the output layer (optional) emits 3.5 units."
    tok = Tokenizer.build([text], TokenizerConfig(min_count=1))
    assert tok.tokenize(tok.decode(tok.encode(text))) == tok.tokenize(text)


@pytest.mark.parametrize(
    ("field", "value"), [("min_count", 0), ("max_vocab", 3), ("min_count", 1.5), ("max_vocab", True)]
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        TokenizerConfig(**{field: value})


def test_tokenize_rejects_non_strings():
    with pytest.raises(TypeError, match="str"):
        tokenize(b"bytes", DEFAULT)  # type: ignore[arg-type]


def test_ids_outside_the_vocabulary_are_refused_not_wrapped_round():
    tok = Tokenizer.build(["the cat sat", "the cat ran"], TokenizerConfig())
    last = len(tok) - 1
    assert tok.token_of(last) and tok.decode([tok.id_of("cat")]) == "Cat"
    for bad in (-1, last + 1, 2.0, True):
        with pytest.raises(ValueError, match=rf"token id .* is not in this vocabulary of ids 0\.\.{last}"):
            tok.token_of(bad)
        with pytest.raises(ValueError, match="is not in this vocabulary"):
            tok.decode([tok.id_of("cat"), bad])


def test_the_readme_says_what_happens_to_text_other_than_english_patents():
    """README's "Text other than English patents" describes these defaults and limits."""
    patents, plain = TokenizerConfig(), TokenizerConfig(lowercase=False, drop_figure_refs=False)
    prose = "Le film (1999) a gagné (2) prix."
    assert "1999" not in tokenize(prose, patents) and "1999" in tokenize(prose, plain)
    assert tokenize("İstanbul", patents) == ["i\u0307stanbul"]  # one word, apart from "istanbul"
    assert tokenize("İstanbul", plain) == ["İstanbul"]
    assert tokenize("हिन्दी", plain) == ["हिन्दी"]  # vowel signs are combining marks: format 3 keeps them
    assert len(tokenize("हिन्दी", plain, version=2)) == 6  # the bundled model's format split them
    assert tokenize("x² 3½", plain) == ["x2", "31", "⁄", "2"]
    assert tokenize("« oui » 'non' 10:30", plain) == ["oui", "'", "non", "'", "10", ":", "30"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("हिन्दी भाषा है।", ["हिन्दी", "भाषा", "है", "।"]),  # Devanagari vowel signs and virama
        ("نصٌّ عَرَبِيّ", ["نصٌّ", "عَرَبِيّ"]),  # Arabic harakat
        ("שָׁלוֹם צה״ל", ["שָׁלוֹם", "צה״ל"]),  # Hebrew points; gershayim inside an acronym
        ("בֵּית־סֵפֶר", ["בֵּית־סֵפֶר"]),  # the Hebrew maqaf
        ("٣٫٥ ١٬٠٠٠", ["٣٫٥", "١٬٠٠٠"]),  # Arabic decimal and thousands separators
        ("col·lecció, μεγάλη· ναι", ["col·lecció", ",", "μεγάλη", "·", "ναι"]),  # a middle dot joins words
        ("می\u200cخواهم", ["می\u200cخواهم"]),  # Persian: the zero-width non-joiner inside a word
        (
            "x\u0304 the <unk> feed-forward 1,000 e.g.",
            ["x\u0304", "the", "<unk>", "feed-forward", "1,000", "e.g", "."],
        ),
    ],
)
def test_format_3_keeps_combining_marks_and_joiners_inside_words(text, words):
    config = TokenizerConfig(lowercase=False, drop_figure_refs=False)
    assert tokenize(text, config) == words
    assert tokenize(text, config, version=2) != words or text.isascii()  # version 2 split them


def test_a_tokenizer_keeps_its_format_version_and_its_rules():
    texts = ["हिन्दी भाषा है।"]
    new = Tokenizer.build(texts, TokenizerConfig(min_count=1))
    assert new.version == 3 and json.loads(new.to_json())["version"] == 3
    old = Tokenizer(new.tokens, new.config, version=2)
    again = Tokenizer.from_json(old.to_json())
    assert again.version == 2 and again.tokenize(texts[0]) == tokenize(texts[0], new.config, version=2)
    assert new.tokenize(texts[0]) == ["हिन्दी", "भाषा", "है", "।"]
    assert len(again.tokenize(texts[0])) == 13


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("¿por qué? ¡porque sí! hola, ¿qué tal?", "¿Por qué? ¡Porque sí! Hola, ¿qué tal?"),
        ("it learns. (it works.) then it stops (twice).", "It learns. (It works.) Then it stops (twice)."),
    ],
)
def test_a_sentence_start_carries_across_opening_marks(text, decoded):
    """The capital went onto "¿" or "(" itself, and the word after it stayed lowercase."""
    tok = Tokenizer.build([text], TokenizerConfig(min_count=1))
    assert tok.decode(tok.encode(text)) == decoded


def test_generated_text_after_a_prompt_ending_in_an_opening_mark_starts_with_a_capital():
    from nextword.runtime.text import TextBuilder

    tok = Tokenizer.build(["la niña come. ¿por qué?"], TokenizerConfig(min_count=1))
    prompt = tok.tokenize("la niña come. ¿")
    assert tok.begins_sentence(reversed(prompt))
    assert not tok.begins_sentence(reversed(tok.tokenize("hola, ¿")))
    text = TextBuilder(tok, prompt[-1], (), False, tok.begins_sentence(reversed(prompt)))
    for token in ("por", "qué", "?", "¿", "por"):
        text.add(token)
    assert text.text == "Por qué? ¿Por"
    alone = TextBuilder(tok, "¿", (), False)  # from the previous token alone: no sentence start known
    alone.add("por")
    assert alone.text == "por"


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("the input, e.g. an image, i.e. pixels. then", "The input, e.g. an image, i.e. pixels. Then"),
        ("the u.s.a. law. a.k.a. this. 1.2. next", "The u.s.a. law. A.k.a. this. 1.2. Next"),
        ("w.sub.ij. the end. α.β. so (e.g. it)", "W.sub.ij. The end. Α.β. so (e.g. it)"),
        ("90 % of 12 %. 1.5 %, a % b, ٣ %", "90% of 12%. 1.5%, a % b, ٣%"),
    ],
)
def test_no_capital_after_initials_and_a_percent_sign_glued_to_its_number(text, decoded):
    """ "e.g." ended a sentence ("e.g. And ...": the corpus writes "e.g. and" 43 times to 5), and "90%"
    came out as "90 %"; a dot after a number or after patent notation (w.sub.ij) still ends one."""
    tok = Tokenizer.build([text], TokenizerConfig(min_count=1))
    assert tok.decode(tok.encode(text)) == decoded


def test_a_prompt_that_ends_in_initials_continues_without_a_capital():
    from nextword.runtime.text import PromptEnd

    tok = Tokenizer.build(["see e.g. the net. and u.s. law"], TokenizerConfig(min_count=1))
    assert not PromptEnd.of_text(tok, "see e.g.").starts
    assert PromptEnd.of_text(tok, "see the net.").starts and PromptEnd.of_text(tok, ".").starts
    assert not PromptEnd.of_ids(tok, tok.encode("law u.s.")).starts
    assert not PromptEnd.of_ids(tok, [*tok.encode("law u.s"), 0, *tok.encode(".")]).starts  # padding: nothing
    builder = PromptEnd.of_text(tok, "see e.g.").builder(tok, ())
    for token in ("the", "net", ".", "and", "u.s", ".", "law"):
        builder.add(token)
    assert builder.text == " the net. And u.s. law"
    assert "".join(tok.pieces(["u.s", ".", "law"], previous="see")) == " u.s. law"


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_a_newer_pythons_unicode_splits_as_the_tables_unicode_does(monkeypatch, version):
    """On a Python whose Unicode is newer than the tables' (3.12: 15.0), characters assigned since stand
    in as private-use characters while the text is split, then come back: the tokens are those of the
    tables' Unicode, where they are unassigned. Here (the tables' own Unicode) both paths must agree,
    private-use characters the text itself holds included; a 3.12 or 3.13 run of tests/test_web.py
    checks the newer side against nextword-web."""
    from nextword.runtime import splitting

    texts = [
        "new \U0001e030 \U0001fae8 \U00011f04\U00011f05 \U0001e4d0 \U00031350 end",  # assigned after 14.0
        "Σ\U0001e030 a\U000f0000b \U000f0001 (12) x\U0001e030(3)",  # stand-ins the text already holds
        "\u0378 \u0378\u0301 A\u0378B",  # unassigned in every version, a mark after one
        "plain ascii text",
    ]
    config = TokenizerConfig()
    plain = [splitting.tokenize(text, config, version) for text in texts]
    monkeypatch.setattr(splitting, "_NEWER_UNICODE", True)
    assert [splitting.tokenize(text, config, version) for text in texts] == plain
    stood_in, back = splitting._stand_ins(texts[1])
    assert back is not None and "\U0001e030" not in stood_in
    assert "".join(back.get(ch, ch) for ch in stood_in) == texts[1]
    assert not set(back) & set(texts[1])  # no stand-in is a character of the text
    many = "".join(chr(c) for c in range(0x31350, 0x31350 + 40))  # Unicode 15.0's CJK Extension H
    stood_in, back = splitting._stand_ins(many + " " + texts[1])  # more than 16: the one-pass path
    assert (
        back is not None
        and len(back) == 41
        and "".join(back.get(ch, ch) for ch in stood_in) == many + " " + texts[1]
    )


INVISIBLE_TEXT = (
    "infor\u00admation net\u200bwork \ufeffthe a\u200e b \u202eevil\u202c w\u2060j x\u2069 "
    "\u061c\u0639 \U0001d173 \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 "
    "\U0001f468\u200d\U0001f469 x\ufe0f"
)


def test_version_4_drops_the_characters_that_only_format_text():
    """A soft hyphen, a zero-width space, a byte-order mark inside a text and the bidirectional marks
    were words of their own, invisible ones: in a vocabulary trained on web text, in generated text, and
    as unknown words in a prompt pasted from a web page ("infor\u00admation" was three words)."""
    v3, v4 = tokenize(INVISIBLE_TEXT, DEFAULT, version=3), tokenize(INVISIBLE_TEXT, DEFAULT, version=4)
    assert {"\u00ad", "\u200b", "\ufeff", "\u200e", "\u202e", "\u2060", "\u061c"} <= set(v3)
    assert v4[:9] == ["information", "net", "work", "the", "a", "b", "evil", "wj", "x"]
    assert not any(c in "".join(v4) for c in "\u00ad\u200b\ufeff\u200e\u202e\u202c\u2060\u2069\u061c")
    # the joiners of words and of emoji, and variation selectors, stay as in version 3
    assert (
        v4[9] == "\u0639" and v4[10:] == v3[-5:] and "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645" in v4
    )
    # a text without such characters splits alike: hence version 3 for a corpus without them
    for text in ("the <unk> layer", "हिन्दी भाषा है।", "a (12) b\u200dc 👨\u200d👩 x\ufe0f"):
        assert tokenize(text, DEFAULT, version=3) == tokenize(text, DEFAULT, version=4), text


# Every character docs/model-format.md lists as dropped from version 4 (the zero-width space is a space)
DROPPED = [
    0x00AD,
    0x061C,
    0x180E,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2065),
    *range(0x2066, 0x2070),
    0xFEFF,
    *range(0x1BCA0, 0x1BCA4),
    *range(0x1D173, 0x1D17B),
]


@pytest.mark.parametrize("code", DROPPED, ids=lambda code: f"U+{code:04X}")
def test_each_character_version_4_drops(code):
    text = f"a{chr(code)}b c"
    assert tokenize(text, DEFAULT, version=4) == ["ab", "c"]
    assert chr(code) in tokenize(text, DEFAULT, version=3)  # a symbol of its own before


@pytest.mark.parametrize("code", [0x200C, 0x200D, 0x2065, 0xFE0F, 0xE0001, 0xE0067, 0x034F, 0x2028])
def test_the_characters_next_to_those_version_4_drops_are_read_as_before(code):
    text = f"a{chr(code)}b c"
    assert tokenize(text, DEFAULT, version=4) == tokenize(text, DEFAULT, version=3)


def test_version_4_drops_before_nfkc_so_marks_compose():
    """A soft hyphen between a letter and its combining accent: dropped first, they compose."""
    assert tokenize("cafe\u00ad\u0301 x", DEFAULT, version=4) == ["café", "x"]
    assert tokenize("a\u200bb", DEFAULT, version=4) == ["a", "b"]  # a zero-width space: a space


def test_a_vocabulary_records_the_oldest_format_that_splits_its_corpus_alike(tmp_path):
    """Version 3 where no document holds a character that only formats text: the model file opens in
    readers from before version 4 (nextword 0.2.0); version 4 where one does, validation text included."""
    from nextword.corpus import CorpusConfig, split_corpus
    from nextword.corpus.encode import build_vocabulary

    plain = ["the network learns the weights"] * 3
    assert Tokenizer.build(plain, TokenizerConfig(min_count=1)).version == 3
    for documents in ([*plain, "a soft\u00adhyphen"], ["a soft\u00adhyphen", *plain]):  # anywhere
        built = Tokenizer.build(documents, TokenizerConfig(min_count=1))
        assert built.version == 4 and "softhyphen" in built.tokens
    documents = synthetic_documents(20)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(documents), encoding="utf-8")
    config = CorpusConfig(paths=(str(corpus),), format="lines", val_fraction=0.25)
    assert build_vocabulary(split_corpus(config), TokenizerConfig(min_count=1)).version == 3
    # in a training document: counted under version 4's rules, one word
    corpus.write_text("\n".join(d + " soft\u00adhyphen" for d in documents), encoding="utf-8")
    counted = build_vocabulary(split_corpus(config), TokenizerConfig(min_count=1))
    assert counted.version == 4 and "softhyphen" in counted.tokens and "\u00ad" not in counted.tokens
    # a zero-width space in one validation document only: its words would be split apart under 3
    for i in range(len(documents)):
        marked = [d.replace(" ", "\u200b", 1) if j == i else d for j, d in enumerate(documents)]
        corpus.write_text("\n".join(marked), encoding="utf-8")
        split = split_corpus(config)
        where = [is_val for is_val, document in split.read() if "\u200b" in document]
        if where == [True]:
            break
    else:
        pytest.fail("no document with a zero-width space landed in the validation part")
    assert build_vocabulary(split, TokenizerConfig(min_count=1)).version == 4
    # a run made again keeps its own
    assert build_vocabulary(split, TokenizerConfig(min_count=1), version=2).version == 2


def test_words_longer_than_a_file_may_hold_are_left_out_of_a_vocabulary_with_a_warning(caplog):
    """A repeated blob (base64, a long URL) was kept by from_counts, and the Tokenizer it made then
    refused it: training stopped after its vocabulary pass ('vocabulary entry 483 is 1,000,000
    characters long')."""
    from nextword.runtime.tokenizer import MAX_TOKEN_CHARS

    blob, edge = "q" * (MAX_TOKEN_CHARS + 1), "e" * MAX_TOKEN_CHARS
    with caplog.at_level("WARNING", logger="nextword.runtime.tokenizer"):
        tokenizer = Tokenizer.from_counts(
            {"the": 9, blob: 7, edge: 5, "net": 3}, TokenizerConfig(min_count=1)
        )
    assert tokenizer.tokens[3:] == ["the", edge, "net"]  # the longest a file may hold stays
    assert tokenizer.encode(f"the {blob} net") == [
        tokenizer.id_of("the"),
        tokenizer.unk_id,
        tokenizer.id_of("net"),
    ]
    (record,) = caplog.records
    assert record.getMessage().startswith("1 frequent 'words' longer than 1000 characters left out")
    assert record.getMessage().endswith(": 'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...")
    caplog.clear()
    Tokenizer.build(["the net " + blob] * 3, TokenizerConfig(min_count=2))
    assert len(caplog.records) == 1


def test_a_vocabulary_leaves_out_words_holding_lone_surrogates(caplog):
    """Text read with errors="surrogateescape" (a file or stdin that is not UTF-8) tokenizes to words
    holding lone surrogates, which no tokenizer may hold: build() refused with "the tokenizer was not
    written by nextword: re-export the model" (found by fuzzing with atheris). It now leaves them out."""
    with caplog.at_level("WARNING", logger="nextword.runtime.tokenizer"):
        tokenizer = Tokenizer.build(["caf\udce9 latte"] * 2, TokenizerConfig(min_count=1))
    assert tokenizer.tokens[3:] == ["caf", "latte"]
    assert tokenizer.encode("caf\udce9 latte") == [
        tokenizer.id_of("caf"),
        tokenizer.unk_id,
        tokenizer.id_of("latte"),
    ]
    (record,) = caplog.records
    assert record.getMessage().startswith("1 frequent words holding lone surrogates")
