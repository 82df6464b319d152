"""The trained model most benchmarks measure: a run folder and the ONNX file exported from it.

Without ``--run`` and ``--model`` the benchmark model is trained once (one epoch of the bundled model's
network on the reference corpus, a few minutes on two cores) with :func:`nextword.train.train`,
exported with :func:`nextword.export.export`, and reused from ``benchmarks/.cache/default/`` for as
long as the corpus, the settings and the model-file format stay the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.paths import CACHE_DIR, DEFAULT_CORPUS
from benchmarks.results import benchmark_parser, write_text

__all__ = [
    "DEFAULT_MODEL_SETTINGS",
    "BenchModel",
    "add_model_arguments",
    "get_bench_model",
    "validation_documents",
]

# the bundled model's architecture (Makefile: bundled-model), one epoch: ModelConfig's arguments, and epochs
DEFAULT_MODEL_SETTINGS: dict[str, Any] = {
    "embedding_dim": 256,
    "lstm_units": 448,
    "num_layers": 1,
    "dropout": 0.25,
    "epochs": 1,
}


@dataclass(frozen=True)
class BenchModel:
    """A trained run folder and the ONNX file exported from it (either may be missing)."""

    run_dir: str | None  # holds model.keras, the training model: needed by the Keras baselines
    model_path: str | None  # the exported .onnx file
    corpus: str
    trained_here: bool  # True when this call trained or exported it (the first, slow call)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run``, ``--model``, ``--corpus`` and ``--result-json``, shared by the benchmarks of
    docs/benchmarks.md."""
    parser.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="a trained run folder (default: train one, cached in benchmarks/.cache)",
    )
    parser.add_argument(
        "--model", metavar="MODEL.onnx", help="its exported model (default: export --run, cached)"
    )
    parser.add_argument(
        "--corpus",
        default=str(DEFAULT_CORPUS),
        help="the reference corpus, used to train the default model and for validation documents "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--result-json",
        metavar="PATH",
        help="where to write the figures (default: benchmarks/.cache/results/)",
    )


def get_bench_model(args: argparse.Namespace, *, need_run: bool, need_model: bool) -> BenchModel:
    """The run folder and model file to benchmark, training and exporting one if none is given.

    With ``--run`` only, the run is exported to ``benchmarks/.cache/exports/``. With ``--model`` only,
    the Keras baselines cannot run (``need_run`` raises ``SystemExit`` with the reason).
    """
    corpus = str(Path(args.corpus).resolve())
    run_dir, model_path = args.run, args.model
    trained_here = False
    if run_dir is None and model_path is None:
        if not Path(corpus).is_file():
            raise SystemExit(f"corpus {corpus} not found: pass --corpus FILE, or --run/--model")
        run_dir, model_path, trained_here = _default_model(corpus)
    elif model_path is None and need_model:
        model_path = str(CACHE_DIR / "exports" / f"{Path(run_dir).resolve().name}.onnx")
        if not Path(model_path).is_file() or _mtime(Path(run_dir) / "model.keras") > _mtime(model_path):
            _export(run_dir, model_path)
            trained_here = True
    if need_run and run_dir is None:
        raise SystemExit("this benchmark compares against Keras and needs the run folder: pass --run RUN_DIR")
    if run_dir is not None and not (Path(run_dir) / "model.keras").is_file():
        raise SystemExit(f"{run_dir} holds no trained model.keras")
    if model_path is not None and not Path(model_path).is_file():
        raise SystemExit(f"model file {model_path} does not exist")
    return BenchModel(run_dir, model_path, corpus, trained_here)


def validation_documents(corpus: str, model_info: Any | None = None) -> list[str]:
    """The validation documents of ``corpus``: those the model was held out from, made again from what
    its file records (:func:`nextword.corpus.rebuild_split`: fraction, seed, deduplication), or, without
    a model, those of the split `nextword train` makes by default."""
    return split_documents(corpus, model_info)[1]


def split_documents(corpus: str, model_info: Any | None = None) -> tuple[list[str], list[str]]:
    """The training and the validation documents of ``corpus``, split as :func:`validation_documents`
    says. The training side includes the development part, if the model had one: documents training
    held back for export to tune the cache on, which the file records by count, not by name."""
    from nextword.corpus import CorpusConfig, rebuild_split, split_corpus

    config = CorpusConfig(paths=(corpus,))
    provenance = getattr(model_info, "provenance", None)
    if provenance is not None and provenance.split is not None:
        return rebuild_split(provenance, config).documents()
    return split_corpus(config).documents()


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _mtime(path: str | Path) -> float:
    return Path(path).stat().st_mtime if Path(path).exists() else 0.0


def _default_model(corpus: str) -> tuple[str, str, bool]:
    """The cached default model for ``corpus``: (run folder, model file, whether made by this call)."""
    from nextword.runtime.model_file import FORMAT_VERSION

    root = CACHE_DIR / "default"
    run_dir, model_path, stamp_path = root / "run", root / "model.onnx", root / "stamp.json"
    # The corpus by its content: the same text is the same model whatever names the file, and whenever
    # it was copied (a fresh checkout of ../shared gives the file a new modification time).
    stamp: dict[str, Any] = {"corpus_sha256": file_sha256(corpus)}
    stamp.update(DEFAULT_MODEL_SETTINGS)
    stamp["format_version"] = FORMAT_VERSION  # a model file of an older format is exported again
    old = json.loads(stamp_path.read_text()) if stamp_path.is_file() else None
    if old == stamp and model_path.is_file():
        return str(run_dir), str(model_path), False
    same_training = old is not None and {**old, "format_version": FORMAT_VERSION} == stamp
    if same_training and (run_dir / "model.keras").is_file():
        _export(str(run_dir), str(model_path))  # same training, older model format
        write_text(stamp_path, json.dumps(stamp, indent=2) + "\n")
        return str(run_dir), str(model_path), False
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train

    settings = dict(DEFAULT_MODEL_SETTINGS)
    epochs = settings.pop("epochs")
    print(f"training the benchmark model on {corpus} ({epochs} epoch, {settings})", file=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    stamp_path.unlink(missing_ok=True)
    config = TrainConfig(
        out=str(run_dir),
        corpus=CorpusConfig(paths=(corpus,)),
        model=ModelConfig(**settings),
        epochs=epochs,
        overwrite=True,
        verbose=2,
    )
    train(config)
    _export(str(run_dir), str(model_path))
    write_text(stamp_path, json.dumps(stamp, indent=2) + "\n")
    return str(run_dir), str(model_path), True


def _export(run_dir: str, model_path: str) -> None:
    from nextword.export import ExportConfig, export

    print(f"exporting {run_dir} to {model_path}", file=sys.stderr)
    Path(model_path).parent.mkdir(parents=True, exist_ok=True)
    export(ExportConfig(run_dir=run_dir, out=model_path))


def main(argv: list[str] | None = None) -> int:
    """Train and export the benchmark model if needed; print where it is as one line of JSON."""
    parser = benchmark_parser("bench_model", f"{main.__doc__}\n\n{__doc__}")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    print(json.dumps(get_bench_model(args, need_run=False, need_model=True).to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
