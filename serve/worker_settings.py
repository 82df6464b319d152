"""The settings the supervising process of ``--workers`` hands its workers, in ``$NEXTWORD_SERVE_CONFIG``
while uvicorn runs: the server's config, and the digest of the model file the workers should find (at
the start, and at each SIGHUP, which reloads every worker). A worker that uvicorn starts again after one
died, and finds other bytes there, says so (serve/app.py)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from .state import ModelFile

__all__ = ["WorkerSettings"]


class WorkerSettings:
    """``settings`` in the environment variable ``name`` from :meth:`start` to :meth:`end`, which puts
    back what the caller had there."""

    def __init__(self, name: str, settings: dict[str, Any], model_path: str) -> None:
        self.name, self.settings, self.model_path = name, settings, Path(model_path)
        self.earlier = os.environ.get(name)
        self.running = False
        self.written = threading.Lock()  # the reader of signals writes too, until end()

    def start(self) -> None:
        """Hand the settings, with the model file's digest now, to the workers started from now on."""
        self.running = True
        self._give(_digest(self.model_path))

    def approve_the_file(self) -> None:
        """At a SIGHUP, on the signal reader's thread: the file's digest now. The workers' check is off
        at once, while the file is read (a large one takes seconds, and uvicorn starts the reload's
        workers within half a second), so that none of them is told it differs."""
        self._give(None)
        self._give(_digest(self.model_path))

    def end(self) -> None:
        """Put back the caller's value of the variable; a SIGHUP read late writes nothing after this."""
        with self.written:
            self.running = False
            if self.earlier is None:
                os.environ.pop(self.name, None)
            else:
                os.environ[self.name] = self.earlier

    def _give(self, digest: str | None) -> None:
        with self.written:
            if self.running:
                os.environ[self.name] = json.dumps({**self.settings, "_model_digest": digest})


def _digest(path: Path) -> str | None:
    found = ModelFile.of(path)
    return None if found is None else found.digest
