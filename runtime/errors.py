"""Exceptions the runtime raises on purpose, and the helper that quotes file contents in their messages."""

from __future__ import annotations

__all__ = [
    "InterruptedStepError",
    "ModelFileError",
    "ModelLimitError",
    "ModelRunError",
    "WrongTypeError",
    "noted",
    "shorten",
]


class WrongTypeError(TypeError, ValueError):
    """A value of the wrong type for a parameter or a config field (a string for a number, a dict for a
    config); the message names the parameter, what it takes and what it got.

    A ``TypeError``, as Python raises for a wrong type, and also a ``ValueError``, as nextword 0.2.0
    raised for most of these: code that catches either keeps working (numpy's ``AxisError`` is a
    ``ValueError`` and an ``IndexError`` alike). A value of the right type out of its range stays a
    plain ``ValueError``.
    """


class ModelFileError(ValueError):
    """A file is not a usable nextword model; the message names the file, the problem and the fix."""


class ModelLimitError(ModelFileError):
    """A file refused by one of the :class:`~nextword.runtime.limits.LoadLimits`: over a size or count
    cap, or outside the ONNX IR versions, opsets or operators it accepts.

    ``limit`` names the field (e.g. ``"max_file_bytes"``, ``"opset_versions"``); ``problem`` is the
    message without the advice on widening it, so that a command can give its own (a flag rather than
    ``LoadLimits``).
    """

    def __init__(self, problem: str, limit: str, hint: str) -> None:
        super().__init__(f"{problem}; {hint}")
        self.problem, self.limit, self.hint = problem, limit, hint

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:  # pickled whole (a pool's child raises it)
        return type(self), (self.problem, self.limit, self.hint)

    def advising(self, hint: str) -> ModelLimitError:
        """The same refusal with other advice (a command's flag in place of ``LoadLimits``)."""
        return ModelLimitError(self.problem, self.limit, hint)


def noted(exc: ModelFileError, note: str) -> ModelFileError:
    """``exc`` with ``note`` added to the problem it names; a :class:`ModelLimitError` stays one."""
    if isinstance(exc, ModelLimitError):
        return ModelLimitError(f"{exc.problem} {note}", exc.limit, exc.hint)
    return ModelFileError(f"{exc} {note}")


class ModelRunError(ModelFileError):
    """onnxruntime failed while running a model that had loaded; the message names the file.

    A subclass of :class:`ModelFileError`, not a sibling: ``load()`` runs a probe step and checks every
    output before it returns, so a graph that fails later fails on inputs the probe did not try (a
    crafted or damaged file), and code that already handles bad model files handles this too. Catch
    this class to tell a failure during a call from a refusal at load time.
    """


def shorten(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error message: ``repr`` (which escapes control and format characters),
    cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class InterruptedStepError(RuntimeError):
    """A step-level object (a ``Generator``, a ``BeamSearch``) whose earlier step failed or was
    interrupted (Ctrl-C, a notebook's stop button) part way: its sequences' states are unknown, so it
    steps no further."""

    def __init__(self, what: str, cause: str, advice: str) -> None:
        super().__init__(
            f"a step of this {what} was interrupted or failed part way ({cause}), so its sequences' "
            f"states are unknown and it cannot go on: {advice}"
        )
