"""onnxruntime 1.29 and later (its Linux, macOS and Windows releases) keep a device id and a store of
usage events under the home folder (and a file in $TMPDIR) and upload them, unless
ORT_DISABLE_TELEMETRY=1 is set before it is imported. The nextword command (run as a module too) and the
benchmarks set it unless the user set it; the library leaves its caller's environment alone (no
os.environ written at import or load)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nextword.cli.telemetry import ONNXRUNTIME_TELEMETRY as VARIABLE

# the variables under which onnxruntime turns its telemetry off by itself (named in its library)
CI_VARIABLES = (
    "CI",
    "GITHUB_ACTIONS",
    "TF_BUILD",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "BUILDKITE",
)
REPO = Path(__file__).resolve().parents[1]
COMMAND = "import sys; from nextword.cli.entry import main; sys.argv = ['nextword', 'info']; sys.exit(main())"


def left_behind(tmp_path: Path, name: str, args: list[str], value: str | None) -> list[str]:
    """The files ``python ARGS`` leaves in a fresh home folder and $TMPDIR, run from the repository root
    with ``ORT_DISABLE_TELEMETRY`` set to ``value`` (None: unset)."""
    home, scratch = tmp_path / name / "home", tmp_path / name / "tmp"
    home.mkdir(parents=True)
    scratch.mkdir()
    # onnxruntime keeps quiet by itself under a CI service's variables: the test is run without them
    env = {k: v for k, v in os.environ.items() if k not in (VARIABLE, "XDG_CACHE_HOME", *CI_VARIABLES)}
    env |= {"HOME": str(home), "TMPDIR": str(scratch), **({VARIABLE: value} if value is not None else {})}
    subprocess.run([sys.executable, *args], env=env, check=True, timeout=300, capture_output=True, cwd=REPO)
    return sorted(str(path.relative_to(home.parent)) for path in home.parent.rglob("*") if path.is_file())


def test_the_command_runs_onnxruntime_without_telemetry_unless_asked(tmp_path):
    # what onnxruntime leaves on its own ([] for a release or a build without telemetry)
    alone = left_behind(tmp_path, "onnxruntime", ["-c", "import onnxruntime"], None)
    assert left_behind(tmp_path, "off", ["-c", COMMAND], None) == []
    assert left_behind(tmp_path, "asked", ["-c", COMMAND], "0") == alone  # the user's own choice stands
    # run as a module, as the benchmarks and scripts start it; the benchmarks' own programs
    assert left_behind(tmp_path, "module", ["-m", "nextword.cli.main", "info"], None) == []
    bench = "import benchmarks; from nextword.runtime import default_model; default_model()"
    assert left_behind(tmp_path, "benchmarks", ["-c", bench], None) == []


def test_the_library_leaves_the_callers_environment_alone():
    code = (
        "import os; from nextword.runtime import default_model; default_model().generate('a', max_words=2); "
        f"print(os.environ.get({VARIABLE!r}))"
    )
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    assert done.stdout.decode().strip() == "None"
