"""Test data and tools shared by the test modules (no fixtures here: see conftest.py)."""

from __future__ import annotations

import csv
import json
import random
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from nextword.runtime.provenance import Provenance

SUBJECTS = ["the network", "a neural network", "the processor", "the system", "each neuron", "the model"]
VERBS = ["receives", "computes", "stores", "transmits", "updates", "classifies"]
OBJECTS = ["an input signal", "the weights", "a plurality of outputs", "the training data", "an error value"]


def synthetic_documents(n: int, seed: int = 0) -> list[str]:
    """Patent-flavoured documents from a small grammar: learnable in seconds by a tiny LSTM."""
    rng = random.Random(seed)
    documents = []
    for _ in range(n):
        sentences = []
        for _ in range(rng.randint(2, 5)):
            subject, figure = rng.choice(SUBJECTS).capitalize(), f"(1{rng.randint(0, 9)})"
            sentences.append(f"{subject} {figure} {rng.choice(VERBS)} {rng.choice(OBJECTS)}.")
        documents.append(" ".join(sentences))
    return documents


# Words of random texts for deduplication tests: each draw gets a number, so two texts share few shingles.
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
]


def random_text(rng: random.Random, words: int = 120) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(words))


def edited(rng: random.Random, text: str, changes: int) -> str:
    """``text`` with ``changes`` words replaced: a near-duplicate when ``changes`` is small."""
    words = text.split()
    for position in rng.sample(range(len(words)), changes):
        words[position] = "changed" + str(rng.randrange(10**6))
    return " ".join(words)


# Machines rather than networks: another kind of text for fine-tuning, with some of the grammar's words
# and many (gearbox, torque...) that a vocabulary of synthetic_documents lacks.
MACHINE_SUBJECTS = ["the gearbox", "a shaft", "the motor", "each network", "the controller"]
MACHINE_VERBS = ["transmits torque to", "drives", "receives a signal from", "is coupled to"]
MACHINE_OBJECTS = ["the output shaft", "a clutch", "the wheel", "a layer", "the housing"]


def machine_documents(n: int, seed: int) -> list[str]:
    """Documents of two to four sentences about machines (see ``MACHINE_SUBJECTS``)."""
    rng = random.Random(seed)

    def sentence() -> str:
        subject, verb, thing = (
            rng.choice(words) for words in (MACHINE_SUBJECTS, MACHINE_VERBS, MACHINE_OBJECTS)
        )
        return f"{subject.capitalize()} {verb} {thing}."

    return [" ".join(sentence() for _ in range(rng.randint(2, 4))) for _ in range(n)]


def tuning_config(base: Path, corpus: Path, out: Path, *, split: dict | None = None, **changes):
    """A ``TrainConfig`` that fine-tunes ``base`` on ``corpus`` into ``out``, sized for tests (windows of
    16, batches of 8, silent); ``split``: corpus options (``split_seed``...), ``changes``: the rest."""
    from nextword.train import CorpusConfig, TrainConfig

    settings = {"seq_len": 16, "batch_size": 8, "verbose": 0, **changes}
    corpus_config = CorpusConfig(paths=(str(corpus),), **(split or {}))
    return TrainConfig(out=str(out), corpus=corpus_config, init_from=str(base), **settings)


def write_corpus(folder: Path, documents: list[str]) -> dict[str, Path]:
    """The same documents as CSV (patent_abstract column), JSON Lines (text field) and plain text."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "corpus.csv", "jsonl": folder / "corpus.jsonl", "text": folder / "corpus.txt"}
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["patent_number", "patent_abstract"])
        writer.writerows([i, d] for i, d in enumerate(documents))
    paths["jsonl"].write_text(
        "".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(documents))
    )
    paths["text"].write_text("\n\n".join(textwrap.fill(d, 60) for d in documents) + "\n")
    return paths


# Makes the training stack unimportable, as on a machine with the runtime alone.
BLOCK_TRAINING_STACK = textwrap.dedent(
    """
    import importlib.abc, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {"tensorflow", "keras", "tf2onnx", "onnx"}:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None
    sys.meta_path.insert(0, _Block())
    """
)


def run_python(code: str, *args: str, block_training_stack: bool = False, cwd: Path | None = None):
    """Run ``code`` in a fresh interpreter; returns the CompletedProcess (text mode)."""
    if block_training_stack:
        code = BLOCK_TRAINING_STACK + code
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


# The reference corpus, beside the repository in ../shared (where present): tests that read it carry the
# ``corpus`` marker, and conftest.py skips them, naming this path, where it is absent.
REFERENCE_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "neural_network_patent_query.csv"

# A script for a fresh interpreter (the model file its argument): the runtime alone loads, generates and
# evaluates, and never imports the training stack.
RUNTIME_ONLY = """
import sys
import nextword.runtime as rt
model = rt.load(sys.argv[1])
text = model.generate("the network", max_words=20, seed=3)
assert isinstance(text, str) and text.strip(), text
assert model.generate("the network", max_words=20, seed=3) == text
result = rt.evaluate(model, ["The system stores the weights."])
assert result.words > 0
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {"tensorflow", "keras", "tf2onnx", "onnx"})
assert not loaded, loaded
print("ok", text)
"""

LEGACY_BUNDLED = Path(__file__).parent / "data" / "legacy-bundled-config.json"


def legacy_bundled_record() -> Provenance:
    """The record of the model bundled before deduplication, read from its ``nextword.config`` (kept
    in tests/data: that file carried no provenance section, only its train settings)."""
    from nextword.runtime.provenance import read_provenance

    record = read_provenance(json.loads(LEGACY_BUNDLED.read_text(encoding="utf-8")), "old.onnx")
    assert record is not None
    return record


def refused(call: Callable[[], Any], message: str) -> Exception:
    """``call()`` raises WrongTypeError, a TypeError and a ValueError both, matching ``message``."""
    from nextword.runtime.errors import WrongTypeError

    with pytest.raises(WrongTypeError, match=message) as caught:
        call()
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)
    return caught.value


def out_of_range(call: Callable[[], Any], message: str) -> None:
    """``call()`` raises a plain ValueError (no TypeError) matching ``message``."""
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert not isinstance(caught.value, TypeError), caught.value


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free a moment ago (each bound to port 0, read, then closed), for
    processes a test starts that must know each other's ports before they bind them."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def drain_once_generating(state: Any, after: float = 0.5, bound: float = 60.0) -> None:
    """Cancel ``state``'s generations as the shutdown's drain does (``cancel_all``), ``after`` seconds once
    one is in flight, on a thread: a timer started before the request cancelled nothing where the request
    reached the server after the timer fired (the completion then ran to its end, a held search for ever).
    Past ``bound`` seconds with none in flight it cancels anyway, so that nothing waits for ever."""
    import threading
    import time

    def drain() -> None:
        deadline = time.monotonic() + bound
        while not state.jobs and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(after)
        state.cancel_all()

    threading.Thread(target=drain, name="drain", daemon=True).start()


def read_to_end(sock: socket.socket) -> bytes:
    """What a server sends on ``sock`` until it closes the connection (a reset counts as the close; the
    socket's timeout fails a test whose server never closes it)."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out
