"""Which of a model's onnxruntime sessions a step runs on, by its number of rows.

``load()`` without thread options gives a model on the CPU up to three sessions of the same file:

- **one**: one intra-op thread, made at load; every step that no rule below claims;
- **wide**: two threads whose pool spins between runs, made at load on a machine with two cores or
  more, for a step that runs alone (no other step of the process in progress or just ended,
  :func:`~.session.alone`);
- **pair**: two threads whose pool does not spin, made at the first step that needs it.

Where a batch size gives one thread's numbers on two (:class:`~.probe.WideCheck`; any batch of an fp32
model, up to 4 rows of the bundled int8 one), its step runs on the wide session when it runs alone and
on one thread otherwise. Where it does not (an int8 model's larger batches: onnxruntime quantizes each
thread's share of the rows on its own), a step of :data:`PAIR_ROWS` rows or more runs on two threads
whatever else runs: on the wide session when it runs alone (its numbers are the pair's, which a second
check confirms), else on the pair; a smaller one on one thread.

A step's session then depends on its batch size and on what else runs, its numbers on its batch size
alone: a text is the same whatever else the process does, and on any number of cores (a one-core
machine makes the pair too, to check and run those batches). Why two threads for those batches even
when other threads step at once: from 8 rows on, two threads without spinning took at most a few
percent longer than one thread under 8 generating threads, and alone about 40% less time
(docs/benchmarks.md, "Session threads"); a single row's step there takes longer on two threads, so
smaller batches that differ keep one thread.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .model_file import ModelInfo
from .probe import MAX_ROWS, WideCheck
from .session import alone
from .sessions import HoldsSessions

__all__ = ["ONE", "PAIR", "PAIR_ROWS", "WIDE", "SessionPlan"]

ONE, WIDE, PAIR = 0, 1, 2  # indexes of SessionPlan.sessions
PAIR_ROWS = 5  # the fewest rows that run on the pair when their numbers differ on two threads


class SessionPlan(HoldsSessions):
    """A model's sessions (:data:`ONE`, :data:`WIDE`, :data:`PAIR`; None where there is none yet)
    and :meth:`choose`, the rule above. Thread-safe: the pair and a one-core machine's check are made
    once, under a lock; a step that reads while another thread makes them waits for them. A forked
    child gets fresh locks (:func:`_unlock_plans`). Not picklable, as the model is not.

    ``make_pair`` makes the two-thread session without spinning (None: steps never need one, as with
    ``load(threads=n)``, custom session options or a GPU); it is dropped, with the file's bytes it
    keeps, once the checks find that every batch size gives one thread's numbers (an fp32 model).
    ``check`` compares the one-thread session with the wide one, when there is one.
    """

    def __init__(
        self,
        one: Any,
        info: ModelInfo,
        source: str,
        *,
        wide: Any | None = None,
        check: WideCheck | None = None,
        make_pair: Callable[[], Any] | None = None,
    ) -> None:
        self.sessions: list[Any] = [one, wide, None]  # None where there is none (yet)
        self._info, self._source = info, source
        self._check = check if check is not None or wide is None else WideCheck(one, wide, info, source)
        self._pair_wide: WideCheck | None = None  # the pair against the wide session, once both exist
        self._make_pair = make_pair
        self._lock = threading.Lock()
        _PLANS.add(self)

    @classmethod
    def single(cls, session: Any, info: ModelInfo, source: str) -> SessionPlan:
        """A plan of one session that runs every step (explicit threads or session options, a GPU)."""
        return cls(session, info, source)

    @property
    def wide_rows(self) -> int:
        """The most rows a step may run on the wide session (every check still to run, run now)."""
        if self.sessions[WIDE] is None or self._check is None:
            return 0
        return self._check.settle()

    def choose(self, rows: int) -> int:
        """The session a step of ``rows`` rows runs on now: :data:`ONE`, :data:`WIDE` or :data:`PAIR`."""
        wide = self.sessions[WIDE]
        if rows < PAIR_ROWS or self._make_pair is None:
            if wide is None:
                return ONE
            return WIDE if self._check.allows(rows) and alone() else ONE  # type: ignore[union-attr]
        check = self._check or self._pair_check()
        if check is None:  # the pair could not start its threads: one thread, as without a pair
            return self.choose(rows)
        if check.allows(rows):  # the numbers of one thread: as a smaller batch
            if check.agreed >= MAX_ROWS:  # any batch agrees (fp32): no step will need the pair
                self._forget_pair()
            return WIDE if wide is not None and alone() else ONE
        if self._pair() is None:
            return self.choose(rows)
        if wide is not None and alone() and (self._pair_wide or self._wide_as_pair()).allows(rows):
            return WIDE  # two threads as well, spinning: the pair's numbers
        return PAIR

    def _pair(self) -> Any:
        """The pair session, made now if it is not yet; None where it could not start its threads (a
        limit on them, said once by ``make_pair``): steps then run as on a machine that never needs it."""
        with self._lock:
            if self.sessions[PAIR] is None and self._make_pair is not None:
                self.sessions[PAIR] = self._make_pair()
                if self.sessions[PAIR] is None:
                    self._make_pair = None
            return self.sessions[PAIR]

    def _wide_as_pair(self) -> WideCheck:
        """The check of the pair against the wide session: which batch sizes give the same numbers."""
        with self._lock:
            if self._pair_wide is None:
                pair, wide = self.sessions[PAIR], self.sessions[WIDE]
                self._pair_wide = WideCheck(pair, wide, self._info, self._source)
            return self._pair_wide

    def _forget_pair(self) -> None:
        """Drop the pair (made only for a one-core machine's check) and the file's bytes kept to make it."""
        with self._lock:
            self._make_pair = None
            self.sessions[PAIR] = None

    def _pair_check(self) -> WideCheck | None:
        """Without a wide session (one usable core): the check of one thread against the pair (None
        without a pair)."""
        pair = self._pair()
        if pair is None:
            return None
        with self._lock:
            if self._check is None:
                self._check = WideCheck(self.sessions[ONE], pair, self._info, self._source)
            return self._check

    def _unlock(self) -> None:
        """Fresh locks for the plan and its checks: in a forked child, one copied while another thread
        made the pair or ran a check stays locked, and that thread does not exist there."""
        self._lock = threading.Lock()
        for check in (self._check, self._pair_wide):
            if check is not None:  # the check's own lock, which it holds while it steps both sessions
                check._lock = threading.Lock()


# Every plan alive in this process, for _unlock_plans (weak: a model dropped is not kept for this).
_PLANS: weakref.WeakSet[SessionPlan] = weakref.WeakSet()


def _unlock_plans() -> None:
    """After a fork: every plan gets fresh locks. The child has one thread, so none is held there; a pair
    or a check that another thread was making is made again at the child's first step that needs it."""
    for plan in _PLANS:
        plan._unlock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_unlock_plans)
