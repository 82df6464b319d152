"""PyInstaller hooks for nextword, so that an app frozen with PyInstaller carries what nextword reads
from its own folders at run time: the bundled model and the server's page. PyInstaller finds them
through the ``pyinstaller40`` entry point of nextword's metadata (``hook-dirs``, which names
:func:`get_hook_dirs`); nothing else has to be passed to ``pyinstaller``.

nextword itself never imports this package or its hook files: PyInstaller runs the hooks while it
builds an app, and they import PyInstaller, which an installed nextword does not need.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["get_hook_dirs"]


def get_hook_dirs() -> list[str]:
    """The folders holding nextword's PyInstaller hooks (``hook-nextword.runtime.py`` and
    ``hook-nextword.serve.py``): this package's own folder."""
    return [str(Path(__file__).resolve().parent)]
