"""The runtime works where the training stack cannot even be imported."""

from helpers import RUNTIME_ONLY, run_python


def test_runtime_imports_and_generates_without_the_training_stack(model_path):
    result = run_python(RUNTIME_ONLY, str(model_path), block_training_stack=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_cli_generate_info_evaluate_without_the_training_stack(model_path, corpus_files):
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    for argv in (
        ["generate", "the model", "--model", str(model_path), "--seed", "1"],
        ["info", str(model_path)],
        ["evaluate", str(model_path), str(corpus_files["csv"])],
        ["evaluate", str(model_path), str(corpus_files["csv"]), "--split", "val"],  # the split, rebuilt
    ):
        result = run_python(code, *argv, block_training_stack=True)
        assert result.returncode == 0, (argv, result.stderr)


def test_the_blocker_really_blocks():
    result = run_python("import tensorflow", block_training_stack=True)
    assert result.returncode != 0 and "blocked by the test" in result.stderr


CORPUS_ONLY = """
import sys
from nextword.corpus import CorpusConfig, build_vocabulary, encode_corpus, split_corpus
from nextword.corpus.patentsview import PatentsViewConfig  # collection lives here too
import nextword.train.data  # cheap to import: TensorFlow loads only to build a dataset
from nextword.runtime import TokenizerConfig
split = split_corpus(CorpusConfig(paths=(sys.argv[1],)))  # deduplicated: the first pass of training
tokenizer = build_vocabulary(split, TokenizerConfig(min_count=1))
encoded = encode_corpus(split, tokenizer, sys.argv[2] + "/train.ids", sys.argv[2] + "/val.ids")
assert encoded.counts.train_words > 0 and encoded.counts.documents == 80, encoded
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {"tensorflow", "keras", "tf2onnx", "onnx"})
assert not loaded, loaded
print("ok")
"""


def test_corpus_passes_run_without_the_training_stack(corpus_files, tmp_path):
    result = run_python(CORPUS_ONLY, str(corpus_files["jsonl"]), str(tmp_path), block_training_stack=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok" and (tmp_path / "train.ids").is_file()


def test_the_runtime_loads_onnxruntime_only_when_a_model_is_needed():
    code = """
import sys
import nextword.corpus
from nextword.runtime.tokenizer import Tokenizer
assert "onnxruntime" not in sys.modules, "the corpus tools loaded onnxruntime"
import nextword.runtime as rt
missing = [name for name in rt.__all__ if getattr(rt, name, None) is None]
assert not missing, missing
assert "onnxruntime" in sys.modules
names = dir(rt)  # each name once, looked up or not
assert len(names) == len(set(names)) and set(rt.__all__) <= set(names), names
# and nothing else public: not the file's own imports (importlib, Any), nor a submodule once loaded
assert {n for n in names if not n.startswith("_")} == {n for n in rt.__all__ if not n.startswith("_")}, names
print("ok")
"""
    result = run_python(code, block_training_stack=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_packages_public_names_and_errors_import_without_the_training_stack():
    """``from nextword.train import *`` loaded TensorFlow (7 s) for TrainResult, and catching
    ParityError or ExportError meant importing the modules that load it."""
    code = """
import sys
from nextword.train import *
from nextword.export import *
from nextword.train import RunBusyError, RunExistsError, TrainResult
from nextword.export import ExportError, ParityError
assert issubclass(RunExistsError, FileExistsError) and issubclass(ParityError, RuntimeError)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {"tensorflow", "keras", "tf2onnx", "onnx"})
assert not loaded, loaded
print("ok")
"""
    result = run_python(code, block_training_stack=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
