"""Options that conflict with a value the caller never set, a model file's decoding default (a file exported
with ``--num-beams 4 --num-return-sequences 2``, say): the refusal says the value is the file's, in the
Python API, on the command line and in nextword-web, as the server's does, rather than blame an option the
user never gave."""

from __future__ import annotations

import pickle

import pytest
from web_reference import need_node, run_node

from nextword.cli.main import main
from nextword.runtime import GenerationConfig, load
from nextword.runtime.generation import FILE_DEFAULTS, OptionConflict

SAMPLING = "searches deterministically and cannot be combined with the sampling options"
# Each file's decoding defaults, and calls with what Python answers: a message ending (None: no refusal).
FILES = {
    "beams": (
        {"num_beams": 4, "num_return_sequences": 2},
        [
            ("generate", {"top_k": 3}, f"{SAMPLING} top_k=3; drop them or set num_beams=1 "
             "(num_beams=4 is this model file's decoding default)"),
            ("generate", {"temperature": 0.5, "top_p": 0.9}, "top_p=0.9, temperature=0.5; drop them or set "
             "num_beams=1 (num_beams=4 is this model file's decoding default)"),
            ("generate", {"num_return_sequences": 5}, "num_return_sequences=5 must be <= num_beams=4 (beam "
             "search returns its best beams; num_beams=4 is this model file's decoding default)"),
            ("generate", {"num_beams": 4, "top_k": 3}, "top_k=3; drop them or set num_beams=1"),  # both typed
            ("generate", {"num_beams": 2, "num_return_sequences": 3}, "must be <= num_beams=2 (beam search "
             "returns its best beams)"),
            ("generate", {"max_words": 3}, None),
            ("stream", {}, "stream() produces one text: num_return_sequences and num_beams must be 1 (got 2 "
             "and 4; num_return_sequences=2 and num_beams=4 are this model file's decoding defaults)"),
            ("stream", {"num_beams": 1}, "must be 1 (got 2 and 1; num_return_sequences=2 is this model "
             "file's decoding default)"),
            ("stream", {"num_beams": 1, "num_return_sequences": 1, "max_words": 3}, None),
        ],
    ),
    "three of four beams": (
        {"num_beams": 4, "num_return_sequences": 3},
        [
            ("generate", {"num_beams": 2}, "num_return_sequences=3 must be <= num_beams=2 (beam search "
             "returns its best beams; num_return_sequences=3 is this model file's decoding default)"),
        ],
    ),
    "short": (
        {"max_words": 20},
        [
            ("generate", {"min_words": 30}, "min_words must be at most `max_words` (20), got 30: raise "
             "`max_words` too (max_words=20 is this model file's decoding default)"),
            ("stream", {"min_words": 30}, "raise `max_words` too (max_words=20 is this model file's decoding "
             "default)"),
            ("generate", {"min_words": 30, "max_words": 25}, "got 30: raise `max_words` too"),
        ],
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def files(run_dir, tmp_path_factory):
    """Each of FILES exported from the session's run with its decoding defaults."""
    from nextword.export import ExportConfig, export

    folder = tmp_path_factory.mktemp("file-defaults")
    paths = {}
    for name, (defaults, _) in FILES.items():
        paths[name] = folder / f"{name.replace(' ', '-')}.onnx"
        generation = GenerationConfig(**defaults)
        export(
            ExportConfig(
                str(run_dir), str(paths[name]), evaluate=False, tune_cache=False, generation=generation
            )
        )
    return paths


def refusal(model, call: str, options: dict) -> str | None:
    try:
        if call == "stream":
            model.stream("the network", **options)
        else:
            model.generate("the network", **options)
    except ValueError as exc:
        return str(exc)
    return None


def python_answers(files) -> list[dict]:
    """Each file's refusals in the Python API, checked against FILES."""
    answers = []
    for name, (defaults, cases) in FILES.items():
        model = load(files[name])
        assert model.info.generation == GenerationConfig(**defaults)
        found = []
        for call, options, ending in cases:
            message = refusal(model, call, options)
            label = f"{name}: {call}({options})"
            if ending is None:
                assert message is None, label
            else:
                assert message is not None and message.endswith(ending), f"{label}: {message}"
            found.append({"call": call, "options": options, "message": message})
        answers.append({"path": str(files[name]), "generation": defaults, "cases": found})
    return answers


def test_a_conflict_with_a_files_default_says_it_is_the_files(files):
    python_answers(files)


def test_a_config_of_the_callers_own_is_not_called_the_files(files):
    model = load(files["beams"])
    mine = GenerationConfig(num_beams=4)
    with pytest.raises(ValueError, match=r"top_k=3; drop them or set num_beams=1$"):
        model.generate("the network", mine, top_k=3)
    with pytest.raises(ValueError, match=r"\(got 1 and 4\)$"):
        model.stream("the network", mine)
    with pytest.raises(ValueError, match=r"decoding default\)$"):  # none given: the file's
        model.generator(top_k=3)


def test_from_options_names_the_origin_of_a_conflicting_default():
    base = GenerationConfig(num_beams=4, max_words=20)
    with pytest.raises(OptionConflict, match=r"set num_beams=1$"):
        GenerationConfig.from_options(base, top_k=3)  # no origin: as before
    with pytest.raises(OptionConflict) as info:
        GenerationConfig.from_options(base, origin="the caller's", top_k=3, min_words=5)
    assert str(info.value).endswith("set num_beams=1 (num_beams=4 is the caller's decoding default)")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (type(copy), str(copy), copy.names) == (OptionConflict, str(info.value), ("num_beams", "top_k"))
    with pytest.raises(ValueError, match=r"got 30: raise `max_words` too \(max_words=20 is this model"):
        GenerationConfig.from_options(base, origin=FILE_DEFAULTS, min_words=30, num_beams=1)
    with pytest.raises(ValueError, match=r"set num_beams=1$"):  # a conflict within GenerationConfig alone
        GenerationConfig(num_beams=2, top_k=5)


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_the_command_line_says_a_conflicting_value_is_the_files_default(capsys, files):
    beams, prompt = files["beams"], "The controller (12)"
    code, err = run_cli(capsys, "generate", beams, prompt, "--top-k", 3)
    assert code == 2 and f"{SAMPLING} --top-k=3; drop them or set --num-beams=1" in err
    assert "(--num-beams=4 is this model file's decoding default)" in err
    code, err = run_cli(capsys, "generate", beams, prompt, "--num-return-sequences", 5)
    assert code == 2 and "(beam search returns its best beams; --num-beams=4 is this model file's" in err
    code, err = run_cli(capsys, "generate", beams, prompt, "--stream")
    assert code == 2 and "--stream prints one text: use --num-return-sequences 1 and --num-beams 1" in err
    assert "(--num-return-sequences=2 and --num-beams=4 are this model file's decoding defaults)" in err
    code, err = run_cli(capsys, "generate", beams, prompt, "--num-beams", 4, "--top-k", 3)
    assert code == 2 and "set --num-beams=1" in err and "decoding default" not in err  # typed: the user's
    code, err = run_cli(capsys, "generate", files["short"], prompt, "--min-words", 30)
    assert code == 2 and "raise --max-words too (--max-words=20 is this model file's decoding default)" in err


def test_javascript_refuses_as_python_does(files, tmp_path):
    need_node()
    run_node("parity-defaults.test.js", {"files": python_answers(files)}, tmp_path)


def test_a_generator_of_a_beam_default_file_says_where_its_num_beams_came_from(files):
    # "a Generator samples; num_beams must be 1, got 4" named no option the user had set
    model = load(files["beams"])
    with pytest.raises(
        ValueError, match=r"got 4 \(the generator's default, .* pass num_beams=1 to model\.generator\(\)\)$"
    ):
        model.generator().add(["the network"])
    with pytest.raises(ValueError, match=r"num_beams must be 1, got 2$"):  # a config of the call's own
        model.generator(num_beams=1).add(["the network"], config=GenerationConfig(num_beams=2))
    generator = model.generator(num_beams=1, num_return_sequences=1, max_words=2)
    (row,) = generator.add(["the network"])
    while not generator.done:
        generator.step()
    assert generator.finish_reason(row) is not None
