"""Texts and the tokens the default tokenizer makes of them: test_tokenizer.py checks the Python
tokenizer on them, web_reference.py hands them to nextword-web's parity tests."""

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
]
