"""The onnxruntime build this process imports: the distributions that installed it, its version's known
faults, and what its GPU providers need before a session can start or say why it did not.

pip installs the ``onnxruntime`` package from several distributions (``onnxruntime``, ``onnxruntime-gpu``,
``onnxruntime-openvino``...), each with its own files under the same folder: with two installed, the
one installed last has overwritten the other's, and uninstalling either deletes files both need. The
messages here name what is installed and the fix (docs/gpu.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import importlib.util
import io
import logging
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from .versions import version_tuple

__all__ = [
    "DISTRIBUTIONS",
    "INT8_WRONG",
    "PROVIDER_DISTRIBUTIONS",
    "check_onnxruntime",
    "describe_onnxruntime",
    "installed_distributions",
    "intel_mac",
    "needs_cuda",
    "preload_cuda_libraries",
    "provider_library_error",
    "several_builds_note",
    "version_tuple",
    "warn_if_int8_scores_wrong",
]

logger = logging.getLogger(__name__)

#: onnxruntime releases that score some int8 models wrongly: [first, first after) as (major, minor,
#: patch). Measured with the test suite's tiny int8 model (docs/compatibility.md): each release of
#: 1.21.0 to 1.24.4 (1.23.1 not tried) gave perplexities of inf or as high as 1e+295, different each
#: run and only now and then near the right one; 1.20 and 1.25 the same every time.
INT8_WRONG = ((1, 21, 0), (1, 25, 0))

#: the distributions on PyPI that install the ``onnxruntime`` package, each a build of its own
DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-openvino",
    "onnxruntime-directml",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-cann",
    "onnxruntime-vitisai",
    "onnxruntime-training",
    "onnxruntime-silicon",
    "ort-nightly",
    "ort-nightly-gpu",
    "ort-nightly-directml",
    "ort-nightly-qnn",
)

#: the distribution that brings each execution provider (the CPU's comes with all of them)
PROVIDER_DISTRIBUTIONS = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "QNNExecutionProvider": "onnxruntime-qnn",
}

# The shared library of a provider that onnxruntime loads when a session asks for it (in its capi folder).
_PROVIDER_LIBRARIES = {
    "CUDAExecutionProvider": "onnxruntime_providers_cuda",
    "TensorrtExecutionProvider": "onnxruntime_providers_tensorrt",
    "OpenVINOExecutionProvider": "onnxruntime_providers_openvino",
}
_CUDA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")  # need the CUDA libraries


def installed_distributions() -> list[str]:
    """Which of :data:`DISTRIBUTIONS` are installed (``["onnxruntime", "onnxruntime-gpu"]``): more than
    one means they overwrote each other's files. A lookup by name, under a millisecond (listing every
    installed package's files to find those of ``onnxruntime`` takes a tenth of a second)."""
    found = []
    for name in DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:  # damaged metadata: it is installed, in some state
            logger.debug("could not read the metadata of %s", name, exc_info=True)
        found.append(name)
    return found


def several_builds_note(distributions: Sequence[str] | None = None) -> str:
    """A sentence for messages where more than one onnxruntime distribution is installed, else ``""``."""
    names = list(installed_distributions() if distributions is None else distributions)
    if len(names) < 2:
        return ""
    wanted = next((name for name in names if name != "onnxruntime"), names[0])
    return (
        f"{' and '.join(names)} are {'both' if len(names) == 2 else 'all'} installed, and the one installed "
        f"last overwrote the others' files in their shared onnxruntime folder: keep one, `pip uninstall -y "
        f"{' '.join(names)}` then `pip install {wanted}` (or `pip install --force-reinstall --no-deps "
        f"{wanted}`; docs/gpu.md)"
    )


def check_onnxruntime() -> None:
    """``ImportError`` naming the fix where ``import onnxruntime`` found no onnxruntime in it (no
    ``InferenceSession``): the folder left behind when one of two onnxruntime distributions installed
    over each other was uninstalled, which Python imports as an empty namespace package."""
    if hasattr(ort, "InferenceSession"):
        return
    names = installed_distributions()
    where = ", ".join(getattr(ort, "__path__", [])) or "site-packages"
    found = f"installed: {', '.join(names)}" if names else "no onnxruntime distribution is installed"
    wanted = next((name for name in names if name != "onnxruntime"), "onnxruntime")
    raise ImportError(
        f"the onnxruntime install is broken: {where} holds no onnxruntime (no InferenceSession), as "
        f"happens when two onnxruntime distributions (such as onnxruntime and onnxruntime-gpu) were "
        f"installed over each other and one was uninstalled ({found}). Reinstall the one you want: "
        f"`pip install --force-reinstall --no-deps {wanted}` (or onnxruntime for the CPU), after "
        "`pip uninstall -y` of any other (docs/gpu.md)"
    )


def describe_onnxruntime() -> str:
    """onnxruntime's version, its distributions and providers, for ``nextword --version``:
    ``"onnxruntime 1.32.0 from onnxruntime; providers: CPUExecutionProvider, AzureExecutionProvider"``."""
    names = installed_distributions()
    version = getattr(ort, "__version__", "?")
    return (
        f"onnxruntime {version} from {' + '.join(names) or 'an unregistered install'}; "
        f"providers: {', '.join(ort.get_available_providers())}"
    )


def intel_mac() -> bool:
    """Whether this is macOS on an x86-64 processor (or Python under Rosetta), for which onnxruntime
    publishes no wheels after 1.23.2: ``pip install nextword`` takes 1.20 there (pyproject.toml)."""
    return sys.platform == "darwin" and platform.machine() == "x86_64"


_WARNED_INT8: set[str] = set()  # the onnxruntime versions warned of (one: the process's)


def warn_if_int8_scores_wrong(source: str) -> None:
    """For an int8 file: a warning, once a process, where this onnxruntime release is one of
    :data:`INT8_WRONG`'s, naming the version, the effect and the fix (``source``: the first such
    file)."""
    version = getattr(ort, "__version__", "0")
    first, after = INT8_WRONG
    if version in _WARNED_INT8 or not first <= version_tuple(version) < after:
        return
    _WARNED_INT8.add(version)
    # the releases after INT8_WRONG's have no Python 3.10 wheels, nor any for Intel Macs (none after
    # 1.23.2): there the fix is the one before them
    before = "Python 3.10" if sys.version_info < (3, 11) else "Intel Macs" if intel_mac() else None
    fix = (
        f"Install onnxruntime 1.20.1 (`pip install onnxruntime==1.20.1`: the releases after it for {before} "
        "have the fault)"
        if before
        else "Upgrade onnxruntime to 1.25 or later"
    )
    logger.warning(
        "%s has int8 weights, which onnxruntime %s (as every release from %s to before %s) computes "
        "wrongly: scores and perplexities come out far too high or infinite, different at each run. "
        "%s, or use a float32 file (docs/compatibility.md)",
        source,
        version,
        ".".join(map(str, first)),
        ".".join(map(str, after)),
        fix,
    )


@functools.cache
def preload_cuda_libraries() -> None:
    """Before the first CUDA session: where the CUDA and cuDNN libraries came from pip (the ``nvidia``
    packages of ``onnxruntime-gpu[cuda,cudnn]`` or PyTorch), load them with ``onnxruntime.preload_dlls``
    (1.21 and later), without which onnxruntime finds them on Linux only on ``LD_LIBRARY_PATH``. Once a
    process; a failure is logged at debug level, and the session then says what it lacks."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None or importlib.util.find_spec("nvidia") is None:
        return
    said = io.StringIO()  # it prints what it could not load: not on the command's standard output
    try:
        with contextlib.redirect_stdout(said):
            preload()
    except Exception:  # never fatal: the session's own error names the library it could not load
        logger.debug("onnxruntime.preload_dlls() failed", exc_info=True)
    if said.getvalue().strip():
        logger.debug("onnxruntime.preload_dlls(): %s", " ".join(said.getvalue().split()))


def needs_cuda(names: Sequence[str]) -> bool:
    """Whether any of the provider ``names`` needs the CUDA libraries (CUDA, TensorRT)."""
    return any(name in _CUDA_PROVIDERS for name in names)


def provider_library_error(name: str) -> str | None:
    """Why onnxruntime could not load provider ``name``'s library, as the system's loader says it
    (``"libcublasLt.so.13: cannot open shared object file: No such file or directory"``), or None: a
    provider without its own library, a library that is absent or loads."""
    stem = _PROVIDER_LIBRARIES.get(name)
    folders = getattr(ort, "__path__", None)
    if stem is None or not folders:
        return None
    filename = f"{stem}.dll" if sys.platform == "win32" else f"lib{stem}.so"
    path = Path(next(iter(folders))) / "capi" / filename
    if not path.is_file():
        return None
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        return " ".join(str(exc).split())[:300]
    return None


# Checked once, here, where every module that runs onnxruntime imports it from: an install two
# distributions broke is an ImportError naming the fix, not an AttributeError from deep inside.
check_onnxruntime()
