"""Every stage's config checks what it is given when it is made: a wrong type is a ValueError naming
the field, never a value taken for what it is not (a string "no" for True, a path's characters for
paths), and a pathlib.Path is as good as a str."""

import json
from pathlib import Path

import numpy as np
import pytest

from nextword.corpus import CorpusConfig
from nextword.export import ExportConfig
from nextword.runtime import GenerationConfig, LoadLimits, TokenizerConfig
from nextword.train import ModelConfig, TrainConfig


def test_paths_may_be_pathlib_paths_and_are_stored_as_strings(tmp_path):
    """TrainConfig(out=Path) failed while writing config.json, after the run folder was begun."""
    config = TrainConfig(out=tmp_path / "run", embeddings=tmp_path / "vectors.txt")
    assert config.out == str(tmp_path / "run") and config.embeddings == str(tmp_path / "vectors.txt")
    json.dumps(config.to_dict())  # what train() writes into config.json
    export = ExportConfig(run_dir=tmp_path / "run", out=tmp_path / "m.onnx")
    assert (export.run_dir, export.out) == (str(tmp_path / "run"), str(tmp_path / "m.onnx"))


@pytest.mark.parametrize(
    ("paths", "stored"),
    [
        ("a.csv", ("a.csv",)),  # one file, not the characters of its name
        (Path("a.csv"), ("a.csv",)),
        ([Path("a.csv"), "b.txt"], ("a.csv", "b.txt")),
        ((), ()),
    ],
)
def test_corpus_paths_take_one_path_or_a_list(paths, stored):
    assert CorpusConfig(paths=paths).paths == stored


@pytest.mark.parametrize(
    ("paths", "said"), [((1,), "paths[0] must be a file path"), (("",), "paths[0]"), (7, "paths")]
)
def test_corpus_paths_that_are_not_paths_are_refused(paths, said):
    with pytest.raises(ValueError) as caught:
        CorpusConfig(paths=paths)
    assert str(caught.value).startswith(said), caught.value


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda v: CorpusConfig(keep_duplicates=v), "keep_duplicates"),
        (lambda v: TrainConfig(overwrite=v), "overwrite"),
        (lambda v: TrainConfig(mixed_precision=v), "mixed_precision"),
        (lambda v: TrainConfig(embeddings="v.txt", freeze_embeddings=v), "freeze_embeddings"),
        (lambda v: ModelConfig(locked_dropout=v), "locked_dropout"),
        (lambda v: ExportConfig(int8=v), "int8"),
        (lambda v: ExportConfig(overwrite=v), "overwrite"),
        (lambda v: ExportConfig(tune_cache=v), "tune_cache"),
        (lambda v: ExportConfig(evaluate=v), "evaluate"),
    ],
)
def test_a_switch_takes_true_or_false_only(make, name):
    """keep_duplicates="no" turned deduplication off; int8="False" wrote an int8 model."""
    for value in ("no", "False", 0, 1, None):
        with pytest.raises(ValueError, match=rf"^{name} must be True or False, got "):
            make(value)
    make(True), make(False)


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: TrainConfig(model={"embedding_dim": 16}), "model must be a ModelConfig, got dict"),
        (lambda: TrainConfig(corpus={"paths": ["a.csv"]}), "corpus must be a CorpusConfig, got dict"),
        (lambda: TrainConfig(tokenizer={}), "tokenizer must be a TokenizerConfig, got dict"),
        (lambda: ExportConfig(generation={"top_k": 5}), "generation must be a GenerationConfig, got dict"),
        (lambda: ExportConfig(generation=None), "generation must be a GenerationConfig, got NoneType"),
        (lambda: ModelConfig(dropout="0.2"), "dropout must be in [0, 1), got '0.2'"),
        (lambda: ModelConfig(word_dropout=None), "word_dropout must be in [0, 1), got None"),
        (lambda: CorpusConfig(val_fraction="0.1"), "val_fraction must be a number between 0 and 1"),
        (lambda: CorpusConfig(split_seed=-1), "split_seed must be in 0..4294967295, got -1"),
        (lambda: CorpusConfig(split_seed=2**40), "split_seed must be in 0..4294967295"),
        (lambda: ExportConfig(tolerance="1e-4"), "tolerance must be a finite number > 0 and <= 1"),
        (lambda: ExportConfig(greedy_words=2.5), "greedy_words must be an integer, got 2.5"),
        (lambda: ExportConfig(greedy_words=10**9), "greedy_words must be in 1..10000"),
        (lambda: TrainConfig(learning_rate=True), "learning_rate must be a positive number, got True"),
        (lambda: TrainConfig(max_minutes=True), "max_minutes must be a positive number of minutes"),
        (lambda: TrainConfig(dev_fraction=False), "dev_fraction must be in [0, 1)"),
        (lambda: TrainConfig(base_corpus=("b.csv",)), "base_corpus names the corpus of the base"),
        (
            lambda: TrainConfig(init_from="m.onnx", base_corpus=5),
            "base_corpus must be a list of file paths, got int",
        ),
        (lambda: TrainConfig(lr_schedule="linear"), "lr_schedule must be one of"),
        (
            lambda: TrainConfig.from_dict({"warp_speed": 9, "epochz": 2}),
            "unknown settings 'warp_speed', 'epochz' (did you mean 'epochs'?): a misspelt key, or the file "
            "comes from another nextword version",
        ),
    ],
)
def test_values_of_the_wrong_type_are_refused_naming_the_field(make, said):
    """These were accepted, or failed with a bare comparison TypeError, or failed late under another
    field's name (greedy_words as max_words, after the conversion)."""
    with pytest.raises(ValueError) as caught:
        make()
    assert str(caught.value).startswith(said), caught.value


def test_the_configs_defaults_still_pass_their_checks():
    for config in (
        CorpusConfig(),
        TrainConfig(),
        ModelConfig(),
        ExportConfig(),
        TokenizerConfig(),
        GenerationConfig(),
    ):
        assert config == type(config)()


@pytest.mark.parametrize(
    ("make", "values"),
    [
        (
            ModelConfig,
            {"embedding_dim": np.int64(16), "lstm_units": np.int32(24), "dropout": np.float32(0.25)},
        ),
        (TrainConfig, {"epochs": np.int64(3), "batch_size": np.uint16(8), "learning_rate": np.float32(0.5)}),
        (CorpusConfig, {"split_seed": np.int64(3), "val_fraction": np.float64(0.2)}),
        (TokenizerConfig, {"min_count": np.int64(2), "max_vocab": np.int64(500)}),
        (ExportConfig, {"greedy_words": np.int64(5), "tolerance": np.float32(0.125)}),
        (GenerationConfig, {"max_words": np.int64(9), "top_k": np.int8(4), "temperature": np.float32(0.5)}),
        (LoadLimits, {"max_file_bytes": np.int64(2**20)}),
    ],
)
def test_numpy_numbers_are_taken_as_the_plain_numbers_they_hold(make, values):
    """A sweep over np.arange(...) gave numpy ints: TrainConfig and ModelConfig refused them as "not a
    positive integer", CorpusConfig's split seed failed in the split record, and a GenerationConfig kept
    a float32 that a model file's metadata could not be written with."""
    config = make(**values)
    plain = make(**{name: value.item() for name, value in values.items()})
    assert config == plain
    for name in values:
        assert type(getattr(config, name)) is type(getattr(plain, name)), name
    if hasattr(config, "to_dict"):
        json.dumps(config.to_dict())


@pytest.mark.parametrize(
    ("make", "name", "value"),
    [
        (GenerationConfig, "temperature", 0.01),  # float32(0.01) is 0.00999999977..., below the range
        (GenerationConfig, "top_p", 0.9),
        (TrainConfig, "learning_rate", 0.001),
        (ModelConfig, "dropout", 0.1),
    ],
)
def test_a_float32_is_taken_as_the_decimal_it_was_typed_as(make, name, value):
    """np.float32(0.01) widened bit for bit is 0.009999999776482582: temperature refused it as below
    0.01, and a run's config.json stored learning_rate 0.0010000000474974513."""
    for narrow in (np.float32(value), np.float16(value)):
        config = make(**{name: narrow})
        assert getattr(config, name) == float(str(narrow))
        assert type(getattr(config, name)) is float
    assert getattr(make(**{name: np.float32(value)}), name) == value


def test_a_run_config_of_numpy_numbers_writes_its_json():
    config = TrainConfig(
        corpus=CorpusConfig(split_seed=np.int64(3)), model=ModelConfig(lstm_units=np.int64(8))
    )
    assert json.loads(json.dumps(config.to_dict()))["corpus"]["split_seed"] == 3
    with pytest.raises(ValueError, match="embedding_dim must be a positive integer, got True"):
        ModelConfig(embedding_dim=True)  # a bool is still no number of units


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: TrainConfig(dev_fraction=1), "dev_fraction must be in [0, 1), got 1"),
        (lambda: TrainConfig(dev_fraction=1.0), "dev_fraction must be in [0, 1), got 1.0"),
        (lambda: TrainConfig(patience=-1), "patience must be an integer >= 0, got -1"),
        (lambda: TrainConfig(checkpoint_steps=-1), "checkpoint_steps must be an integer >= 0, got -1"),
        (lambda: TrainConfig(seed=2**32), "seed must be in 0..4294967295, got 4294967296"),
        (lambda: ModelConfig(dropout=1.0), "dropout must be in [0, 1), got 1.0"),
    ],
)
def test_a_range_check_refuses_the_first_value_past_its_edge(make, said):
    with pytest.raises(ValueError) as caught:
        make()
    assert str(caught.value).startswith(said), caught.value


def test_a_range_check_takes_the_values_at_its_edges():
    """--patience 0 (never stop early), --checkpoint-steps 0 (at epoch ends only) and --dev-fraction 0
    (no development part) are documented settings, not refusals."""
    TrainConfig(patience=0)
    TrainConfig(checkpoint_steps=0)
    TrainConfig(dev_fraction=0), TrainConfig(dev_fraction=0.999)
    TrainConfig(seed=0), TrainConfig(seed=2**32 - 1)
    ModelConfig(dropout=0.0, word_dropout=0.0), ModelConfig(dropout=0.999)


def test_a_run_config_from_before_tied_embeddings_reads_as_untied():
    """A run's config.json from before tie_embeddings existed holds no such key: its network was
    untied, and export and --resume must rebuild it so (a tied network has no output matrix of its own
    for the run's weights)."""
    stored = json.loads(json.dumps(TrainConfig(model=ModelConfig(tie_embeddings=False)).to_dict()))
    del stored["model"]["tie_embeddings"]
    assert TrainConfig.from_dict(stored).model.tie_embeddings is False
    for tied in (True, False):  # what a newer run records is read as recorded
        recorded = TrainConfig(model=ModelConfig(tie_embeddings=tied)).to_dict()
        assert TrainConfig.from_dict(recorded).model.tie_embeddings is tied
