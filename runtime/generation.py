"""Generation settings shared by the Python API and the CLI, and their validation."""

from __future__ import annotations

import numbers
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .checks import check_bool, check_int, check_real, plain_numbers, shown
from .errors import WrongTypeError
from .field_help import with_field_help
from .tokenizer import MAX_VOCAB_SIZE

__all__ = [
    "FILE_DEFAULTS",
    "MAX_BATCH",
    "MAX_LENGTH_PENALTY",
    "MAX_NGRAM",
    "MAX_PENALTY",
    "MAX_STOP_CHARS",
    "MAX_STOP_STRINGS",
    "MAX_TEMPERATURE",
    "MAX_TOP_K",
    "MAX_WORDS",
    "MIN_TEMPERATURE",
    "GenerationConfig",
    "OptionConflict",
    "call_config",
    "check_option_names",
    "defaults_note",
    "stream_config",
]

# Every option is bounded: the same limits hold for call options and for the decoding defaults a model
# file stores (a file from elsewhere is input too). Each is far beyond any value with an effect of its own.
MAX_WORDS = 10_000  # cap on max_words: each word is one session call, so this bounds a call's time
MAX_BATCH = 256  # cap on rows run at once: prompts x num_return_sequences (x num_beams for beam search)
# Below 0.01 sampling is greedy in all but name (a logit gap of 0.1 becomes a probability ratio of
# e**10); above 100 it is uniform in all but name (a gap of 10 becomes e**0.1). Outside the range the
# float32 logits over- or underflow, and every word, banned ones included, looks alike.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
MAX_PENALTY = 100.0  # repetition_penalty from 1/100 to 100: at 100 a repeated word is as good as banned
MAX_LENGTH_PENALTY = 10.0  # |length_penalty|: 10,000 words ** 10 = 1e40 stays finite; 2 is already strong
MAX_TOP_K = MAX_VOCAB_SIZE  # the largest vocabulary a tokenizer may have: a larger top_k means "all"
# top_k=0 is "off", as None is (Hugging Face's generate reads 0 so): it turns a model file's top_k off
# from the command line and from JSON. It becomes None, so a model file never stores a 0 (which runtimes
# before 0 was allowed refuse).
_TOP_K_OFF = "0: no top-k filtering"
MAX_NGRAM = 100  # no_repeat_ngram_size: a 100-word sequence only repeats in copied text
MAX_STOP_STRINGS = 16  # stop strings are markers (a newline, a heading, "END"): checked at every word
MAX_STOP_CHARS = 64  # characters per stop string
# Whose decoding defaults a model's are, as refusals say it: "num_beams=4 is this model file's decoding
# default" where a value the caller never set conflicts with one the caller did.
FILE_DEFAULTS = "this model file's"


class OptionConflict(ValueError):
    """Options that are each valid but not together. ``names``: the fields whose values the message
    names; ``aside``: its closing remark, in parentheses after it, which a note on where a value came
    from (:func:`defaults_note`) joins."""

    def __init__(self, message: str, names: tuple[str, ...], aside: str = "") -> None:
        super().__init__(f"{message} ({aside})" if aside else message)
        self.message, self.names, self.aside = message, names, aside

    def __reduce__(self) -> tuple[type, tuple[str, tuple[str, ...], str]]:  # pickled whole
        return type(self), (self.message, self.names, self.aside)

    def noted(self, note: str) -> OptionConflict:
        """The same refusal with ``note`` added to its closing remark."""
        return OptionConflict(self.message, self.names, f"{self.aside}; {note}" if self.aside else note)


@with_field_help  # help(GenerationConfig) lists the fields with their --help
@dataclass(frozen=True)
class GenerationConfig:
    """How :meth:`NextWordModel.generate` continues a prompt.

    A "word" is one token: a word or a punctuation mark. Every field can also be passed to
    ``generate()`` as a keyword argument; invalid values raise ``ValueError`` naming the parameter, the
    value and the allowed range.
    """

    max_words: int = field(default=50, metadata={"help": f"words to generate at most (0..{MAX_WORDS})"})
    min_words: int = field(
        default=0,
        metadata={
            "help": "words to generate at least before the model may end the document (at most max_words)"
        },
    )
    temperature: float = field(
        default=1.0,
        metadata={
            "help": f"softmax temperature, 0 or {MIN_TEMPERATURE:g}..{MAX_TEMPERATURE:g}; 0 is greedy "
            "(always the most likely word)"
        },
    )
    top_k: int | None = field(
        default=None,
        metadata={
            "help": "sample only among the K most likely words (0 = off: all words, even where a model "
            "file sets K)",
            "unset": "off",
        },
    )
    top_p: float | None = field(
        default=None,
        metadata={
            "help": "nucleus sampling: only the most likely words that together hold P (0 < P <= 1; 1 = "
            "off, even where a model file sets P)",
            "unset": "off",
        },
    )
    repetition_penalty: float = field(
        default=1.0,
        metadata={
            "help": "> 1 makes words already in the prompt or the text less likely, < 1 likelier (1 = off; "
            f"{1 / MAX_PENALTY:g}..{MAX_PENALTY:g})"
        },
    )
    no_repeat_ngram_size: int = field(
        default=0,
        metadata={"help": f"never repeat a word sequence of this length (0 = off; at most {MAX_NGRAM})"},
    )
    stop: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "strings that end the text; the text is cut before them (at most "
            f"{MAX_STOP_STRINGS}, of {MAX_STOP_CHARS} characters each)",
            "clear": "no stop strings",  # --no-stop where a model file's defaults apply (cli/args.py)
        },
    )
    stop_at_end: bool = field(
        default=True,
        metadata={"help": "end where the model ends the document (off: never end early, run to max_words)"},
    )
    allow_unknown: bool = field(
        default=False, metadata={"help": "allow the unknown-word token <unk> in the output"}
    )
    num_return_sequences: int = field(
        default=1,
        metadata={
            "help": f"texts to generate per prompt (sampling), or best beams to return (1..{MAX_BATCH}; with "
            "beam search, at most num_beams)"
        },
    )
    num_beams: int = field(
        default=1,
        metadata={"help": f"beam search with this many beams (1 = sampling or greedy; at most {MAX_BATCH})"},
    )
    length_penalty: float = field(
        default=1.0,
        metadata={
            "help": "beam search: scores are divided by length**length_penalty (> 0 favours long texts; "
            f"{-MAX_LENGTH_PENALTY:g}..{MAX_LENGTH_PENALTY:g})"
        },
    )
    seed: int | None = field(
        default=None,
        metadata={"help": "random seed, an integer >= 0; the same seed and settings give the same text"},
    )
    cache: bool = field(
        default=False,
        metadata={
            "help": "mix in the model file's continuous cache: words that followed similar states earlier "
            "in the text become likelier (needs a file with cache settings)"
        },
    )

    def __post_init__(self) -> None:
        plain_numbers(self)
        check_int("max_words", self.max_words, 0, MAX_WORDS)
        check_int("min_words", self.min_words, 0, None)
        if self.min_words > self.max_words:
            raise OptionConflict(
                f"min_words must be at most `max_words` ({self.max_words}), got {self.min_words}: raise "
                "`max_words` too",
                ("min_words", "max_words"),
            )
        check_real("temperature", self.temperature, low=0.0, low_open=False, note="0 is greedy")
        if self.temperature and not MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE:
            raise ValueError(
                f"temperature must be 0 (greedy) or from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}, got "
                f"{self.temperature!r}: below {MIN_TEMPERATURE:g} sampling is greedy in all but name "
                f"(use 0), above {MAX_TEMPERATURE:g} it picks words uniformly"
            )
        if self.top_k is not None:
            top_k = self.top_k
            integer = isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool)
            if integer and not 0 <= top_k <= MAX_TOP_K:
                raise ValueError(f"top_k must be in 0..{MAX_TOP_K} ({_TOP_K_OFF}), got {shown(int(top_k))}")
            check_int("top_k", top_k, 0, MAX_TOP_K)  # the message for a value that is no integer
            if top_k == 0:
                object.__setattr__(self, "top_k", None)
        if self.top_p is not None:
            check_real("top_p", self.top_p, low=0.0, low_open=True, high=1.0)
            if self.top_p == 1:  # every word: off, as None is (sampling never cut at 1), like top_k=0
                object.__setattr__(self, "top_p", None)
        check_real(
            "repetition_penalty",
            self.repetition_penalty,
            low=1 / MAX_PENALTY,
            low_open=False,
            high=MAX_PENALTY,
            note="1 is off",
        )
        check_int("no_repeat_ngram_size", self.no_repeat_ngram_size, 0, MAX_NGRAM)
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        if isinstance(stop, (tuple, list)) and len(stop) > MAX_STOP_STRINGS:  # before looking at each
            raise ValueError(f"stop holds {len(stop):,} strings; at most {MAX_STOP_STRINGS} are allowed")
        if not isinstance(stop, (tuple, list)) or not all(isinstance(s, str) and s for s in stop):
            refusal = f"stop must be a string or a list of non-empty strings, got {_listed(self.stop)}"
            if isinstance(stop, (tuple, list)) and all(isinstance(s, str) for s in stop):
                raise ValueError(refusal)  # strings, one of them empty
            raise WrongTypeError(refusal)
        long = next((s for s in stop if len(s) > MAX_STOP_CHARS), None)
        if long is not None:
            raise ValueError(
                f"stop string {long[:40]!r}... is {len(long):,} characters; at most {MAX_STOP_CHARS} are "
                "allowed"
            )
        object.__setattr__(self, "stop", tuple(stop))
        for name in ("stop_at_end", "allow_unknown", "cache"):
            check_bool(name, getattr(self, name))
        check_int("num_return_sequences", self.num_return_sequences, 1, MAX_BATCH)
        check_int("num_beams", self.num_beams, 1, MAX_BATCH)
        check_real(
            "length_penalty",
            self.length_penalty,
            low=-MAX_LENGTH_PENALTY,
            low_open=False,
            high=MAX_LENGTH_PENALTY,
        )
        if self.seed is not None:
            check_int("seed", self.seed, 0, None)
        if self.num_beams > 1:
            sampling = [name for name in ("top_k", "top_p") if getattr(self, name) is not None]
            sampling += ["temperature"] if self.temperature not in (0, 1) else []
            if sampling:
                conflicts = ", ".join(f"{name}={getattr(self, name)!r}" for name in sampling)
                raise OptionConflict(
                    f"num_beams={self.num_beams} searches deterministically and cannot be combined with "
                    f"the sampling options {conflicts}; drop them or set num_beams=1",
                    ("num_beams", *sampling),
                )
            if self.num_return_sequences > self.num_beams:
                raise OptionConflict(
                    f"num_return_sequences={self.num_return_sequences} must be <= num_beams={self.num_beams}",
                    ("num_return_sequences", "num_beams"),
                    "beam search returns its best beams",
                )

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy: ``temperature`` 0, the most likely word at every step."""
        return self.temperature == 0

    @classmethod
    def from_options(
        cls, config: GenerationConfig | None = None, *, origin: str | None = None, **options: Any
    ) -> GenerationConfig:
        """``config`` (or the defaults) with ``options`` replacing its fields; unknown names raise.

        A ``max_words`` below the base's ``min_words`` lowers that ``min_words`` to it when ``options``
        leave ``min_words`` out: a cap asked for wins over a default (a model file's ``min_words=20``
        does not refuse ``max_words=10``). Likewise ``num_beams > 1`` in ``options`` drops the base's sampling
        options that ``options`` leave out (``top_k``, ``top_p``, a temperature other than 0 or 1): a
        model file's ``top_k=40`` applies to sampling, not to a beam search asked for.

        ``origin`` says whose defaults ``config`` holds (:data:`FILE_DEFAULTS`: a model file's): an
        :class:`OptionConflict` that involves a value of ``config`` that ``options`` leave out then says
        so, ``(num_beams=4 is this model file's decoding default)``, rather than blame an option the
        caller never set."""
        check_option_names(options)
        if config is not None and not isinstance(config, GenerationConfig):
            raise WrongTypeError(
                f"config must be a GenerationConfig, got {type(config).__name__}; pass options by name "
                "(generate(prompt, max_words=30)) or a GenerationConfig(...)"
            )
        base = config or cls()
        cap = options.get("max_words")
        if "min_words" not in options and isinstance(cap, numbers.Integral) and not isinstance(cap, bool):
            options = {**options, "min_words": cap} if 0 <= int(cap) < base.min_words else options
        beams = options.get("num_beams")
        if isinstance(beams, numbers.Integral) and not isinstance(beams, bool) and int(beams) > 1:
            dropped: dict[str, Any] = {"top_k": None, "top_p": None}
            if base.temperature not in (0, 1):
                dropped["temperature"] = 1.0
            options = {**dropped, **options}
        try:
            return replace(base, **options)
        except OptionConflict as exc:
            note = defaults_note(base, exc.names, options, origin) if origin is not None else ""
            if not note:
                raise
            raise exc.noted(note) from None

    def changes(self) -> dict[str, Any]:
        """The fields that differ from :class:`GenerationConfig`'s own defaults, by name."""
        base = type(self)()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(base, f.name)
        }


def defaults_note(
    defaults: GenerationConfig, names: Iterable[str], given: Collection[str], origin: str
) -> str:
    """The values among ``names`` that a refusal takes from ``defaults`` (those ``given``, the options
    the caller set, leave out, and that ``defaults`` changes from :class:`GenerationConfig`'s own), said
    as ``origin``'s: ``num_beams=4 is this model file's decoding default``; ``""`` where there are none."""
    own = GenerationConfig()
    taken = [
        f"{name}={getattr(defaults, name)!r}"
        for name in names
        if name not in given and getattr(defaults, name) != getattr(own, name)
    ]
    if not taken:
        return ""
    if len(taken) == 1:
        return f"{taken[0]} is {origin} decoding default"
    return f"{', '.join(taken[:-1])} and {taken[-1]} are {origin} decoding defaults"


def call_config(
    defaults: GenerationConfig, config: GenerationConfig | None, options: dict[str, Any]
) -> GenerationConfig:
    """The settings of a model's call (``generate``, ``stream``, ``generator``): ``options`` over
    ``config``, or over the model file's decoding ``defaults`` when no ``config`` is given, whose
    values a refusal then names as the file's (:meth:`GenerationConfig.from_options`'s ``origin``).
    A ``config`` that is no :class:`GenerationConfig` (an empty dict too) is refused, not taken as None."""
    if config is not None:
        return GenerationConfig.from_options(config, **options)
    return GenerationConfig.from_options(defaults, origin=FILE_DEFAULTS, **options)


def stream_config(
    defaults: GenerationConfig, config: GenerationConfig | None, prompt: Any, options: dict[str, Any]
) -> GenerationConfig:
    """:func:`call_config` for ``stream()``: one prompt string, one text (no beam search)."""
    resolved = call_config(defaults, config, options)
    if not isinstance(prompt, str):
        raise WrongTypeError(f"stream() takes one prompt string, got {type(prompt).__name__}")
    if resolved.num_return_sequences != 1 or resolved.num_beams != 1:
        names = ("num_return_sequences", "num_beams")
        note = "" if config else defaults_note(defaults, names, options, FILE_DEFAULTS)
        raise ValueError(
            "stream() produces one text: num_return_sequences and num_beams must be 1 "
            f"(got {resolved.num_return_sequences} and {resolved.num_beams}{'; ' + note if note else ''})"
        )
    return resolved


def check_option_names(names: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the ``names`` that are no :class:`GenerationConfig` field, and the
    fields there are (a model file's defaults may hold no other key either: ``origin`` and ``config``,
    :meth:`GenerationConfig.from_options`' own parameters, were taken as them)."""
    known = {f.name for f in fields(GenerationConfig)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown generation option(s) {unknown}; valid options are {sorted(known)}")


def _listed(value: Any) -> str:
    """``value`` as the user wrote it: a tuple (what a list becomes here) shown as a list, cut to 200."""
    try:
        text = repr(list(value)) if isinstance(value, tuple) else repr(value)
    except ValueError:  # an integer past Python's 4,300-digit conversion limit, in it
        return "a value holding an integer of more than 4,300 digits"
    return text if len(text) <= 200 else text[:197] + "..."
