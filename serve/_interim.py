"""A stand-in for ``nextword.runtime.Generator`` until it lands: the same calls over SamplingRun.

Each ``add`` gets its own SamplingRun, so requests do not share session calls yet; texts, seeds and
finish reasons are those of ``model.generate``. Logprobs are not available here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nextword.runtime import GenerationConfig, NextWordModel
from nextword.runtime.decoding import SamplingRun

__all__ = ["InterimGenerator", "Update"]


@dataclass(frozen=True)
class Update:
    row: int
    token: str | None
    text: str
    finished: bool
    finish_reason: str | None = None
    logprob: float | None = None
    top_logprobs: Any = None


class InterimGenerator:
    def __init__(self, model: NextWordModel) -> None:
        self.model = model
        self._rows: dict[int, tuple[SamplingRun, int]] = {}  # row -> (run, index in run)
        self._sent: dict[int, int] = {}
        self._cancelled: set[int] = set()
        self._finished: set[int] = set()
        self._next = 0

    def add(
        self, prompts: str | list[str], config: GenerationConfig, logprobs: int | None = None
    ) -> list[int]:
        if logprobs is not None:
            raise ValueError("logprobs need nextword.runtime.Generator")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        ids = [self.model.prompt_ids(p) for p in prompts]
        run = SamplingRun(self.model, ids, config, [p[-1:].isspace() for p in prompts])
        rows = list(range(self._next, self._next + len(run.texts)))
        self._next += len(rows)
        for index, row in enumerate(rows):
            self._rows[row], self._sent[row] = (run, index), 0
        return rows

    @property
    def done(self) -> bool:
        return all(row in self._finished for row in self._rows)

    @property
    def active(self) -> int:
        return sum(row not in self._finished for row in self._rows)

    def cancel(self, row: int) -> None:
        if row in self._rows and row not in self._finished:
            self._cancelled.add(row)

    def release(self, row: int) -> None:
        self._rows.pop(row, None)
        self._sent.pop(row, None)
        self._finished.discard(row)
        self._cancelled.discard(row)

    def step(self) -> list[Any]:
        updates = []
        runs: dict[int, tuple[SamplingRun, list[int]]] = {}
        for row, (run, _) in self._rows.items():
            if row in self._finished:
                continue
            if row in self._cancelled:
                self._finished.add(row)
                updates.append(Update(row, None, "", True, "cancelled"))
                continue
            runs.setdefault(id(run), (run, []))[1].append(row)
        for run, rows in runs.values():
            lengths = {row: len(run.generated[self._rows[row][1]]) for row in rows}
            run.step()
            active = set(run.active)
            for row in rows:
                index = self._rows[row][1]
                generated, text = run.generated[index], run.texts[index]
                token = (
                    self.model.tokenizer.token_of(generated[-1]) if len(generated) > lengths[row] else None
                )
                finished = index not in active
                safe = len(text.text) if finished else text.safe_length()
                piece, self._sent[row] = text.text[self._sent[row] : safe], max(self._sent[row], safe)
                reason = None
                if finished:
                    self._finished.add(row)
                    if text.stopped:
                        reason = "stop"
                    elif len(generated) >= run.config.max_words:
                        reason = "length"
                    else:
                        reason = "end"
                updates.append(Update(row, token, piece, finished, reason))
        return updates
