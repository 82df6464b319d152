"""Texts and the tokens the default tokenizer makes of them, and texts and how a tokenizer built on them
writes them back: test_tokenizer.py and test_tokenizer_v5.py check the Python tokenizer on them,
web_reference.py hands them to nextword-web's parity tests."""

TOKENIZE_CASES: list[tuple[str, list[str]]] = [
    ("A Neural Network.", ["a", "neural", "network", "."]),
    (
        "inputs, outputs; weights: (optional)? yes!",
        ["inputs", ",", "outputs", ";", "weights", ":", "(", "optional", ")", "?", "yes", "!"],
    ),
    ("a feed-forward multi-layer net", ["a", "feed-forward", "multi-layer", "net"]),
    (
        "gain of 3.5 over 1,000 samples, 2nd layer",
        ["gain", "of", "3.5", "over", "1,000", "samples", ",", "2nd", "layer"],
    ),
    ("plot/track and/or x-ray", ["plot/track", "and/or", "x-ray"]),
    (
        "the sensor (12) and processor (12a) and bus (102, 104) work",
        ["the", "sensor", "and", "processor", "and", "bus", "work"],
    ),
    ("ends with a figure (3).", ["ends", "with", "a", "figure", "."]),
    ('the ""Barometer"" neuron', ["the", "barometer", "neuron"]),
    ("“curly” quotes and the network’s state", ["curly", "quotes", "and", "the", "network's", "state"]),
    ("  lots \t of\n\nspace  ", ["lots", "of", "space"]),
    ("ﬁlter ＡＢＣ １２", ["filter", "abc", "12"]),  # NFKC: ligature and full-width forms
    ("a+b = c %", ["a", "+", "b", "=", "c", "%"]),
    ("nul\x00byte and\x07bell", ["nul", "byte", "and", "bell"]),
    ("", []),
    ("...", [".", ".", "."]),
    # tokenizer format 5: each Han ideograph a token, kana runs whole; a Hebrew gershayim typed as '"';
    # the Arabic tatweel dropped (marks around it composed as typed without it)
    ("学生喜欢学习中文。", ["学", "生", "喜", "欢", "学", "习", "中", "文", "。"]),
    # the marks NFKC makes ASCII, full-width again right after an ideograph or kana (not after a space,
    # a Latin letter, a digit, or an ideograph past the Basic Multilingual Plane)
    (
        "我想喝茶，你呢? 好: 是;的! 中 , a, 3! ですか? 𠀋,",
        [
            "我",
            "想",
            "喝",
            "茶",
            "\uff0c",
            "你",
            "呢",
            "\uff1f",
            "好",
            "\uff1a",
            "是",
            "\uff1b",
            "的",
            "\uff01",
            "中",
            ",",
            "a",
            ",",
            "3",
            "!",
            "ですか",
            "\uff1f",
            "𠀋",
            ",",
        ],
    ),
    (
        "私は毎日りんごを食べます。人々 〆切 〇 𠀋x ｶﾀｶﾅ",
        [
            "私",
            "は",
            "毎",
            "日",
            "りんごを",
            "食",
            "べます",
            "。",
            "人",
            "々",
            "〆",
            "切",
            "〇",
            "𠀋",
            "x",
            "カタカナ",
        ],
    ),
    ('לארה"ב, צה"ל ו-ד"ר "שלום"', ["לארה״ב", ",", "צה״ל", "ו-ד״ר", "שלום"]),
    ("كبـــير جدًّا ـ اـٔمل", ["كبير", "جدًّا", "أمل"]),
]

# Texts (as a lowercasing tokenizer reads them) and how a tokenizer built on them writes them back.
DECODE_CASES: list[tuple[str, str]] = [
    # scripts written without spaces between words: joined again, a corpus segmented with spaces too
    ("我 想 喝茶 。 他说 「 你好 」 《 书 》 、 我", "我想喝茶。他说「你好」《书》、我"),
    ("東京 タワー は 高い 。 python は 楽しい", "東京タワーは高い。 Python は楽しい"),
    (
        "ฉัน ชอบ กิน ข้าว 2567 , ປະເທດ ລາວ , ភាសា ខ្មែរ , မြန်မာ စာ",
        "ฉันชอบกินข้าว 2567, ປະເທດລາວ, ភាសាខ្មែរ, မြန်မာစာ",
    ),
    ("한국어 문장 입니다 .", "한국어 문장 입니다."),
    # words of two scripts: joined where their last character (kana) meets kana or an ideograph, apart
    # where their first (a Latin or Hangul letter) meets an ideograph
    ("tシャツ を 着 た 。 中 한シャツ 中 tシャツ", "Tシャツを着た。中 한シャツ中 tシャツ"),
    # Greek's question mark (NFKC makes it ";") ends a sentence; a ";" elsewhere does not
    ("πού είναι; εδώ. a; b", "Πού είναι; Εδώ. A; b"),
    ("ποῦ εἶ; ἐδῶ", "Ποῦ εἶ; Ἐδῶ"),  # polytonic Greek (U+1F00-U+1FFF) before it
    # a capital is composed: Turkish İ lowercased comes back as U+0130; Greek ΐ as one letter and a mark
    ("i̇stanbul güzel. i̇yi ΐ. ΐδε", "İstanbul güzel. İyi ΐ. Ϊ́δε"),
    # Armenian and Ethiopic punctuation after its word, the Armenian full stop ends a sentence
    (
        "ինչ է սա ։ լավ ՝ շատ ՞ ሰላም ። ጤና ፣ ይስጥልኝ ፧ ሰላም ፨",
        "Ինչ է սա։ Լավ՝ շատ՞ ሰላም። ጤና፣ ይስጥልኝ፧ ሰላም፨",
    ),
    # the Arabic percent sign after a number, as "%"; the ideographic full stop ends a sentence
    ("٩٠ ٪ 90 ٪ a ٪ 中文 。 english", "٩٠٪ 90٪ a ٪ 中文。 English"),
    # Chinese and Japanese punctuation written full-width and without spaces: "我想喝茶, 学生" was written
    (
        "我想喝茶, 学生喜欢看书! 你呢? 好: 是; 的. hello, world!",
        "我想喝茶，学生喜欢看书！你呢？好：是；的. Hello, world!",
    ),
]
