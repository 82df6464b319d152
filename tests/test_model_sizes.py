"""Model sizes that fail late: a model no ONNX file can hold (2 GiB) is refused when training starts and
before export converts it; a file over load()'s default limits is exported, with the limits that load
it; a training step whose output layer does not fit in memory is flagged at the start. The limits are
lowered here (tiny models trip them), and the size estimate is held to real exported files."""

from __future__ import annotations

import functools
import logging
import pickle
import re
from dataclasses import fields, replace

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

from nextword.cli.args import COMMAND_CONFIGS, cli_terms
from nextword.export import ExportConfig, ExportError, export
from nextword.export import exporter as exporter_module
from nextword.export.graph import convert
from nextword.export.quantize import quantize_int8
from nextword.runtime import ModelFileError, ModelLimitError, load
from nextword.runtime import sizes as runtime_sizes
from nextword.runtime.limits import LoadLimits
from nextword.runtime.model_check import inspect_model_file
from nextword.runtime.model_file import FORMAT_VERSION, KEY_FORMAT_VERSION, KEY_TOKENIZER
from nextword.runtime.tokenizer import SPECIAL_TOKENS, Tokenizer
from nextword.train import ModelConfig, train
from nextword.train import sizes as train_sizes
from nextword.train.files import RunDir
from nextword.train.model import build_model

WIDE = LoadLimits(max_file_bytes=2**31 - 1, max_tensor_bytes=2**31 - 1, max_graph_bytes=2**40)


def _lowered_defaults(monkeypatch: pytest.MonkeyPatch, **changes: int) -> None:
    """Make ``LoadLimits()`` (load()'s default, and the exporter's before this fix) use ``changes``."""
    names = [f.name for f in fields(LoadLimits)]
    defaults = list(LoadLimits.__init__.__defaults__)  # every field has a default, in field order
    assert len(defaults) == len(names)
    for name, value in changes.items():
        defaults[names.index(name)] = value
    monkeypatch.setattr(LoadLimits.__init__, "__defaults__", tuple(defaults))
    monkeypatch.setattr(runtime_sizes, "DEFAULT_LIMITS", LoadLimits())


@pytest.mark.parametrize(
    ("vocab", "embedding", "units", "layers", "tied"),
    [(3000, 32, 64, 1, False), (3000, 32, 64, 1, True), (4000, 48, 48, 2, True), (3000, 24, 40, 3, False)],
)
def test_the_estimate_is_within_two_percent_of_exported_files(vocab, embedding, units, layers, tied):
    config = ModelConfig(embedding_dim=embedding, lstm_units=units, num_layers=layers, tie_embeddings=tied)
    model = build_model(config, vocab)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-zero biases: tf2onnx drops an Add of zeros, a trained model has none
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in layer.get_weights()])
    tokenizer = Tokenizer([*SPECIAL_TOKENS, *(f"word{i}" for i in range(vocab - 3))]).to_json()
    fp32 = convert(model, config, vocab, 17)
    int8 = quantize_int8(fp32)
    shape = train_sizes.model_shape(config, vocab)
    for proto, is_int8 in ((fp32, False), (int8, True)):
        for key, value in ((KEY_FORMAT_VERSION, str(FORMAT_VERSION)), (KEY_TOKENIZER, tokenizer)):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        data = proto.SerializeToString()
        estimate = shape.file_bytes(len(tokenizer.encode()), int8=is_int8)
        assert estimate == pytest.approx(len(data), rel=0.02), (is_int8, estimate, len(data))
        bounds = inspect_model_file(data, WIDE).bounds
        assert shape.largest_tensor_bytes(int8=is_int8) == bounds.largest_tensor_bytes
        assert shape.total_bytes(int8=is_int8) == pytest.approx(bounds.total_bytes, rel=0.1)
        assert shape.macs_per_token == pytest.approx(bounds.macs_per_token, rel=0.05)


def test_the_limits_a_file_needs_are_named_as_a_user_types_them():
    shape = runtime_sizes.ModelShape(200_000, 256, 1024, 2, tie_embeddings=False)
    needed = shape.needed(3_000_000)
    assert set(needed) == {"max_file_bytes", "max_tensor_bytes", "max_graph_bytes", "max_macs_per_token"}
    call = runtime_sizes.limits_call(needed)
    assert call.startswith("LoadLimits(max_file_bytes=") and "* MiB" in call
    namespace = {"LoadLimits": LoadLimits, "MiB": 1024 * 1024}
    widened = eval(call, namespace)  # the text is a working expression
    assert not runtime_sizes.limits_needed(
        file_bytes=shape.file_bytes(3_000_000),
        tokenizer_bytes=3_000_000,
        largest_tensor_bytes=shape.largest_tensor_bytes(),
        total_bytes=shape.total_bytes(),
        macs_per_token=shape.macs_per_token,
        state_width=1024,
        vocab_size=200_000,
        limits=widened,
    )
    assert not runtime_sizes.ModelShape(20_000, 128, 256, 1, tie_embeddings=True).needed(200_000)  # defaults


def test_train_refuses_a_model_no_onnx_file_can_hold_before_anything_is_written(
    tiny_config, tmp_path, monkeypatch
):
    monkeypatch.setattr(train_sizes, "PROTOBUF_LIMIT", 50_000)  # the tiny model's file is bigger
    config = replace(tiny_config, out=str(tmp_path / "run"))
    with pytest.raises(
        ValueError, match=r"over \(or within 2% of\) the 0\.00 GB that one ONNX file .* can hold"
    ) as info:
        train(config)
    message = str(info.value)
    assert "export would fail after training" in message and "Lower `max_vocab`" in message
    assert "tie_embeddings=True" in message  # this model is untied: tying shrinks it
    # the command line says the same in its flags
    flags = cli_terms(message, COMMAND_CONFIGS["train"])
    assert "Lower --max-vocab" in flags and "--lstm-units" in flags and "(--tie-embeddings)" in flags
    assert not (tmp_path / "run").exists()


def test_export_refuses_a_model_no_onnx_file_can_hold_before_tf2onnx(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train_sizes, "PROTOBUF_LIMIT", 50_000)

    def convert_not_reached(*args, **kwargs):
        raise AssertionError("tf2onnx ran on a model that cannot be written")

    monkeypatch.setattr(exporter_module, "convert", convert_not_reached)
    with pytest.raises(ExportError, match="export cannot write it"):
        export(ExportConfig(run_dir=str(run_dir), out=str(tmp_path / "m.onnx")))
    assert not (tmp_path / "m.onnx").exists()


def test_export_writes_a_file_over_the_default_limits_and_says_how_to_load_it(
    run_dir, tmp_path, monkeypatch, caplog
):
    # With a 20 kB file cap and a 100-byte tokenizer cap the tiny model stands for one over the real
    # 64 MiB / 4 MiB. Export used to load its own file with these defaults and fail after training
    # ("over the 20,000-byte limit ... raise it with load(..., limits=...)", advice export cannot take).
    _lowered_defaults(monkeypatch, max_file_bytes=20_000, max_tokenizer_bytes=100)
    out = tmp_path / "big.onnx"
    with caplog.at_level(logging.WARNING, logger="nextword.export.exporter"):
        report = export(ExportConfig(run_dir=str(run_dir), out=str(out), tune_cache=False, evaluate=False))
    assert out.stat().st_size == report.bytes > 20_000
    (warning,) = [r.getMessage() for r in caplog.records if "over what load() accepts" in r.getMessage()]
    call = re.search(r"LoadLimits\([^)]*\)", warning).group()
    assert "max_file_bytes=" in call and "max_tokenizer_bytes=" in call and "`int8`" in warning
    assert "export with --int8" in cli_terms(warning, COMMAND_CONFIGS["export"])
    assert "maxFileBytes: 1 * 1024 * 1024, maxTokenizerBytes: 1 * 1024 * 1024" in warning
    with pytest.raises(ModelFileError, match="over the 20,000-byte limit"):
        load(out)
    model = load(out, limits=eval(call, {"LoadLimits": LoadLimits, "MiB": 1024 * 1024}))
    assert model.generate("the", max_words=3, seed=0)


def test_training_start_warns_about_the_file_size_and_the_step_memory(
    tiny_config, tmp_path, monkeypatch, caplog
):
    _lowered_defaults(monkeypatch, max_file_bytes=20_000)
    monkeypatch.setattr(train_sizes, "available_memory", lambda: 1000)  # 1 kB free: the tiny step needs more
    config = replace(tiny_config, out=str(tmp_path / "run"), epochs=1)
    with caplog.at_level(logging.WARNING, logger="nextword.train.sizes"):
        train(config)
    messages = [r.getMessage() for r in caplog.records if r.name == "nextword.train.sizes"]
    (size,) = [m for m in messages if m.startswith("the exported model file will be about")]
    assert "LoadLimits(max_file_bytes=1 * MiB)" in size and "An int8 export writes" in size
    assert "limits: { maxFileBytes: 1 * 1024 * 1024 }" in size  # the browser's load() takes these two
    (memory,) = [m for m in messages if m.startswith("one training step's output layer needs")]
    rows, window = config.batch_size, config.seq_len
    assert f"{rows} windows x {window} words x " in memory and "Lower `batch_size` or `seq_len`" in memory
    assert "Lower --batch-size or --seq-len" in cli_terms(memory, COMMAND_CONFIGS["train"])


def test_the_step_memory_estimate_warns_only_on_the_cpu_and_past_the_free_memory(
    tiny_config, monkeypatch, caplog
):
    monkeypatch.setattr(train_sizes, "available_memory", lambda: 10**9)
    config = replace(tiny_config, batch_size=64, seq_len=50)
    need = 2.5 * 64 * 50 * 200_000 * 4  # 6.4 GB for a 200,000-word vocabulary
    with caplog.at_level(logging.INFO, logger="nextword.train.sizes"):
        assert train_sizes.check_step_memory(config, 200_000, 64, on_gpu=True) == need
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the GPU's memory is not RAM
        assert train_sizes.check_step_memory(config, 200_000, 64, on_gpu=False) == need
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "6.4 GB" in r.getMessage()]
    caplog.clear()
    assert train_sizes.check_step_memory(config, 20_000, 64, on_gpu=False) == need / 10  # 0.64 GB fits
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    monkeypatch.setattr(train_sizes, "memory_room", lambda: 10**9)  # the free memory is a cgroup's room
    with caplog.at_level(logging.INFO, logger="nextword.train.sizes"):
        train_sizes.check_step_memory(config, 200_000, 64, on_gpu=False)
    limited = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "1.0 GB of memory this process's memory limit leaves (its cgroup's: a container's)" in limited[-1]
    assert limited[-1].endswith(", or raise the limit")


def test_available_memory_is_a_positive_byte_count_here():
    free = train_sizes.available_memory()
    assert free is None or free > 0


def test_a_graph_over_the_protobuf_limit_is_an_export_error_not_a_protobuf_one(
    run_dir, tmp_path, monkeypatch
):
    # The estimate lets it through (its limit is the real one); the serialization guard catches it.
    monkeypatch.setattr(exporter_module, "PROTOBUF_LIMIT", 50_000)
    with pytest.raises(ExportError, match=r"over the 50,000 bytes one protobuf message \(one ONNX file\)"):
        export(ExportConfig(run_dir=str(run_dir), out=str(tmp_path / "m.onnx"), tune_cache=False))
    assert not (tmp_path / "m.onnx").exists()


def test_the_commands_load_a_file_over_the_size_caps_with_no_size_limits(
    model_path, tmp_path, monkeypatch, capsys
):
    # A 20 kB file cap and a 4 kB tensor cap stand for the real 64 MiB ones, which the tiny model is far
    # below. Before --no-size-limits a file over them could be exported but not opened by any command:
    # the advice was load(..., limits=LoadLimits(...)), which only Python can take.
    from nextword.cli.main import main

    _lowered_defaults(monkeypatch, max_file_bytes=20_000, max_tensor_bytes=4_000)
    assert model_path.stat().st_size > 20_000
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("the\n", encoding="utf-8")
    commands = {
        "generate": ["generate", "--model", model_path, "the", "--max-words", "3", "--seed", "0"],
        "suggest": ["suggest", "--model", model_path, "the"],
        "score": ["score", model_path, "the model"],
        "info": ["info", model_path],
        "evaluate": ["evaluate", model_path, prompt],
    }
    for name, argv in commands.items():
        assert main([str(a) for a in argv]) == 2, name
        err = capsys.readouterr().err
        assert "over the 20,000-byte limit for model files" in err, (name, err)
        assert "add --no-size-limits" in err and "LoadLimits" not in err, (name, err)
        assert main([str(a) for a in [*argv, "--no-size-limits"]]) == 0, name
        assert capsys.readouterr().out.strip(), name
    # the file cap lifted, the tensor cap is the next one it is over
    with pytest.raises(ModelLimitError, match="4,000-byte limit") as refused:
        load(model_path, limits=LoadLimits(max_file_bytes=10**6))
    assert refused.value.limit == "max_tensor_bytes"
    assert load(model_path, limits=LoadLimits().without_size_caps()).generate("the", max_words=2, seed=0)
    # other limits stay: the flag is about sizes only
    assert LoadLimits(max_nodes=5).without_size_caps().max_nodes == 5
    with pytest.raises(ModelLimitError, match="nodes") as refused:
        load(model_path, limits=LoadLimits(max_nodes=5).without_size_caps())
    assert "LoadLimits(max_nodes=...)" in str(refused.value)


def test_the_server_loads_a_file_over_the_size_caps_with_no_size_limits(model_path, monkeypatch, request):
    pytest.importorskip("fastapi", reason="fastapi missing: install nextword[serve]")
    from nextword.serve import ServeConfig, create_app, serve

    _lowered_defaults(monkeypatch, max_file_bytes=20_000)
    ours = logging.getLogger("nextword")
    request.addfinalizer(functools.partial(ours.setLevel, ours.level))  # setLevel: it clears the cache
    ours.setLevel(logging.NOTSET)  # the caller's level, put back by serve()...
    for workers in (1, 2):  # one process loads in create_app; more check the file before starting them
        config = ServeConfig(model=str(model_path), workers=workers, port=1, log_level="error")
        with pytest.raises(ModelFileError, match="add --no-size-limits") as refused:
            serve(config)
        assert "LoadLimits" not in str(refused.value)
        assert ours.level == logging.NOTSET  # ...which raised it to ERROR while it served
    monkeypatch.setenv("NEXTWORD_MODEL", str(model_path))  # the path's origin is still said
    with pytest.raises(
        ModelLimitError, match=r"limit for model files \(the path comes from \$NEXTWORD_MODEL"
    ):
        create_app(ServeConfig())
    assert create_app(ServeConfig(size_limits=False)).title
    with pytest.raises(ValueError, match="size_limits must be True or False"):
        ServeConfig(size_limits="no")


def test_a_limit_refusal_pickles_whole():
    # a --workers GPU check loads in a child process, whose errors come back pickled
    error = LoadLimits().refuse("f.onnx is too big", "max_file_bytes")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ModelLimitError and again.limit == "max_file_bytes" and str(again) == str(error)
    assert str(error.advising("add --flag")) == "f.onnx is too big; add --flag"


def test_fine_tuning_from_a_file_over_the_size_caps_needs_no_flag(
    model_path, tiny_config, tmp_path, monkeypatch
):
    # `nextword train --init-from big.onnx` loaded the file with the default caps and advised
    # LoadLimits, which the command cannot take; the file one fine-tunes from is read as export reads
    # its own: any size, every other check.
    _lowered_defaults(monkeypatch, max_file_bytes=20_000)
    with pytest.raises(ModelLimitError):
        load(model_path)
    out = tmp_path / "tuned"
    result = train(replace(tiny_config, out=str(out), init_from=str(model_path), epochs=1))
    assert RunDir(out).model.is_file() and result.epochs == 1


def test_the_loading_advice_names_every_needed_limit_for_the_browser_too():
    # the browser's part named only the file and tokenizer caps: nextword-web's load() has all of them
    needed = {"max_file_bytes": 70 * 2**20 + 1, "max_state_width": 5000, "max_macs_per_token": 200 * 2**20}
    note = runtime_sizes.limits_note(needed)
    assert "LoadLimits(max_file_bytes=71 * MiB, max_state_width=5000, max_macs_per_token=200 * MiB)" in note
    assert "--no-size-limits" in note
    browser = "maxFileBytes: 71 * 1024 * 1024, maxStateWidth: 5000, maxMacsPerToken: 200 * 1024 * 1024"
    assert note.endswith(f"load(url, {{ limits: {{ {browser} }} }}) in the browser"), note


def test_a_containers_memory_limit_counts_as_the_free_memory(monkeypatch):
    """The warning read the machine's free memory alone: under a container's 1.2 GB limit on a host
    with 22 GB free, a step needing 1.5 GB was killed without a word (tests/test_container_limits.py reads the
    limits)."""
    monkeypatch.setattr(train_sizes, "memory_room", lambda: 123)
    assert train_sizes.available_memory() == 123  # less than this machine's free memory
    monkeypatch.setattr(train_sizes, "memory_room", lambda: None)
    assert train_sizes.available_memory() > 123
