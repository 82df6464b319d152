"""A progress bar of the rows a pass has read and matched, on a terminal only."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["Progress"]

logger = logging.getLogger(__name__)


class Progress:
    """A tqdm bar of rows scanned and matched, or nothing (not a terminal, or turned off)."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.matched = 0
        self._bar: Any = None
        self._shown = 0
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            logger.warning('no progress bar: tqdm is not installed (pip install "nextword[train]")')
            return
        self._bar = tqdm(desc=desc, unit=" rows", unit_scale=True, mininterval=0.5, dynamic_ncols=True)

    def update(self, rows: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"matched {self.matched:,}", refresh=False)
            self._bar.update(rows - self._shown)
            self._shown = rows

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"matched {self.matched:,}", refresh=False)
            self._bar.close()
