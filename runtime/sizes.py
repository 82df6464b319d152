"""How big a nextword model file will be, worked out from the model's shape before the file exists, and
which of the loader's default limits a file of that size needs raised.

Training calls it once the vocabulary is known, before the first epoch; export before tf2onnx runs.
An ONNX file is one protobuf message, and protobuf serializes no message of 2 GiB or more, so a model
whose weights reach that cannot be exported at all (nextword's one-file format has no external data).
Far below that, :class:`~nextword.runtime.limits.LoadLimits` refuses files over 64 MiB (and a
tokenizer over 4 MiB, a tensor over 64 MiB...) unless the caller raises the limits; the browser's
``load()`` has the same file and tokenizer caps.

The estimate counts the weights the exported graph stores (tf2onnx's LSTM bias is 8 x units wide, half
of it zeros; a tied model stores its embedding matrix once) plus the tokenizer's JSON and a small
allowance for the graph and the other metadata. ``tests/test_model_sizes.py`` holds it within 2% of
real exported files, fp32 and int8 (the largest tensor exactly, the work per word within 5%).
"""

from __future__ import annotations

from dataclasses import dataclass

from .limits import PROTOBUF_LIMIT, LoadLimits, MiB

__all__ = [
    "DEFAULT_LIMITS",
    "FILE_OVERHEAD",
    "PROTOBUF_LIMIT",
    "ModelShape",
    "limits_call",
    "limits_needed",
    "limits_note",
]

FILE_OVERHEAD = 8 * 1024  # graph structure, names, and metadata besides the tokenizer (a few kB)
DEFAULT_LIMITS = LoadLimits()  # what load() accepts unless told otherwise


@dataclass(frozen=True)
class ModelShape:
    """The sizes that set a model file's weights (the fields of the training ``ModelConfig`` that
    matter, and the vocabulary)."""

    vocab_size: int
    embedding_dim: int
    lstm_units: int
    num_layers: int
    tie_embeddings: bool

    @property
    def lstm(self) -> int:
        """Weights of the LSTM kernels (W and R of every layer)."""
        u = self.lstm_units
        return sum(4 * u * (self._input_width(layer) + u) for layer in range(self.num_layers))

    @property
    def output(self) -> int:
        """Weights of the output matrix (untied), or of the projection (tied, when widths differ)."""
        v, e, u = self.vocab_size, self.embedding_dim, self.lstm_units
        if self.tie_embeddings:
            return u * e if u != e else 0  # the output reuses the embedding matrix
        return u * v

    @property
    def matrices(self) -> int:
        """Weights in the matrices (embedding, LSTM kernels, output or projection): int8 quantizes these."""
        return self.vocab_size * self.embedding_dim + self.lstm + self.output

    @property
    def vectors(self) -> int:
        """Weights in the biases (each LSTM's 8 x units, the output's vocabulary): float32 in int8 files."""
        return 8 * self.lstm_units * self.num_layers + self.vocab_size

    def file_bytes(self, tokenizer_bytes: int, *, int8: bool = False) -> int:
        """The exported file's size in bytes, within a few percent: the weights (1 byte each for the
        matrices of an int8 file, else 4), the tokenizer JSON's ``tokenizer_bytes`` and the rest."""
        return (1 if int8 else 4) * self.matrices + 4 * self.vectors + tokenizer_bytes + FILE_OVERHEAD

    def largest_tensor_bytes(self, *, int8: bool = False) -> int:
        """The largest weight: the embedding matrix, the output matrix or an LSTM kernel (1 byte a
        weight in an int8 file, else 4), or the output bias (float32 either way)."""
        v, e, u = self.vocab_size, self.embedding_dim, self.lstm_units
        widest = max(4 * u * max(e, u), v * e, 0 if self.tie_embeddings else u * v)
        return max((1 if int8 else 4) * widest, 4 * v)

    def total_bytes(self, *, int8: bool = False) -> int:
        """All the graph's tensors for one row and position, about: the weights and a few
        vocabulary-wide float32 vectors (the logits and the steps that make them)."""
        return (1 if int8 else 4) * self.matrices + 4 * self.vectors + 4 * 4 * self.vocab_size

    @property
    def macs_per_token(self) -> int:
        """Multiply-accumulates of one step for one row and position (the LSTMs and the output layer)."""
        tied = self.embedding_dim * self.vocab_size if self.tie_embeddings else 0  # x @ E^T
        return self.lstm + self.output + tied

    def needed(
        self, tokenizer_bytes: int, *, int8: bool = False, limits: LoadLimits | None = None
    ) -> dict[str, int]:
        """:func:`limits_needed` for a file of this shape, from the estimates."""
        return limits_needed(
            file_bytes=self.file_bytes(tokenizer_bytes, int8=int8),
            tokenizer_bytes=tokenizer_bytes,
            largest_tensor_bytes=self.largest_tensor_bytes(int8=int8),
            total_bytes=self.total_bytes(int8=int8),
            macs_per_token=self.macs_per_token,
            state_width=self.lstm_units,
            vocab_size=self.vocab_size,
            limits=limits,
        )

    def _input_width(self, layer: int) -> int:
        return self.embedding_dim if layer == 0 else self.lstm_units


def limits_needed(
    *,
    file_bytes: int,
    tokenizer_bytes: int,
    largest_tensor_bytes: int,
    total_bytes: int,
    macs_per_token: int,
    state_width: int,
    vocab_size: int,
    limits: LoadLimits | None = None,
) -> dict[str, int]:
    """``{LoadLimits field: the value a file needs}`` for each limit of ``limits`` (by default
    :data:`DEFAULT_LIMITS`) that a file of these figures exceeds; empty when it loads as it is."""
    limits = limits or DEFAULT_LIMITS
    figures = {
        "max_file_bytes": file_bytes,
        "max_tokenizer_bytes": tokenizer_bytes,
        "max_tensor_bytes": largest_tensor_bytes,
        "max_graph_bytes": total_bytes,
        "max_macs_per_token": macs_per_token,
        "max_state_width": state_width,
        "max_vocab_size": vocab_size,
    }
    return {name: value for name, value in figures.items() if value > getattr(limits, name)}


def limits_call(needed: dict[str, int]) -> str:
    """The ``LoadLimits(...)`` expression that admits a file needing ``needed`` (byte figures rounded
    up to whole MiB), as a user would type it."""
    parts = []
    for name, value in needed.items():
        if name.endswith("_bytes") or name == "max_macs_per_token":
            parts.append(f"{name}={-(-value // MiB)} * MiB")
        else:
            parts.append(f"{name}={value}")
    return f"LoadLimits({', '.join(parts)})"


def limits_note(needed: dict[str, int]) -> str:
    """The sentence that says how to load a file needing ``needed``: in Python, with the commands, and in
    JavaScript (nextword-web's ``load()`` has the same limits, named in camelCase)."""
    text = f"load(path, limits={limits_call(needed)}) in Python, --no-size-limits for the nextword commands"
    parts = []
    for name, value in needed.items():
        head, *rest = name.split("_")
        camel = head + "".join(word.title() for word in rest)
        if name.endswith("_bytes") or name == "max_macs_per_token":
            parts.append(f"{camel}: {-(-value // MiB)} * 1024 * 1024")
        else:
            parts.append(f"{camel}: {value}")
    return f"{text}, load(url, {{ limits: {{ {', '.join(parts)} }} }}) in the browser"
