"""onnxruntime 1.29 and later, on Linux and macOS, keep a device id and a store of usage events under
the home folder (and a file in $TMPDIR) and upload them, unless ORT_DISABLE_TELEMETRY=1 is set before it
is imported. The nextword command sets it unless the user set it; the library leaves its caller's
environment alone (no os.environ written at import or load)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VARIABLE = "ORT_DISABLE_TELEMETRY"
COMMAND = "import sys; from nextword.cli.entry import main; sys.argv = ['nextword', 'info']; sys.exit(main())"


def left_behind(tmp_path: Path, name: str, code: str, value: str | None) -> list[str]:
    """The files ``code`` leaves in a fresh home folder and $TMPDIR, run with ``ORT_DISABLE_TELEMETRY``
    set to ``value`` (None: unset)."""
    home, scratch = tmp_path / name / "home", tmp_path / name / "tmp"
    home.mkdir(parents=True)
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (VARIABLE, "XDG_CACHE_HOME")}
    env |= {"HOME": str(home), "TMPDIR": str(scratch), **({VARIABLE: value} if value is not None else {})}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    return sorted(str(path.relative_to(home.parent)) for path in home.parent.rglob("*") if path.is_file())


def test_the_command_runs_onnxruntime_without_telemetry_unless_asked(tmp_path):
    # what onnxruntime leaves on its own ([] for a release or a build without telemetry)
    alone = left_behind(tmp_path, "onnxruntime", "import onnxruntime", None)
    assert left_behind(tmp_path, "off", COMMAND, None) == []
    assert left_behind(tmp_path, "asked", COMMAND, "0") == alone  # the user's own choice stands


def test_the_library_leaves_the_callers_environment_alone():
    code = (
        "import os; from nextword.runtime import default_model; default_model().generate('a', max_words=2); "
        f"print(os.environ.get({VARIABLE!r}))"
    )
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    assert done.stdout.decode().strip() == "None"
