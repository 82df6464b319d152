"""train() called again and again in one process (a notebook's kernel): TensorFlow kept every run's
traced training step (its gradient registry holds each traced all-reduce) and its epoch counter (a
Dataset.counter is a scan, whose function the default graph keeps): about 6 MB a run that nothing freed,
keras.backend.clear_session() included."""

from __future__ import annotations

import gc
from dataclasses import replace

import pytest


def _func_graphs() -> int:
    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


@pytest.mark.train
def test_a_finished_run_leaves_no_traced_graph_behind(tiny_config, tmp_path):
    from nextword.train import train

    config = replace(tiny_config, out=str(tmp_path / "run"), epochs=1, overwrite=True, verbose=0)
    train(config)  # the first run also traces what stays for good (Keras' own)
    before = _func_graphs()
    first = train(config)
    again = train(config)
    assert _func_graphs() <= before  # was 6 more a run
    assert again.best_val_loss == first.best_val_loss  # the same run, made again
