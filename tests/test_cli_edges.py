"""The CLI at its edges: standard output closed, Ctrl-C while its modules load, a device named as a
corpus, a corpus too small for the split asked for, ``score --json``'s words, options placed between
positionals, and ``--device``."""

from __future__ import annotations

import importlib.abc
import json
import re
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from helpers import write_corpus
from nextword.cli import entry
from nextword.cli.main import main


def test_a_result_command_with_standard_output_closed_fails_and_says_so(model_path):
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    # `>&-` closes descriptor 1 for the child: Python then sets sys.stdout to None, print() drops text.
    shell = '"$0" -c "$1" generate --model "$2" "the network" --max-words 3 >&-'
    done = subprocess.run(
        ["sh", "-c", shell, sys.executable, code, str(model_path)],
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "standard output is closed" in done.stderr and "/dev/null" in done.stderr


class _InterruptImport(importlib.abc.MetaPathFinder):
    """Raises KeyboardInterrupt when the command line's main module is imported, as Ctrl-C does
    while it loads."""

    def find_spec(self, name, path=None, target=None):
        if name == "nextword.cli.main":
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_modules_load_is_one_line_and_status_130(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "nextword.cli.main")
    monkeypatch.setattr(sys, "meta_path", [_InterruptImport(), *sys.meta_path])
    monkeypatch.setattr(sys, "argv", ["nextword", "--version"])
    assert entry.main() == 130
    assert capsys.readouterr().err == "nextword: interrupted\n"


def test_the_installed_command_starts_at_the_entry_module():
    (script,) = entry_points(group="console_scripts", name="nextword")
    assert script.value == "nextword.cli.entry:main"


def test_a_device_named_as_a_corpus_is_refused_as_one(model_path, capsys):
    code = main(["evaluate", str(model_path), "/dev/zero"])
    err = capsys.readouterr().err
    assert code == 2
    assert "/dev/zero is a device or pipe, not a regular file" in err and "does not exist" not in err


def test_a_split_of_another_corpus_is_refused_naming_the_corpus(model_path, documents, tmp_path, capsys):
    """Fewer documents than the model's corpus: the split made again is another one, whose held-out
    documents may be ones it trained on; every part is refused before any is scored, naming the fix."""
    small = write_corpus(tmp_path, documents[:4])["csv"]
    for part in ("dev", "val", "train"):
        code = main(["evaluate", str(model_path), str(small), "--split", part, "--json"])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == ""
        held = f"the model's corpus {len(documents):,}"
        assert f"--split {part}: these files hold 4 documents, {held}" in captured.err
        assert "give the corpus files it was trained on as they were (corpus.csv)" in captured.err
        assert "--split all" in captured.err and "--trained-on FILE" in captured.err
        assert ("may include some it trained on" in captured.err) == (part != "train")
    assert main(["evaluate", str(model_path), str(small), "--json"]) == 0  # every document: fine
    # one document: refused as another corpus (counted before the split), not as too few to split
    one = write_corpus(tmp_path / "one", documents[:1])["csv"]
    assert main(["evaluate", str(model_path), str(one), "--split", "val", "--json"]) == 2
    assert f"these files hold 1 documents, the model's corpus {len(documents):,}" in capsys.readouterr().err


def test_score_json_gives_an_unknown_word_as_read_with_its_text(model_path, capsys):
    code = main(["score", str(model_path), "The network zyzzyvas", "--json"])
    words = json.loads(capsys.readouterr().out)["words"]
    assert code == 0
    assert [w["word"] for w in words] == ["the", "network", "zyzzyvas"]
    assert [w["unknown"] for w in words] == [False, False, True]
    assert "".join(w["text"] for w in words).lower() == "the network zyzzyvas"
    assert all(set(w) == {"word", "text", "logprob", "unknown"} for w in words)


@pytest.mark.parametrize("argv", [["info"], ["suggest", "a"]])
def test_every_result_command_checks_standard_output(argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", None)
    assert main(argv) == 2
    assert "standard output is closed" in capsys.readouterr().err


def test_options_may_come_between_positionals(model_path, documents, tmp_path, capsys):
    code = main(["score", str(model_path), "--json", "the network"])
    scored = json.loads(capsys.readouterr().out)
    assert code == 0 and [w["word"] for w in scored["words"]] == ["the", "network"]
    corpus = write_corpus(tmp_path, documents[:3])["csv"]
    code = main(["-q", "evaluate", str(model_path), "--json", str(corpus), "--no-cache"])
    assert code == 0 and json.loads(capsys.readouterr().out)["documents"] == 3


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("--max-tokens", "--max-words"), ("--max_new_tokens", "--max-words"), ("-n", "--num-return-sequences")],
)
def test_another_tools_option_name_is_answered_with_nextwords(model_path, capsys, typed, meant):
    """OpenAI's and Hugging Face's names for the length and the count: the flag meant, not the list."""
    with pytest.raises(SystemExit) as stop:
        main(["generate", "a", "--model", str(model_path), typed, "3"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith(f"(did you mean {meant}?)")


def test_score_of_unquoted_words_says_to_quote_them(model_path, capsys):
    """``nextword score MODEL a network``: the second word was only "unrecognized"."""
    with pytest.raises(SystemExit) as stop:
        main(["score", str(model_path), "a", "network"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.rstrip()
    assert "unrecognized arguments: network" in err and err.endswith(
        '(the text to score is one argument: quote it, nextword score MODEL.onnx "the whole text")'
    )


def test_generate_never_takes_a_positional_after_an_option_as_a_prompt(model_path, capsys):
    """``--stop . "each neuron"`` most likely meant two stop strings: refused, not a second prompt."""
    with pytest.raises(SystemExit) as stop:
        main(["generate", "the", "--model", str(model_path), "--stop", ".", "each neuron"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nextword generate") and "unrecognized arguments: each neuron" in err
    assert err.rstrip().endswith("(the prompts go before the options)")


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["generate", "x", "--temprature=0.5"], "(did you mean --temperature?)"),
        (["generate", "x", "--beams", "2"], "(did you mean --num-beams?)"),
        (["serve", "--prot", "8000"], "(did you mean --port?)"),
        (["suggest", "x", "--k", "3"], "(did you mean -k?)"),
        (["generate", "x", "-z", "3"], "(nextword generate --help lists the options)"),
        (["corpus", "patentsview", "--bogus"], "(nextword corpus patentsview --help lists the options)"),
    ],
)
def test_an_unknown_option_is_not_blamed_on_the_prompts_and_its_likely_meaning_is_named(argv, hint, capsys):
    """A mistyped option was answered "the prompts go before the options", which sent the user the wrong
    way: the option meant is named where one is close, else where the options are listed."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.rstrip().endswith(hint), err
    assert "prompts go before" not in err


def test_an_empty_text_is_explained(model_path, caplog, capsys):
    """A briefly trained model often ends the document at once after an empty prompt: the command then
    printed a blank line and nothing else. Whatever the seeds give, the warning comes exactly when a
    text is empty."""
    for seed in range(8):
        caplog.clear()
        assert main(["generate", "", "the", "--model", str(model_path), "--seed", str(seed), "--json"]) == 0
        texts = [r["text"] for r in json.loads(capsys.readouterr().out)]
        warned = "the model ended the document before writing a word; --min-words 1" in caplog.text
        assert warned == ("" in texts), (seed, texts)
        if warned:
            assert f"{texts.count('')} of the 2 texts" in caplog.text


def test_an_empty_stream_is_explained(model_path, monkeypatch, caplog, capsys):
    from nextword.runtime import NextWordModel

    monkeypatch.setattr(NextWordModel, "stream", lambda self, prompt, config: iter(()))
    assert main(["generate", "", "--model", str(model_path), "--stream"]) == 0
    assert "the text is empty: the model ended the document before writing a word" in caplog.text
    caplog.clear()
    assert main(["generate", "", "--model", str(model_path), "--stream", "--min-words", "1"]) == 0
    assert "the text is empty" not in caplog.text


def test_generate_suggest_and_serve_take_the_model_first_as_score_does(model_path, monkeypatch, capsys):
    """``nextword generate MODEL.onnx "prompt"`` continued the file's name as a prompt of its own (and
    exited 0); ``suggest`` and ``serve`` refused the model there. A model file among or after the prompts
    is named, never continued."""
    model, prompt = str(model_path), "the network"
    runs = [["generate", model, prompt], ["generate", prompt, "--model", model]]
    texts = []
    for argv in runs:
        assert main([*argv, "--seed", "3", "--max-words", "6", "--json"]) == 0
        texts.append(json.loads(capsys.readouterr().out))
    assert texts[0] == texts[1] and [r["prompt"] for r in texts[0]] == [prompt]
    assert main(["suggest", model, prompt, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["suggest", prompt, "--model", model, "--json"]) == 0
    assert first == json.loads(capsys.readouterr().out)
    for argv, said in (
        (["generate", model], "names a model file: give the prompt after it"),
        (["generate", prompt, model], f"{model} names a model file: give it before the prompt"),
        (["generate", model, prompt, "--model", model], "give the model once"),
        (["suggest", "the", "network"], 'suggest takes one prompt: quote it, nextword suggest "the network"'),
    ):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert said in captured.err and captured.out == "", (argv, captured.err)
    # a prompt that merely ends in ".onnx" is a prompt, and a nameless one is no crash
    assert main(["generate", "the weights go to model.onnx", "--model", model, "--max-words", "2"]) == 0
    assert main(["generate", "x" * 5000 + " m.onnx", "--model", model, "--max-words", "1"]) == 0
    capsys.readouterr()

    import nextword.cli.serve as serve_command

    served = []
    monkeypatch.setattr(serve_command, "serve", served.append)
    assert main(["serve", model, "--port", "0"]) == 0
    assert [config.model for config in served] == [model]
    assert main(["serve", model, "--model", model]) == 2
    assert "give the model once" in capsys.readouterr().err


def test_a_model_named_otherwise_or_a_run_folder_is_never_continued_as_a_prompt(
    model_path, run_dir, tmp_path, caplog, capsys
):
    """``nextword export RUN --out mymodel`` writes an ONNX file without the suffix; naming it (or the run
    folder itself) first continued its name with the bundled model, exit 0."""
    renamed = tmp_path / "mymodel"
    renamed.write_bytes(model_path.read_bytes())
    outputs = []
    for argv in (["generate", str(renamed), "the"], ["generate", "the", "--model", str(model_path)]):
        assert main([*argv, "--seed", "1", "--max-words", "4", "--json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    for argv in (
        ["generate", str(run_dir), "the"],
        ["suggest", str(run_dir), "the"],
        ["score", str(run_dir), "x"],
    ):
        assert main(argv) == 2, argv
        assert (
            f"{run_dir} is a training run folder, not a model file: export it first"
            in capsys.readouterr().err
        )
    assert main(["score", str(renamed)]) == 2
    assert "names a model file: give the text to score after it" in capsys.readouterr().err
    assert main(["score", "the network", str(renamed)]) == 2
    assert f"{renamed} names a model file: give it first" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("the network stores the weights .", encoding="utf-8")
    assert main(["score", str(model_path), str(notes)]) == 0
    assert f"to score what the file holds: --file {notes}" in caplog.text


def test_figures_that_unknown_words_flatter_and_the_split_scored_are_said(
    model_path, documents, tmp_path, caplog, capsys
):
    gibberish = "qwzx vbnm plok trew asdf ghjk lkjh mnbv cxza poiu ."
    assert main(["score", str(model_path), gibberish]) == 0
    assert "10 of the 11 words (91%) are outside the model's vocabulary" in caplog.text
    caplog.clear()
    assert main(["score", str(model_path), documents[0]]) == 0
    assert "outside the model's vocabulary" not in caplog.text
    corpus = write_corpus(tmp_path, documents[:3])["csv"]
    assert main(["evaluate", str(model_path), str(corpus)]) == 0
    assert (
        "split          all: every document, those the model trained on included" in capsys.readouterr().out
    )


def test_a_file_whose_name_says_another_format_than_the_recorded_one_is_refused():
    from nextword.cli.scoring import _check_recorded_format
    from nextword.corpus import CorpusConfig

    _check_recorded_format(CorpusConfig(paths=("a.txt", "b.md"), format="lines"))  # text by name: fine
    _check_recorded_format(CorpusConfig(paths=("a.csv",), format="auto"))
    for name, kind in (("c.csv", "CSV"), ("d.jsonl", "JSONL"), ("e.tsv", "CSV")):
        with pytest.raises(
            ValueError,
            match=rf"{name} is {kind} by its name, but evaluate reads the corpus .* "
            r"--corpus-format lines; pass --corpus-format auto",
        ):
            _check_recorded_format(CorpusConfig(paths=("a.txt", name), format="lines"))


def test_a_split_made_again_from_reordered_files_is_refused(model_path, documents, tmp_path, capsys):
    """The same rows in another order keep the document count but make another split, whose
    "validation" documents are mostly ones the model trained on: refused by the part's words, which
    the model file records, before a figure is printed."""
    same = write_corpus(tmp_path / "same", documents)["csv"]
    for part in ("val", "train", "dev"):
        assert main(["evaluate", str(model_path), str(same), "--split", part, "--json"]) == 0
    capsys.readouterr()
    shuffled = write_corpus(tmp_path / "shuffled", documents[40:] + documents[:40])["csv"]
    for part in ("val", "train"):
        assert main(["evaluate", str(model_path), str(shuffled), "--split", part, "--json"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert f"--split {part}: these files hold validation documents of " in captured.err
        assert "(other documents: rows or files in another order, or edited)" in captured.err
        assert "other Unicode tables" in captured.err  # the other cause, rare, said
        assert ("may include some it trained on" in captured.err) == (part == "val")


def test_an_edit_that_keeps_every_count_is_refused_by_the_corpus_digest(
    model_path, documents, tmp_path, capsys
):
    """One letter changed in one document: the same documents, split and words, so only the digest of
    the documents' text, which the model file records, tells these files from its own."""
    from nextword.corpus import CorpusConfig, split_corpus
    from nextword.runtime import load

    provenance = load(model_path).info.provenance
    recorded = provenance.corpus_sha256
    own = split_corpus(
        CorpusConfig(paths=(str(write_corpus(tmp_path / "own", documents)["csv"]),)), log=False
    )
    assert recorded is not None and re.fullmatch("[0-9a-f]{64}", recorded) and own.digest == recorded
    edited = [documents[0].replace("e", "a", 1), *documents[1:]]
    assert edited[0] != documents[0]
    files = write_corpus(tmp_path / "edited", edited)["csv"]
    assert main(["evaluate", str(model_path), str(files), "--split", "val", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--split val: these files hold documents whose text differs from the " in (
        captured.err
    )
    assert f"its SHA-256 {recorded[:12]}..." in captured.err and "keeps the counts" in captured.err
    assert main(["info", str(model_path)]) == 0
    shown = capsys.readouterr().out
    assert f"  corpus SHA-256 {recorded} (of its documents, in order)\n" in shown
    assert "  training seed  0\n" in shown  # the seed was shown only inside a recorded command line


def test_evaluate_refuses_a_typed_option_that_applies_to_none_of_its_files(
    model_path, documents, tmp_path, capsys
):
    files = write_corpus(tmp_path, documents[:3])
    assert main(["evaluate", str(model_path), str(files["jsonl"]), "--text-column", "body"]) == 2
    err = capsys.readouterr().err
    assert "--text-column body chooses the column of a CSV file" in err and "--json-field" in err
    assert main(["evaluate", str(model_path), str(files["jsonl"]), "--json-field", "text", "--json"]) == 0


def test_the_commands_that_run_a_model_take_a_device(capsys, model_path):
    """generate, suggest, score and evaluate: ``--device cpu`` is the default's text; a bad name and, on
    an onnxruntime without CUDA, a GPU are refused naming the flag and the fix (exit 2, nothing printed).
    The same model is loaded once per device (nextword.runtime.default_model)."""
    import onnxruntime as ort

    from nextword.runtime import default_model

    argv = ["generate", "--model", str(model_path), "the network", "--max-words", "6", "--temperature", "0"]
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert main([*argv, "--device", "cpu"]) == 0 and capsys.readouterr().out == plain
    assert default_model(model_path) is default_model(model_path, device="cpu")
    bad = [
        ["generate", "--model", str(model_path), "the network"],
        ["suggest", "--model", str(model_path), "the network"],
        ["score", str(model_path), "the network"],
        ["evaluate", str(model_path), "corpus.csv"],
    ]
    for command in bad:
        assert main([*command, "--device", "gpu"]) == 2
        out, err = capsys.readouterr()
        assert not out and "--device must be 'cpu', 'cuda' or 'cuda:N'" in err
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            assert main([*command, "--device", "cuda:1"]) == 2
            assert "--device 'cuda:1' needs onnxruntime's CUDAExecutionProvider" in capsys.readouterr().err


def test_an_empty_model_path_and_a_late_quiet_flag_say_what_to_do(model_path, capsys):
    """``--model ""`` was "model file <the current folder> is not a regular file" for generate and the
    bundled model for info; ``-q`` after the command was an unknown option with no word of where it goes;
    an empty corpus path was described in the Python API's terms."""
    for argv in (
        ["generate", "x", "--model", ""],
        ["info", "--model", ""],
        ["info", ""],
        ["suggest", "x", "--model", ""],
    ):
        assert main(argv) == 2, argv
        assert "model is an empty string: give a .onnx file's path" in capsys.readouterr().err, argv
    with pytest.raises(SystemExit) as exited:
        main(["score", "the network", "--model", str(model_path), "-q"])
    assert exited.value.code == 2
    assert "(-q goes before the command: nextword -q score ...)" in capsys.readouterr().err
    assert main(["evaluate", str(model_path), ""]) == 2
    assert "is an empty string, which names no file" in capsys.readouterr().err


def test_negative_numbers_in_any_notation_are_values(model_path, capsys):
    """argparse read only "-1" and "-.5" as numbers: `--length-penalty -1e-1` (in range) was "expected one
    argument", and `--temperature -inf` never reached its range check."""
    argv = [
        "generate",
        "a neural network",
        "--model",
        str(model_path),
        "--num-beams",
        "2",
        "--max-words",
        "4",
    ]
    assert main([*argv, "--length-penalty", "-1e-1", "--json"]) == 0
    beamed = json.loads(capsys.readouterr().out)
    assert main([*argv, "--length-penalty=-0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == beamed
    for value in ("-inf", "-1E309", "-2.5e3", "-NaN"):
        assert main(["generate", "x", "--model", str(model_path), "--temperature", value]) == 2
        assert "--temperature must be a finite number >= 0" in capsys.readouterr().err, value


def test_a_crlf_prompt_file_reads_as_lines(model_path, tmp_path, capsys):
    """Only the last CRLF was dropped: an inner one printed as "\\x0d" in the text."""
    crlf, lf = tmp_path / "crlf.txt", tmp_path / "lf.txt"
    crlf.write_bytes(b"the network\r\nthe neuron\r\n")
    lf.write_bytes(b"the network\nthe neuron\n")
    common = ["--max-words", "3", "--seed", "1"]
    assert main(["generate", str(model_path), "--file", str(crlf), *common]) == 0
    from_crlf = capsys.readouterr().out
    assert main(["generate", str(model_path), "--file", str(lf), *common]) == 0
    assert from_crlf == capsys.readouterr().out and "\\x0d" not in from_crlf


def test_score_of_a_dash_says_it_is_the_text_itself(model_path, capsys, caplog):
    assert main(["score", str(model_path), "-"]) == 0
    assert "the text to score is '-' itself; --file - reads the text from standard input" in caplog.text


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--verison", "generate", "x"], "unrecognized arguments: --verison (did you mean --version?)"),
        (["--quite", "generate", "x"], "unrecognized arguments: --quite (did you mean --quiet?)"),
        (["--verison"], "unrecognized arguments: --verison (did you mean --version?)"),  # was: COMMAND
    ],
)
def test_a_mistyped_option_before_the_command_is_the_top_level_s(argv, said, capsys):
    """It was blamed on the command (``nextword generate: error``), with no suggestion."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"nextword: error: {said}" in err, err
    with pytest.raises(SystemExit):  # a top-level option repeated after the command is the command's
        main(["-q", "info", "--json", "-q"])
    refused = "nextword info: error: unrecognized arguments: -q (-q goes before the command: nextword -q info"
    assert refused in capsys.readouterr().err
