"""Handing nextword to another process. The fork cases (tests/fork_cases.py: a fork while another thread
holds one of the runtime's locks or is inside a session run leaves the child able to step) run each in a
fresh interpreter, where the only other threads are the ones a case starts. Objects that hold onnxruntime
sessions refuse pickling with nextword's message, which says what to do, not onnxruntime's."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import fork_cases
import numpy as np
import pytest

from nextword.runtime import load
from nextword.runtime.default import BUNDLED_MODEL

CASES = Path(fork_cases.__file__)
CASE_SECONDS = 120  # a fresh interpreter, the bundled model and a few forked children: seconds


@fork_cases.forks
@pytest.mark.parametrize("case", sorted(name for name in vars(fork_cases) if name.startswith("test_")))
def test_a_fork_case_passes_in_a_fresh_interpreter(case: str):
    """Each case of tests/fork_cases.py, run by pytest in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{CASES}::{case}"],
        cwd=CASES.parent.parent,
        capture_output=True,
        text=True,
        timeout=CASE_SECONDS,
    )
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr


def test_a_stepper_cannot_be_pickled_and_says_what_to_do():
    """onnxruntime's own TypeError named its session type, deep in a multiprocessing traceback."""
    model = load(BUNDLED_MODEL)
    stepper = model.stepper()
    stepper.step(np.asarray([1, 2]), model.initial_state(2))  # its buffers and bindings made
    for dump in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match=r"BoundStepper cannot be pickled .* load\(\) it there"):
            dump(stepper)
