"""Word-level tokenizer shared by training and the runtime.

Pure Python (``re``, ``unicodedata``, ``json``): the runtime must not need anything else. The same
object turns training text into ids, is serialized into the model file, and turns generated ids back
into readable text. How text is split into words, for each tokenizer format version, is
:mod:`nextword.runtime.splitting`'s; the spacing of decoded text is :mod:`nextword.runtime.spacing`'s.
"""

from __future__ import annotations

import json
import logging
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .checks import check_bool, check_iterable, plain_numbers, wrong_type
from .errors import WrongTypeError
from .field_help import with_field_help
from .spacing import capitalized, ends_sentence, glued, may_end_sentence, starts_after
from .splitting import TOKENIZER_FORMAT_VERSION, tokenize, version_needed

__all__ = [
    "EOD",
    "EOD_ID",
    "MAX_TOKEN_CHARS",
    "MAX_VOCAB_SIZE",
    "PAD",
    "PAD_ID",
    "PUNCTUATION",
    "READABLE_VERSIONS",
    "SPECIAL_TOKENS",
    "TOKENIZER_FORMAT_VERSION",
    "UNK",
    "UNK_ID",
    "Tokenizer",
    "TokenizerConfig",
]

READABLE_VERSIONS = (1, 2, 3, 4, 5)
_TOKENIZER_FORMAT_NAME = "nextword.tokenizer"
logger = logging.getLogger(__name__)

# Caps on a vocabulary read from a file. A corpus word longer than MAX_TOKEN_CHARS is not a word, and
# MAX_VOCAB_SIZE is far above any vocabulary a model file under the loader's size cap can use.
MAX_TOKEN_CHARS = 1000
MAX_VOCAB_SIZE = 1_000_000

PAD = "<pad>"  # id 0: fills the tail of the last training window; never generated
UNK = "<unk>"  # id 1: any word outside the vocabulary
EOD = "<eod>"  # id 2: end of one document and start of the next
SPECIAL_TOKENS = (PAD, UNK, EOD)
PAD_ID, UNK_ID, EOD_ID = (SPECIAL_TOKENS.index(token) for token in (PAD, UNK, EOD))  # 0, 1, 2

PUNCTUATION = frozenset(".,;:()?!")
# Characters no token can contain: whitespace (text is split there), C0/C1 controls (normalization
# removes them) and lone surrogates (not encodable, so not printable).
_UNUSABLE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@with_field_help  # help(TokenizerConfig) lists the fields with their --help
@dataclass(frozen=True)
class TokenizerConfig:
    """How text is normalized and which words enter the vocabulary."""

    lowercase: bool = field(
        default=True,
        metadata={"help": "lowercase all text; generated text is capitalized at sentence starts"},
    )
    drop_figure_refs: bool = field(
        default=True, metadata={"help": 'remove drawing reference numerals such as "(12)" or "(12a)"'}
    )
    min_count: int = field(
        default=2, metadata={"help": "occurrences in the training split a word needs to enter the vocabulary"}
    )
    max_vocab: int = field(default=20000, metadata={"help": "vocabulary size cap, special tokens included"})

    def __post_init__(self) -> None:
        plain_numbers(self)
        check_bool("lowercase", self.lowercase)
        check_bool("drop_figure_refs", self.drop_figure_refs)
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int):
            raise wrong_type("min_count", "an integer >= 1", self.min_count)
        if self.min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {self.min_count!r}")
        wanted = f"an integer > {len(SPECIAL_TOKENS)} (it counts the special tokens)"
        if isinstance(self.max_vocab, bool) or not isinstance(self.max_vocab, int):
            raise wrong_type("max_vocab", wanted, self.max_vocab)
        if self.max_vocab <= len(SPECIAL_TOKENS):
            raise ValueError(f"max_vocab must be {wanted}, got {self.max_vocab!r}")


def _config(config: Any) -> TokenizerConfig:
    """``config``, or the defaults for None; anything but a :class:`TokenizerConfig` is refused (a dict
    would fail later, in ``encode``, and an empty one would silently be the defaults)."""
    if config is None:
        return TokenizerConfig()
    if not isinstance(config, TokenizerConfig):
        raise wrong_type("config", "a TokenizerConfig (or None for the defaults)", config)
    return config


class Tokenizer:
    """Maps text to word ids and back.

    Build one from training documents with :meth:`Tokenizer.build`, or restore one with
    :meth:`Tokenizer.from_json`. Ids 0, 1 and 2 are the padding, unknown and end-of-document tokens.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        config: TokenizerConfig | None = None,
        version: int = TOKENIZER_FORMAT_VERSION,
    ) -> None:
        """Create a tokenizer whose id ``i`` is ``tokens[i]``; the first three must be the special tokens.

        ``version`` is the tokenizer format version whose splitting rules it follows (one of
        :data:`READABLE_VERSIONS`; see the module docstring): a file's own, or the newest.

        Ids are the positions in ``tokens``, so they are contiguous. Each token must be a non-empty string
        of at most :data:`MAX_TOKEN_CHARS` characters, distinct from the others, and free of whitespace,
        control characters and lone surrogates: tokenizing never produces those (normalization removes
        control characters and splits at whitespace), and a generated control character could rewrite
        the terminal that prints it, a surrogate could not be printed at all. At most
        :data:`MAX_VOCAB_SIZE` tokens. Raises ``ValueError`` naming the offending entry, and
        :class:`~.errors.WrongTypeError` for a ``tokens`` or a ``config`` of the wrong type.
        """
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise ValueError(
                f"tokenizer format version must be one of {list(READABLE_VERSIONS)}, got {version!r}"
            )
        config = _config(config)
        check_iterable("tokens", tokens, "a list of token strings in id order", ordered=True)
        tokens = list(tokens)
        if len(tokens) > MAX_VOCAB_SIZE:
            raise ValueError(
                f"the vocabulary has {len(tokens):,} tokens, more than the {MAX_VOCAB_SIZE:,} allowed; "
                "lower max_vocab"
            )
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"the vocabulary must start with the special tokens {list(SPECIAL_TOKENS)}, "
                f"got [{', '.join(_shorten(t) for t in tokens[: len(SPECIAL_TOKENS)])}]"
            )
        index: dict[str, int] = {}
        for i, token in enumerate(tokens):
            if not isinstance(token, str) or not token:
                refusal = f"vocabulary entry {i} must be a non-empty string, got {_shorten(token)}"
                raise (ValueError if isinstance(token, str) else WrongTypeError)(refusal)
            if len(token) > MAX_TOKEN_CHARS:
                raise ValueError(
                    f"vocabulary entry {i} is {len(token):,} characters long, more than the "
                    f"{MAX_TOKEN_CHARS:,} allowed: {_shorten(token)}"
                )
            bad = _UNUSABLE.search(token)
            if bad:
                raise ValueError(
                    f"vocabulary entry {i} ({_shorten(token)}) contains {bad.group()!r}, which no tokenized "
                    "text contains (whitespace, control character or lone surrogate); the tokenizer was "
                    "not written by nextword: re-export the model"
                )
            if token in index:
                raise ValueError(
                    f"vocabulary token {_shorten(token)} appears twice (ids {index[token]} and {i})"
                )
            index[token] = i
        self.config = config
        self.version = int(version)
        self._tokens = tuple(tokens)  # never changes: shared by :attr:`table`
        self._index = index

    # ----------------------------------------------------------------- building and serializing

    @classmethod
    def build(cls, documents: Iterable[str], config: TokenizerConfig | None = None) -> Tokenizer:
        """Count words over ``documents`` (the training split only) and keep the most frequent.

        Words seen fewer than ``config.min_count`` times, or beyond ``config.max_vocab``, map to the
        unknown token. Ties in frequency are broken alphabetically, so the result is deterministic.
        Its format version is the oldest that splits ``documents`` alike (:func:`.splitting.oldest_version`):
        3; 4 where one holds a character that only formats text (a soft hyphen, a zero-width space); 5
        where one holds a Han ideograph, the Arabic tatweel or a Hebrew gershayim typed as ``"``.
        """
        config = _config(config)
        check_iterable(
            "documents",
            documents,
            "a list (or any iterable) of strings",
            "pass [text] to build from one document",
        )
        counts: Counter[str] = Counter()
        needed = 3  # the format recorded is the oldest that splits these documents alike
        for document in documents:
            counts.update(tokenize(document, config))
            if needed < TOKENIZER_FORMAT_VERSION:
                needed = max(needed, version_needed(document))
        return cls.from_counts(counts, config, needed)

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        config: TokenizerConfig | None = None,
        version: int = TOKENIZER_FORMAT_VERSION,
    ) -> Tokenizer:
        """Keep the most frequent words of ``counts`` (token -> occurrences in the training split).

        The selection of :meth:`build`, for counts gathered elsewhere (e.g. in one streaming pass over
        a corpus too large to hold, with :func:`tokenize` and the same ``config`` and ``version``).
        Special tokens in ``counts`` are ignored, and so are words longer than :data:`MAX_TOKEN_CHARS`
        or holding lone surrogates (a warning says how many: no model file may hold them); ``counts``
        is not modified. ``version`` is the newest format by default, which readers before it (nextword
        0.2.0 for format 4) refuse: pass the largest :func:`.splitting.version_needed` of the corpus's
        documents (3 for most), as :meth:`build` chooses.
        """
        config = _config(config)
        frequent = [w for w, n in counts.items() if n >= config.min_count and w not in SPECIAL_TOKENS]
        long = [w for w in frequent if len(w) > MAX_TOKEN_CHARS]
        if long:  # a repeated blob (base64, a long URL): not a word a file may hold
            logger.warning(
                "%d frequent 'words' longer than %d characters left out of the vocabulary (read as <unk>): "
                "%s",
                len(long),
                MAX_TOKEN_CHARS,
                _shorten(long[0]),
            )
        # lone surrogates: text read with errors="surrogateescape" (bytes that were not UTF-8), which no
        # model file may hold either
        broken = [w for w in frequent if len(w) <= MAX_TOKEN_CHARS and _UNUSABLE.search(w)]
        if broken:
            logger.warning(
                "%d frequent words holding lone surrogates (bytes that were not UTF-8, read with "
                "errors='surrogateescape') left out of the vocabulary (read as <unk>): %s",
                len(broken),
                _shorten(broken[0]),
            )
        usable = set(frequent) - set(long) - set(broken)
        kept = sorted(usable, key=lambda w: (-counts[w], w))
        return cls(list(SPECIAL_TOKENS) + kept[: config.max_vocab - len(SPECIAL_TOKENS)], config, version)

    def to_json(self) -> str:
        """Serialize to a JSON string (format name, format version, config, tokens in id order)."""
        return json.dumps(
            {
                "format": _TOKENIZER_FORMAT_NAME,
                "version": self.version,
                "config": asdict(self.config),
                "tokens": self._tokens,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Tokenizer:
        """Restore a tokenizer from :meth:`to_json` output; raises ``ValueError`` naming what is wrong
        (:class:`~.errors.WrongTypeError`, one too, for a ``text`` that is no string)."""
        if not isinstance(text, str | bytes | bytearray):
            raise wrong_type("text", "a JSON string (str or bytes), as to_json() writes", text)
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("tokenizer JSON is nested too deeply to parse") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers over 4,300 digits
            raise ValueError(f"tokenizer JSON does not parse: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != _TOKENIZER_FORMAT_NAME:
            raise ValueError(f'not a nextword tokenizer (expected "format": "{_TOKENIZER_FORMAT_NAME}")')
        version = data.get("version")
        readable = next((v for v in READABLE_VERSIONS if version == v), None)  # 1.0 and true are 1
        if readable is None:
            raise ValueError(
                f"tokenizer format version {version!r} is not supported (this nextword reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS[:-1]))} and {READABLE_VERSIONS[-1]}); upgrade "
                "nextword or re-export the model"
            )
        raw_config = data.get("config", {})
        tokens = data.get("tokens")
        if not isinstance(raw_config, dict) or not isinstance(tokens, list):
            raise ValueError('tokenizer JSON needs a "config" object and a "tokens" list')
        known = {f.name for f in fields(TokenizerConfig)}
        unknown = sorted(set(raw_config) - known)
        if unknown:
            raise ValueError(
                f"tokenizer config has unknown fields {unknown}; known fields are {sorted(known)}"
            )
        for name in ("lowercase", "drop_figure_refs"):
            if name in raw_config and not isinstance(raw_config[name], bool):
                raise ValueError(
                    f"tokenizer config {name} must be true or false, got {_shorten(raw_config[name])}"
                )
        try:
            config = TokenizerConfig(**raw_config)
        except WrongTypeError:
            raise
        except TypeError as exc:
            raise ValueError(f"tokenizer config is invalid: {exc}") from None
        return cls(tokens, config, readable)

    # ----------------------------------------------------------------- text <-> tokens <-> ids

    def tokenize(self, text: str) -> list[str]:
        """Normalize ``text`` and split it into word and punctuation tokens (no vocabulary lookup)."""
        return tokenize(text, self.config, self.version)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; words outside the vocabulary become the unknown id."""
        unk = self.unk_id
        return [self._index.get(token, unk) for token in tokenize(text, self.config, self.version)]

    def decode(self, ids: Iterable[int]) -> str:
        """Readable text for ``ids``; padding is left out and end-of-document starts a new paragraph.
        An id outside the vocabulary (negative, too large, not an integer) is a ``ValueError``, as is a
        string in place of the ids (its characters would be read as ids one by one)."""
        if isinstance(ids, str | bytes):
            raise WrongTypeError(
                f"decode takes token ids (a list of ints), got {type(ids).__name__}: encode() turns text "
                "into ids"
            )
        check_iterable("ids", ids, "token ids (a list of ints)", ordered=True)
        return "".join(self.pieces(self.token_of(i) for i in ids))

    def pieces(self, tokens: Iterable[str], previous: str | None = None) -> Iterator[str]:
        """Yield each token as the text piece that continues the text so far.

        ``previous`` is the token before the first one (``None`` at the start of a text). Each piece
        carries its own leading space, if any, and sentence-start capitals when the tokenizer
        lowercases, so the pieces can be streamed and joined as they come.
        """
        new_paragraph, starts = False, previous is None or starts_after(previous, False)
        for token in tokens:
            if token == PAD:
                continue
            if token == EOD:  # a document ends: the next one starts a new paragraph
                new_paragraph = new_paragraph or previous is not None
                previous, starts = None, True
                continue
            piece = self.piece(token, previous, starts)
            if new_paragraph:
                piece, new_paragraph = "\n\n" + piece, False
            yield piece
            previous, starts = token, self.starts_after(token, starts, previous)

    def piece(self, token: str, previous: str | None, starts: bool | None = None) -> str:
        """The text that appends ``token`` after ``previous`` (``None`` at the start of a text): a space
        unless punctuation rules say otherwise, and a capital at a sentence start when lowercasing.

        ``starts``: whether ``token`` begins a sentence; ``None`` reads it from ``previous`` alone (a
        text start or a sentence end). Callers that follow a text pass what :meth:`starts_after` or
        :meth:`begins_sentence` say, which also carry a sentence start across ``(``, ``)``, ``¿``, ``¡``."""
        space = "" if glued(token, previous) else " "
        if starts is None:
            starts = previous is None or starts_after(previous, False)
        return space + (capitalized(token) if self.config.lowercase and starts else token)

    starts_after = staticmethod(starts_after)

    @staticmethod
    def begins_sentence(before: Iterable[str]) -> bool:
        """Whether the token after a text begins a sentence, from the text's tokens ``before`` it, the
        latest first (``reversed(tokens)``; it reads only as far back as it needs): at a document start
        or an end of document, after a sentence end (not the dot after initials, ``e.g.``), or after
        parentheses, ``¿`` or ``¡`` that follow one of those."""
        tokens = (token for token in before if token != PAD)  # padding writes nothing (pieces)
        for token in tokens:
            if token == EOD:
                return True
            if may_end_sentence(token):  # a sentence end, unless a dot after initials, a ";" not Greek's
                return ends_sentence(token, next(tokens, None))
            if not starts_after(token, True):
                return False
        return True

    # ----------------------------------------------------------------- vocabulary access

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def tokens(self) -> list[str]:
        """The vocabulary in id order (a copy)."""
        return list(self._tokens)

    @property
    def table(self) -> tuple[str, ...]:
        """The vocabulary in id order, not copied (immutable): for loops that read a token per id."""
        return self._tokens

    def id_of(self, token: str) -> int:
        """The id of ``token``, or the unknown id (a ``token`` that is no string is refused)."""
        if not isinstance(token, str):
            raise wrong_type("token", "a str", token)
        return self._index.get(token, self.unk_id)

    def token_of(self, token_id: int) -> str:
        """The token with id ``token_id`` (``ValueError`` outside ``0..len(self) - 1``)."""
        integer = isinstance(token_id, numbers.Integral) and not isinstance(token_id, bool)
        if not integer or not 0 <= token_id < len(self._tokens):
            last = len(self._tokens) - 1
            refusal = f"token id {_shorten(token_id)} is not in this vocabulary of ids 0..{last}"
            raise (ValueError if integer else WrongTypeError)(refusal)
        return self._tokens[token_id]

    @property
    def pad_id(self) -> int:
        """The id of ``<pad>`` (0), which fills the tail of the last training window; never generated."""
        return PAD_ID

    @property
    def unk_id(self) -> int:
        """The id of ``<unk>`` (1), which stands for every word outside the vocabulary."""
        return UNK_ID

    @property
    def eod_id(self) -> int:
        """The id of ``<eod>`` (2): the end of one document and the start of the next."""
        return EOD_ID

    @property
    def special_ids(self) -> tuple[int, int, int]:
        """The ids of padding, unknown and end-of-document, which are never words of a text."""
        return (self.pad_id, self.unk_id, self.eod_id)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Tokenizer)
            and self._tokens == other._tokens
            and self.config == other.config
            and self.version == other.version
        )

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={len(self)}, config={self.config}, version={self.version})"


def _shorten(value: object, limit: int = 60) -> str:
    """``repr`` of a value for an error message, cut to about ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        return "an integer of more than 4,300 digits"
    return text if len(text) <= limit else text[:limit] + "..."
