"""A value of the wrong type is a WrongTypeError: a TypeError, as Python raises for one, and a ValueError
too, as 0.2.0 raised for most of them, so that callers' `except ValueError` (the server's 400s, the
command line's exit 2) keep working; a value of the right type out of its range stays a ValueError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nextword.runtime import GenerationConfig, WrongTypeError
from nextword.runtime.checks import as_path, check_bool, check_int, check_real


def test_the_class_is_a_type_error_and_a_value_error() -> None:
    assert issubclass(WrongTypeError, TypeError) and issubclass(WrongTypeError, ValueError)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda: check_bool("lowercase", "no"), "^lowercase must be True or False, got 'no'$"),
        (lambda: as_path("out", 5), r"^out must be a file path \(str or pathlib.Path\), got 5$"),
        (lambda: check_int("top_k", "5", 0, 10), "^top_k must be an integer, got '5'$"),
        (lambda: check_int("top_k", 5.0, 0, 10), "^top_k must be an integer, got 5.0$"),
        (lambda: check_int("top_k", True, 0, 10), "^top_k must be an integer, got True$"),
        (lambda: check_real("top_p", "0.5", low=0, low_open=True, high=1), "^top_p must be a finite number"),
        (
            lambda: check_real("top_p", None, low=0, low_open=True),
            "^top_p must be a finite number > 0, got None$",
        ),
    ],
)
def test_the_shared_checks_raise_it_for_a_wrong_type(check, message: str) -> None:
    with pytest.raises(WrongTypeError, match=message):
        check()


@pytest.mark.parametrize(
    "check",
    [
        lambda: check_int("top_k", -1, 0, 10),
        lambda: check_int("top_k", 11, 0, 10),
        lambda: check_real("top_p", 1.5, low=0, low_open=True, high=1),
        lambda: check_real("top_p", float("nan"), low=0, low_open=True, high=1),
        lambda: as_path("out", "", empty=False),
    ],
)
def test_a_value_of_the_right_type_out_of_range_stays_a_plain_value_error(check) -> None:
    with pytest.raises(ValueError) as caught:
        check()
    assert not isinstance(caught.value, TypeError), caught.value


def test_through_a_config_and_with_the_same_message_as_before() -> None:
    with pytest.raises(
        WrongTypeError, match=r"^temperature must be a finite number >= 0 \(0 is greedy\), got '1'$"
    ):
        GenerationConfig(temperature="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got -1$") as caught:
        GenerationConfig(temperature=-1)
    assert type(caught.value) is ValueError


def test_a_run_config_field_of_the_wrong_type_is_named_not_blamed_on_the_version(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="install nextword[train] to read run configs")
    from nextword.train import CorpusConfig, TrainConfig

    data = TrainConfig(corpus=CorpusConfig(paths=("a.txt",))).to_dict()
    data["overwrite"] = "yes"
    with pytest.raises(WrongTypeError, match=r"^overwrite must be True or False, got 'yes'$"):
        TrainConfig.from_dict(json.loads(json.dumps(data)))


def test_where_order_means_something_a_set_or_a_dict_is_refused() -> None:
    """A set's order is no order: taken as a vocabulary's ids, tokens would get arbitrary ids."""
    from nextword.runtime.tokenizer import SPECIAL_TOKENS, Tokenizer

    with pytest.raises(WrongTypeError, match=r"^tokens must be a list of token strings in id order, got"):
        Tokenizer({*SPECIAL_TOKENS, "the", "network"})
    tokenizer = Tokenizer([*SPECIAL_TOKENS, "the", "network"])
    with pytest.raises(WrongTypeError, match=r"^ids must be token ids \(a list of ints\), got \{"):
        tokenizer.decode({3, 4})
    assert tokenizer.decode([3, 4]) == tokenizer.decode(i for i in (3, 4))  # any ordered iterable
