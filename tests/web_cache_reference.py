"""The continuous cache: what the Python runtime computes with it, for nextword-web's parity test
(tests/test_web.py runs web/test/parity-cache.test.js against it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web_reference import SAMPLING, recorded_generate

KEY_CACHE = "nextword.cache"
# theta large enough that the nearest state dominates, a window shorter than the long texts below (the
# ring wraps), a mix that moves probabilities well beyond the tolerance
CACHE = {"theta": 0.4, "mix": 0.3, "window": 12, "tuning": {"set_by": "tests/web_cache_reference.py"}}
# the gated cosine cache: cosine similarities (theta scaled for [-1, 1]) and a share per position from the
# cache's log-sum-exp L_t, which lies in [log n - 5, log n + 5] for n <= 12 kept pairs, so the share
# sigmoid(-2 + 0.6 L_t) can move from about 0.01 to 0.92 (0.27 to 0.88 on the bundled model's texts here)
GATED_COSINE = {
    "theta": 5,
    "gate": [-2.0, 0.6],
    "similarity": "cosine",
    "window": 12,
    "tuning": {"set_by": "tests/web_cache_reference.py"},
}

PROMPTS = [
    "a neural network",
    "the network receives the signal and the network",
    "",
    "a",
    "each neuron of the layer computes a weight, and the weight of each neuron",
    "the present invention relates to " * 4,  # longer than the window
    "a method for training ",
    "unknownwordxyz and another qqq unknownwordxyz",
]
VARIANTS = [
    {},
    {"stop": ["."]},
    {"min_words": 20},
    {"no_repeat_ngram_size": 2},
    {"repetition_penalty": 1.3},
    {"stop_at_end": False, "max_words": 45},
    {"max_words": 0},
    {"max_words": 1},
]


def with_metadata(model_path: Path, out: Path, changes: dict[str, str | None]) -> Path:
    """A copy of ``model_path`` with metadata entries set (a value) or removed (None)."""
    import onnx

    proto = onnx.load(str(model_path))
    kept = [(m.key, m.value) for m in proto.metadata_props if m.key not in changes]
    del proto.metadata_props[:]
    for key, value in kept + [(k, v) for k, v in changes.items() if v is not None]:
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(out))
    return out


def cache_files(
    model_path: Path,
    folder: Path,
    cache: dict[str, Any] | None = CACHE,
    format_version: str | None = None,
) -> dict[str, Path]:
    """The model with the cache settings ``cache`` (None: the file's own) (``cached``), without any
    (``plain``), and with the cache as a decoding default too (``default_on``: the file's other
    defaults kept, ``max_words=30``); ``format_version``: what the files with settings say (None: the
    file's own)."""
    import onnx

    stored = {m.key: m.value for m in onnx.load(str(model_path), load_external_data=False).metadata_props}
    settings = json.dumps(cache) if cache is not None else stored[KEY_CACHE]
    defaults = json.loads(stored.get("nextword.generation", "{}"))
    version = {} if format_version is None else {"nextword.format_version": format_version}
    return {
        "cached": with_metadata(model_path, folder / "cached.onnx", {KEY_CACHE: settings, **version}),
        "plain": with_metadata(model_path, folder / "plain.onnx", {KEY_CACHE: None}),
        "default_on": with_metadata(
            model_path,
            folder / "default-on.onnx",
            {
                KEY_CACHE: settings,
                **version,
                "nextword.generation": json.dumps({**defaults, "cache": True, "max_words": 30}),
            },
        ),
    }


def _score(model, text: str, cache: bool | None) -> dict[str, Any]:
    s = model.score(text, cache=cache)
    return {"total": s.total_logprob, "perplexity": s.perplexity, "logprobs": [w.logprob for w in s.words]}


def cache_reference(files: dict[str, Path]) -> dict[str, Any]:
    """Next words, scores (the cache on by default and off), greedy and seeded generations, streams and
    replayed session calls with ``cache=True``, and the messages of cache errors."""
    from nextword.runtime import load

    # threads=1: onnxruntime-web steps on one thread (docs/web.md: an int8 file's batches of 5 rows or
    # more differ on the two threads Python's default gives them)
    model, plain, default_on = (load(files[k], threads=1) for k in ("cached", "plain", "default_on"))
    next_words = [
        {"prompt": p, "cached": model.next_words(p, 10), "plain": model.next_words(p, 10, cache=False)}
        for p in PROMPTS
    ]
    assert any(c["cached"] != c["plain"] for c in next_words), "the cache changes nothing: a useless test"
    scores = [
        {"text": t, "cached": _score(model, t, None), "plain": _score(model, t, False)}
        for t in [*PROMPTS, "a neural network " * 30]
        if len(model.prompt_ids(t)) >= 2
    ]
    greedy = [{"prompt": p, "options": {"temperature": 0, "max_words": 40}} for p in PROMPTS]
    greedy.append({"prompt": PROMPTS, "options": {"temperature": 0, "max_words": 30}})
    greedy += [
        {"prompt": PROMPTS[i % len(PROMPTS)], "options": {"temperature": 0, "max_words": 40, **v}}
        for i, v in enumerate(VARIANTS)
    ]
    sampled = [
        {"prompt": PROMPTS[seed % len(PROMPTS)], "options": {"seed": seed, "max_words": 40, **option}}
        for seed, option in enumerate(SAMPLING * 2)
    ]
    sampled.append(
        {"prompt": PROMPTS[:4], "options": {"seed": 5, "max_words": 30, "num_return_sequences": 3}}
    )
    for case in greedy + sampled:
        case["options"]["cache"] = True
        case["text"] = model.generate(case["prompt"], **case["options"])
        case["plain_text"] = model.generate(case["prompt"], **{**case["options"], "cache": False})
    assert any(c["text"] != c["plain_text"] for c in greedy), "the cache changes no greedy text"
    replayed = []
    for case in greedy[:3] + greedy[-len(VARIANTS) :] + sampled[:4] + sampled[-1:]:
        text, calls = recorded_generate(model, case["prompt"], case["options"], states=True)
        assert text == case["text"]
        replayed.append({**case, "calls": calls})
    streams = []
    for case in sampled[:6] + greedy[:4]:
        gen = model.generator(**case["options"])
        (row,) = gen.add(case["prompt"])
        gen.run()
        pieces = list(model.stream(case["prompt"], **case["options"]))
        streams.append({**case, "pieces": pieces, "reason": gen.finish_reason(row)})
    defaults = [{"prompt": p, "text": default_on.generate(p, temperature=0)} for p in PROMPTS[:4]]
    for d in defaults:  # the file's default cache=True is cache=True
        assert d["text"] == model.generate(d["prompt"], temperature=0, max_words=30, cache=True)
    errors = []
    for name, call in [
        ("generate cache=True, no cache in the file", lambda: plain.generate("x", cache=True)),
        ("next_words cache=True, no cache in the file", lambda: plain.next_words("x", 3, cache=True)),
        ("score cache=True, no cache in the file", lambda: plain.score("x y", cache=True)),
        ("generate cache=1", lambda: model.generate("x", cache=1)),
    ]:
        try:
            call()
            message = None
        except ValueError as exc:
            message = str(exc)
        errors.append({"name": name, "message": message})
    for case in greedy + sampled + streams + replayed:
        case["options"] = {k: str(v) if k == "seed" else v for k, v in case["options"].items()}
    return {
        "quantized": bool(model.info.config.get("export", {}).get("int8")),
        "files": {name: str(path) for name, path in files.items()},
        "settings": model.cache_settings.to_dict(),
        "plain_next_words": [{"prompt": p, "words": plain.next_words(p, 10)} for p in PROMPTS[:3]],
        "next_words": next_words,
        "scores": scores,
        "greedy": greedy,
        "sampled": sampled,
        "replayed": replayed,
        "streams": streams,
        "defaults": defaults,
        "errors": errors,
    }
