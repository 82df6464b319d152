"""The onnxruntime builds a user may have instead of the CPU wheel this project tests with: a release
that computes int8 files wrongly, two distributions installed over each other (or one of them then
uninstalled), onnxruntime-gpu with pip's CUDA libraries or without any, OpenVINO. Each is played here
by patching onnxruntime's attributes; the reviewer's reproductions ran the real builds."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from nextword.cli.main import main
from nextword.runtime import BUNDLED_MODEL, __version__, default, load, sessions
from nextword.runtime import model as model_module
from nextword.runtime import onnxruntime_build as build
from nextword.runtime.sessions import choose_providers, cpu_providers, warn_about_int8

CPU_BUILD = ["AzureExecutionProvider", "CPUExecutionProvider"]  # what the CPU wheel lists
REAL_SESSION = ort.InferenceSession


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Every test starts with no warning given and no library preloaded yet in this process, and with
    the distributions the test says are installed (none patched: the onnxruntime wheel alone)."""
    build._WARNED_INT8.clear()
    build.preload_cuda_libraries.cache_clear()
    installed(monkeypatch, "onnxruntime")
    monkeypatch.setattr(model_module, "usable_cores", lambda: 2)
    yield
    build._WARNED_INT8.clear()
    build.preload_cuda_libraries.cache_clear()


def installed(monkeypatch, *names: str) -> None:
    """Make importlib.metadata find exactly these distributions."""

    def distribution(name: str):
        if name in names:
            return object()
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


def session_on(providers_used: list[str]):
    """An InferenceSession class that runs on the CPU and reports ``providers_used`` where a provider
    other than the CPU's is asked for (an OpenVINO or CUDA session; or, the CPU's alone, one that fell
    back)."""

    class Session:
        def __init__(self, data, sess_options=None, providers=None) -> None:
            self._session = REAL_SESSION(data, sess_options=sess_options, providers=["CPUExecutionProvider"])
            self._others = any(
                (p if isinstance(p, str) else p[0]) != "CPUExecutionProvider" for p in providers or []
            )

        def get_providers(self):
            return providers_used if self._others else ["CPUExecutionProvider"]

        def __getattr__(self, name):
            return getattr(self._session, name)

    return Session


# ----------------------------------------------------------------- 1. releases that compute int8 wrongly


@pytest.mark.parametrize(
    ("version", "warned"),
    [
        *[("1.20.1", False), ("1.21.0", True), ("1.23.2", True), ("1.24.1", True), ("1.24.4", True)],
        *[("1.25.0.dev20260417008", False), ("1.25.0", False), ("1.32.0", False)],
    ],
)
def test_an_int8_file_under_a_release_that_scores_it_wrongly_is_warned_of_once(
    version, warned, monkeypatch, caplog, tmp_path
):
    monkeypatch.setattr(build.ort, "__version__", version)
    other = tmp_path / "another-int8.onnx"  # another file: still once a process
    other.write_bytes(Path(BUNDLED_MODEL).read_bytes())
    with caplog.at_level(logging.WARNING):
        load(BUNDLED_MODEL)
        load(BUNDLED_MODEL)
        load(other)
    said = [r.getMessage() for r in caplog.records if "computes wrongly" in r.getMessage()]
    if not warned:
        assert said == []
        return
    (message,) = said  # once a process
    assert f"onnxruntime {version} (as every release from 1.21.0 to before 1.25.0)" in message
    assert "far too high or infinite" in message and "use a float32 file (docs/compatibility.md)" in message
    assert ("Upgrade onnxruntime to 1.25 or later" if sys.version_info >= (3, 11) else "1.20.1") in message


def test_an_int8_file_is_known_by_its_graph_and_a_float32_file_is_not_warned_of(
    model_path, monkeypatch, caplog
):
    monkeypatch.setattr(build.ort, "__version__", "1.24.3")
    with caplog.at_level(logging.WARNING):
        load(model_path)  # float32: no integer products
    assert "computes wrongly" not in caplog.text
    session = load(model_path).session
    with caplog.at_level(logging.WARNING):
        warn_about_int8(session, {}, "hand-quantized.onnx", quantized=True)  # no export.int8 in its config
    assert "hand-quantized.onnx has int8 weights, which onnxruntime 1.24.3" in caplog.text


# ----------------------------------------------------------------- 2. an install two distributions broke


def test_an_onnxruntime_without_inference_session_is_a_broken_install_with_its_fix(monkeypatch):
    installed(monkeypatch, "onnxruntime-gpu")
    monkeypatch.delattr(build.ort, "InferenceSession")
    with pytest.raises(ImportError, match="onnxruntime install is broken") as caught:
        build.check_onnxruntime()
    assert "installed: onnxruntime-gpu" in str(caught.value)
    assert "`pip install --force-reinstall --no-deps onnxruntime-gpu` (or onnxruntime" in str(caught.value)


# A process's start where `import onnxruntime` finds the folder two distributions left (argv[1]): an
# empty namespace package
EMPTY_ONNXRUNTIME = (
    "import sys, types\n"
    "empty = types.ModuleType('onnxruntime'); empty.__path__ = [sys.argv[1]]\n"
    "sys.modules['onnxruntime'] = empty\n"
)


def test_importing_the_runtime_over_a_broken_onnxruntime_names_the_install_not_generate(tmp_path):
    """Uninstalling one of onnxruntime and onnxruntime-gpu, installed over each other, leaves a folder that
    Python imports as an empty namespace package: `from nextword.runtime import generate` said "cannot
    import name 'generate'", hiding an AttributeError (onnxruntime has no RunOptions)."""
    code = EMPTY_ONNXRUNTIME + "from nextword.runtime import generate\n"
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: cannot import generate from nextword.runtime: importing"), last
    assert "the onnxruntime install is broken" in last and "pip install --force-reinstall --no-deps" in last


def test_the_command_over_a_broken_onnxruntime_says_so_in_one_line(tmp_path):
    """The `nextword` command printed a traceback whose last line held the fix."""
    code = EMPTY_ONNXRUNTIME + (
        "sys.argv = ['nextword', 'generate', 'a network']\n"
        "from nextword.cli.entry import main\n"
        "sys.exit(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("nextword: ")]
    assert len(lines) == 1 and lines[0].startswith("nextword: error: ") and "install is broken" in lines[0]


def test_any_import_failure_behind_a_lazy_name_is_an_import_error_naming_its_cause():
    code = (
        "import sys\n"
        "class Broken:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'nextword.runtime.beam':\n"
        "            raise AttributeError(\"module 'numpy' has no attribute 'float128'\")\n"
        "sys.meta_path.insert(0, Broken())\n"
        "from nextword.runtime import BeamSearch\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "ImportError: cannot import BeamSearch from nextword.runtime: importing nextword.runtime.beam failed "
        "with AttributeError: module 'numpy' has no attribute 'float128'"
    ), last
    assert "pip install --force-reinstall" in last


# ----------------------------------------------------------------- 3. two builds installed at once


def test_device_cuda_with_both_wheels_installed_says_so_and_gives_the_fix(monkeypatch):
    monkeypatch.setattr(
        sessions.ort, "get_available_providers", lambda: CPU_BUILD
    )  # the CPU wheel's files won
    installed(monkeypatch, "onnxruntime", "onnxruntime-gpu")
    with pytest.raises(ValueError, match="lacks") as caught:
        load(BUNDLED_MODEL, device="cuda")
    message = str(caught.value)
    assert "onnxruntime and onnxruntime-gpu are both installed" in message
    assert "pip install --force-reinstall --no-deps onnxruntime-gpu" in message
    assert "install onnxruntime-gpu as docs/gpu.md says" not in message
    installed(monkeypatch, "onnxruntime")
    with pytest.raises(ValueError, match=r"lacks .* install onnxruntime-gpu as docs/gpu\.md says"):
        load(BUNDLED_MODEL, device="cuda")


# ----------------------------------------------------------------- 4. CUDA libraries from pip


@pytest.mark.parametrize(
    ("has_preload", "has_nvidia", "device", "calls"),
    [(True, True, "cuda", 1), (True, False, "cuda", 0), (False, True, "cuda", 0), (True, True, "cpu", 0)],
)
def test_pips_cuda_libraries_are_preloaded_once_before_the_first_cuda_session(
    has_preload, has_nvidia, device, calls, monkeypatch
):
    made: list[int] = []
    if has_preload:
        monkeypatch.setattr(build.ort, "preload_dlls", lambda: made.append(1), raising=False)
    else:
        monkeypatch.delattr(build.ort, "preload_dlls", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (object() if has_nvidia else None) if name == "nvidia" else real_find_spec(name, *a),
    )
    monkeypatch.setattr(
        sessions.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *CPU_BUILD]
    )
    monkeypatch.setattr(
        sessions.ort, "InferenceSession", session_on(["CUDAExecutionProvider", "CPUExecutionProvider"])
    )
    load(BUNDLED_MODEL, device=device)
    load(BUNDLED_MODEL, device=device)
    assert made == [1] * calls


def test_a_failing_preload_is_never_fatal(monkeypatch, caplog):
    def fails():
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(build.ort, "preload_dlls", fails, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    with caplog.at_level(logging.DEBUG, logger="nextword.runtime.onnxruntime_build"):
        build.preload_cuda_libraries()
    assert "preload_dlls() failed" in caplog.text and caplog.records[-1].levelno == logging.DEBUG


def test_what_the_preload_prints_goes_to_the_log_not_the_commands_output(monkeypatch, caplog, capsys):
    """onnxruntime.preload_dlls() prints what it could not load (PyTorch's CUDA 12 libraries beside a
    CUDA 13 onnxruntime-gpu), on the standard output that carries a command's text."""

    def prints():
        print("Failed to load libcublasLt.so.12")

    monkeypatch.setattr(build.ort, "preload_dlls", prints, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    with caplog.at_level(logging.DEBUG, logger="nextword.runtime.onnxruntime_build"):
        build.preload_cuda_libraries()
    assert capsys.readouterr().out == ""
    assert "preload_dlls(): Failed to load libcublasLt.so.12" in caplog.text


# ----------------------------------------------------------------- 5. why the CUDA provider did not start


def test_a_cuda_provider_that_falls_back_is_told_with_the_library_the_system_could_not_load(
    tmp_path, monkeypatch
):
    (tmp_path / "capi").mkdir()
    library = (
        tmp_path
        / "capi"
        / (
            "onnxruntime_providers_cuda.dll"
            if sys.platform == "win32"
            else "libonnxruntime_providers_cuda.so"
        )
    )
    monkeypatch.setattr(build.ort, "__path__", [str(tmp_path)], raising=False)
    monkeypatch.setattr(
        sessions.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *CPU_BUILD]
    )
    monkeypatch.setattr(sessions.ort, "InferenceSession", session_on(["CPUExecutionProvider"]))  # fell back
    with pytest.raises(ValueError, match="fell back") as caught:  # no library there: no crash, the old hint
        load(BUNDLED_MODEL, device="cuda")
    assert "onnxruntime may have logged its reason to standard error" in str(caught.value)

    def cannot_load(path, *args, **kwargs):
        raise OSError("libcublasLt.so.13: cannot open shared object file: No such file or directory")

    library.write_bytes(b"")
    monkeypatch.setattr(build.ctypes, "CDLL", cannot_load)
    with pytest.raises(ValueError, match="fell back") as caught:
        load(BUNDLED_MODEL, device="cuda")
    assert (
        "loading CUDAExecutionProvider's library failed: libcublasLt.so.13: cannot open shared object file"
        in str(caught.value)
    )
    assert "may have logged" not in str(caught.value)


# ----------------------------------------------------------------- 6. what to install for a missing provider


@pytest.mark.parametrize(
    ("provider", "advice"),
    [
        ("CUDAExecutionProvider", "install onnxruntime-gpu in place of this build"),
        ("TensorrtExecutionProvider", "install onnxruntime-gpu in place of this build"),
        ("OpenVINOExecutionProvider", "install onnxruntime-openvino in place of this build"),
        ("MyOwnExecutionProvider", "install an onnxruntime build that has them"),
    ],
)
def test_a_missing_provider_names_the_build_that_has_it(provider, advice, monkeypatch, caplog):
    monkeypatch.setattr(sessions.ort, "get_available_providers", lambda: CPU_BUILD)
    with caplog.at_level(logging.WARNING):
        choose_providers([provider, "CPUExecutionProvider"])
    assert advice in caplog.text
    assert ("onnxruntime-gpu" in caplog.text) == (
        provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
    )


# ----------------------------------------------------------------- 7. int8 on any provider but the CPU's


@pytest.mark.parametrize(
    ("used", "warned"),
    [
        (["OpenVINOExecutionProvider", "CPUExecutionProvider"], True),
        (["MIGraphXExecutionProvider", "CPUExecutionProvider"], True),
        (["AzureExecutionProvider", "CPUExecutionProvider"], False),
    ],
)
def test_an_int8_file_on_any_provider_but_the_cpus_is_warned_of(used, warned, monkeypatch, caplog):
    """OpenVINO ran the bundled int8 model 4.5 times slower than the CPU at batch 1 (the review's measure)."""
    monkeypatch.setattr(sessions.ort, "get_available_providers", lambda: [used[0], *CPU_BUILD])
    monkeypatch.setattr(sessions.ort, "InferenceSession", session_on(used))
    with caplog.at_level(logging.WARNING):
        load(BUNDLED_MODEL, providers=used)
    assert (f"has int8 weights, which run slower on {used[0]} than on the CPU alone" in caplog.text) == warned


# ----------------------------------------------------------------- 8. the second CPU session


def test_the_second_cpu_session_follows_what_the_session_runs_on_not_what_was_asked(monkeypatch, caplog):
    everything = load(BUNDLED_MODEL, providers=ort.get_available_providers())  # ['Azure...', 'CPU...']
    assert everything.wide_session is not None
    monkeypatch.setattr(
        sessions.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *CPU_BUILD]
    )
    monkeypatch.setattr(sessions.ort, "InferenceSession", session_on(["CPUExecutionProvider"]))
    with caplog.at_level(logging.WARNING):
        fell_back = load(BUNDLED_MODEL, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert "could not start CUDAExecutionProvider" in caplog.text
    assert fell_back.wide_session is not None and fell_back.wide_session.get_providers() == [
        "CPUExecutionProvider"
    ]
    assert caplog.text.count("could not start") == 1  # the CPU sessions after it ask for the CPU alone


def test_the_cpu_given_options_or_another_provider_keeps_one_session():
    class Using:
        def __init__(self, providers: list[str]) -> None:
            self.get_providers = lambda: providers

    cpu = ["CPUExecutionProvider"]
    assert cpu_providers(Using(CPU_BUILD), CPU_BUILD) == cpu
    assert cpu_providers(Using(cpu), [("CPUExecutionProvider", {"use_arena": "0"})]) is None
    assert cpu_providers(Using(["CUDAExecutionProvider", *cpu]), ["CUDAExecutionProvider", *cpu]) is None


# ----------------------------------------------------------------- 9. one default model per GPU


def test_cuda_and_cuda_0_share_one_default_model(monkeypatch):
    loads: list[str | None] = []

    def fake_load(path, device=None, limits=None):
        loads.append(device)
        return object()

    monkeypatch.setattr(default, "_models", {})
    monkeypatch.setattr(default, "load", fake_load)
    first = default.default_model(BUNDLED_MODEL, device="cuda")
    assert default.default_model(BUNDLED_MODEL, device="cuda:0") is first
    assert default.default_model(BUNDLED_MODEL, device="cuda:1") is not first
    assert default.default_model(BUNDLED_MODEL, device="cpu") is default.default_model(BUNDLED_MODEL)
    assert loads == ["cuda", "cuda:1", "cpu"]
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        default.default_model(BUNDLED_MODEL, device="gpu")


# ----------------------------------------------------------------- 10. --version


def version_line(capsys) -> str:
    """What ``nextword --version`` prints (argparse exits with status 0 once it is written)."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_version_names_onnxruntime_its_distributions_and_providers(monkeypatch, capsys):
    providers = ", ".join(ort.get_available_providers())
    expected = (
        f"nextword {__version__} (onnxruntime {ort.__version__} from onnxruntime; providers: {providers})\n"
    )
    assert version_line(capsys) == expected
    installed(monkeypatch, "onnxruntime", "onnxruntime-gpu")
    assert f"(onnxruntime {ort.__version__} from onnxruntime + onnxruntime-gpu; " in version_line(capsys)
