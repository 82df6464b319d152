"""Buffers reused from one region of a table to the next, so that scanning allocates no fresh pages."""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["Scratch"]


class Scratch(threading.local):
    """Buffers reused from one region to the next, so that scanning a region allocates (and faults in) no
    fresh pages: a bytearray with a uint8 view of it and three boolean masks, all at least ``n`` long."""

    def __init__(self) -> None:
        self._size = -1

    def take(self, n: int) -> tuple[bytearray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(bytearray, its first n bytes as uint8, and three bool masks of n)``."""
        if n > self._size:
            self._size = max(n, 2 * self._size, 1 << 16)
            self._bytes = bytearray(self._size)
            self._view = np.frombuffer(self._bytes, dtype=np.uint8)
            self._masks = np.empty((3, self._size), dtype=bool)
        return self._bytes, self._view[:n], self._masks[0, :n], self._masks[1, :n], self._masks[2, :n]
