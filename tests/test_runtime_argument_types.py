"""Arguments of the wrong type to the runtime's entry points are refused with a message naming what was
given and what is taken: load()'s model and limits, default_model() with a model already loaded, and
the continuous cache option of scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextword.runtime import LoadLimits, NextWordModel, default_model, evaluate, load
from nextword.runtime.cache import CacheConfig
from nextword.runtime.default import BUNDLED_MODEL


@pytest.fixture(scope="module")
def bundled() -> NextWordModel:
    return load(BUNDLED_MODEL)


@pytest.mark.parametrize(("model", "shown"), [(123, "int"), (None, "NoneType"), ([b"x"], "list")])
def test_load_refuses_a_model_that_is_neither_a_path_nor_bytes(model: object, shown: str) -> None:
    """load() of a number, None or a list is a TypeError naming the type, not a crash further in."""
    with pytest.raises(TypeError, match=rf"^model must be a path or bytes, got {shown}$"):
        load(model)  # type: ignore[arg-type]


def test_load_refuses_limits_that_are_not_load_limits(tmp_path: Path) -> None:
    """limits given as a dict (a common guess) is a TypeError before the file is read."""
    with pytest.raises(TypeError, match=r"^limits must be a LoadLimits, got dict$"):
        load(BUNDLED_MODEL, limits={"max_file_bytes": 10})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got dict"):  # refused before the missing file is noticed
        load(tmp_path / "missing.onnx", limits={"max_file_bytes": 10})  # type: ignore[arg-type]
    assert isinstance(load(BUNDLED_MODEL, limits=LoadLimits()), NextWordModel)


def test_default_model_returns_a_loaded_model_as_is(bundled: NextWordModel) -> None:
    """default_model(model) hands a loaded model back unchanged, loading nothing."""
    assert default_model(bundled) is bundled


@pytest.mark.parametrize("option", [{"device": "cpu"}, {"limits": LoadLimits()}])
def test_default_model_refuses_load_options_for_a_loaded_model(bundled: NextWordModel, option: dict) -> None:
    """device or limits with a model already loaded would be ignored silently: refused instead."""
    with pytest.raises(ValueError, match="device and limits are for a model loaded here"):
        default_model(bundled, **option)


@pytest.mark.parametrize(("cache", "shown"), [("yes", "'yes'"), (1, "1"), (0.5, "0.5"), ({}, r"\{\}")])
def test_scoring_refuses_a_cache_option_that_is_not_a_switch_or_settings(
    bundled: NextWordModel, cache: object, shown: str
) -> None:
    """evaluate() and score() take True, False, None or a CacheConfig; anything else is a ValueError
    (1 is not taken for True)."""
    message = rf"cache must be True, False, None or a CacheConfig, got {shown}$"
    with pytest.raises(ValueError, match=message):
        evaluate(bundled, ["The network stores the weights."], cache=cache)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        bundled.score("the network", cache=cache)  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "shown"), [([1, 2], "list"), ("theta=1", "str"), (None, "NoneType")])
def test_cache_settings_from_json_must_be_an_object(data: object, shown: str) -> None:
    """CacheConfig.from_dict of a JSON value other than an object says what it got."""
    with pytest.raises(ValueError, match=rf"^cache settings must be a JSON object, got {shown}$"):
        CacheConfig.from_dict(data)
