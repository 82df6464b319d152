"""Continuous batching: jobs share each tick's step, join and leave, and get model.generate's texts."""

from __future__ import annotations

import asyncio
import math

import pytest

from nextword.runtime import GenerationConfig
from nextword.serve.scheduler import BatchScheduler, Job, RowUpdate, ThreadScheduler


async def _texts(job: Job) -> tuple[list[str], list[str | None], list[list[str]]]:
    texts, reasons, words = [""] * job.rows, [None] * job.rows, [[] for _ in range(job.rows)]
    async for batch in job.updates():
        for u in batch:
            texts[u.index] += u.text
            if u.token is not None:
                words[u.index].append(u.token)
            if u.finished:
                reasons[u.index] = u.finish_reason
    return texts, reasons, words


def _fail_at_update(n: int, monkeypatch) -> None:
    """Make the ``n``-th word the scheduler hands over (its ``_row_update``) fail, as a failed step."""
    from nextword.serve import scheduler as module

    real = module._row_update
    calls = {"n": 0}

    def failing(index, update, tokens, eod):
        calls["n"] += 1
        if calls["n"] == n:
            raise IndexError("a failure while the tick hands words over")
        return real(index, update, tokens, eod)

    monkeypatch.setattr(module, "_row_update", failing)


def _run(coroutine, timeout: float = 120):
    """Run a test's coroutine, failing it after ``timeout`` seconds: a job waiting for rows that never
    come (a scheduler that mixes up its rows) fails the test instead of hanging the suite."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


CASES = [
    (["the network"], GenerationConfig(max_words=20, seed=1, stop_at_end=False)),
    (
        ["a neural network", ""],
        GenerationConfig(max_words=35, seed=2, temperature=0.6, num_return_sequences=3),
    ),
    (["the processor"], GenerationConfig(max_words=12, temperature=0)),
    (["each neuron"], GenerationConfig(max_words=40, seed=3, top_p=0.8, stop=(".",), min_words=2)),
    (["the model " * 300], GenerationConfig(max_words=25, seed=4, top_k=4, repetition_penalty=1.4)),
    (["the system"], GenerationConfig(max_words=30, seed=5, no_repeat_ngram_size=2, stop_at_end=False)),
]


@pytest.mark.parametrize("max_batch", [256, 3])
def test_jobs_in_one_batch_get_model_generate_texts_and_share_ticks(model, max_batch):
    scheduler = BatchScheduler(model, max_batch=max_batch)

    async def main():
        jobs = []
        for prompts, config in CASES:
            jobs.append(Job(prompts, config, None))
            scheduler.submit(jobs[-1])
            if max_batch == 3:  # with a small batch, jobs also join while the others run
                await asyncio.sleep(0.001)
        return await asyncio.gather(*(_texts(job) for job in jobs))

    try:
        results = _run(main())
    finally:
        scheduler.close()
    for (prompts, config), (texts, reasons, _) in zip(CASES, results, strict=True):
        assert texts == model.generate(prompts, config=config)
        assert all(r in ("length", "stop", "end") for r in reasons)
    longest = max(config.max_words for _, config in CASES)
    total = sum(config.max_words * len(prompts) * config.num_return_sequences for prompts, config in CASES)
    if max_batch == 256:  # every job stepped in the same ticks: about as many ticks as the longest job
        assert scheduler.ticks <= longest + len(CASES) + 3 < total // 4
    else:  # at most 3 rows at once: jobs waited for room, yet the texts are the same
        assert scheduler.ticks > longest


def test_cancel_finishes_a_job_at_the_next_tick(model):
    scheduler = BatchScheduler(model, max_batch=256)

    async def main():
        long = Job(["the network"], GenerationConfig(max_words=10_000, stop_at_end=False, seed=1), None)
        short = Job(["the system"], GenerationConfig(max_words=15, seed=2), None)
        scheduler.submit(long)
        scheduler.submit(short)
        updates = long.updates()
        first = await anext(updates)
        long.cancel()
        rest = [u async for batch in updates for u in batch]
        return first, rest, await _texts(short)

    try:
        first, rest, (short_texts, _, _) = _run(main())
    finally:
        scheduler.close()
    assert first and rest[-1].finished and rest[-1].finish_reason == "cancelled"
    assert len(rest) < 1000  # stopped long before its 10,000 words
    assert short_texts == [model.generate("the system", max_words=15, seed=2)]
    assert scheduler.stats()["sequences"] == 0


def test_logprobs_are_the_model_log_probabilities_of_the_chosen_words(model):
    scheduler = BatchScheduler(model, max_batch=8)
    config = GenerationConfig(max_words=12, temperature=0, stop_at_end=False)

    async def main():
        job = Job(["the network"], config, 3)
        scheduler.submit(job)
        updates = []
        async for batch in job.updates():
            updates.extend(batch)
        return updates

    try:
        updates = _run(main())
    finally:
        scheduler.close()
    words = [u.token for u in updates]
    text = "".join(u.text for u in updates)
    assert text == model.generate("the network", config=config)
    for u in updates:
        best_word, best = next(iter(u.top_logprobs.items()))
        assert len(u.top_logprobs) == 3 and best_word == u.token  # greedy: the most likely word
        assert best == pytest.approx(u.logprob)
    scored = model.score("the network" + text)
    assert [w.word for w in scored.words[-len(words) :]] == words
    assert [u.logprob for u in updates] == pytest.approx(
        [w.logprob for w in scored.words[-len(words) :]], abs=1e-4
    )
    assert all(math.isfinite(u.logprob) and u.logprob <= 0 for u in updates)


def test_the_unbatched_baseline_gives_the_same_texts(model):
    scheduler = ThreadScheduler(model, max_threads=4)

    async def main():
        jobs = [Job(prompts, config, None) for prompts, config in CASES]
        for job in jobs:
            scheduler.submit(job)
        return await asyncio.gather(*(_texts(job) for job in jobs))

    try:
        results = _run(main())
    finally:
        scheduler.close()
    for (prompts, config), (texts, _, _) in zip(CASES, results, strict=True):
        assert texts == model.generate(prompts, config=config)


def _word(index: int, text: str, finished: bool = False) -> RowUpdate:
    return RowUpdate(index, text, text.strip() or None, finished, "length" if finished else None, None, None)


def test_a_job_holds_words_for_its_interval_but_never_its_first_or_last():
    async def main():
        job = Job(["the network"], GenerationConfig(), None, interval=0.5)
        handed = [
            job.hold([_word(0, " a")], now=10.0),  # the first words: at once
            job.hold([_word(0, " b")], now=10.1),  # held
            job.hold([_word(0, " c")], now=10.4),  # held
            job.hold([_word(0, " d")], now=10.6),  # 0.6 s since the last hand-over: with b and c
            job.hold([_word(0, " e")], now=10.7),  # held
            job.hold([_word(0, " f", finished=True)], now=10.8),  # the last: at once, with e
        ]
        eager = Job(["the network"], GenerationConfig(), None, interval=0.0)
        return handed, [eager.hold([_word(0, w)], now=1.0) for w in (" x", " y")]

    handed, eager = _run(main())
    texts = [None if batch is None else "".join(u.text for u in batch) for batch in handed]
    assert texts == [" a", None, None, " b c d", None, " e f"]
    assert ["".join(u.text for u in batch) for batch in eager] == [" x", " y"]


def test_a_failing_tick_hands_over_the_words_it_held_before_its_error(model, monkeypatch):
    """With --stream-interval, words of earlier ticks are held; a tick that then failed dropped them:
    the client got the error without words the model had generated for it."""
    _fail_at_update(4, monkeypatch)
    scheduler = BatchScheduler(model, max_batch=256)

    async def main():
        job = Job(["the network"], GenerationConfig(max_words=10, seed=1), None, interval=60.0)
        scheduler.submit(job)
        words = []
        with pytest.raises(RuntimeError, match="generation failed"):
            async for batch in job.updates():
                words += [u.token for u in batch if u.token is not None]
        return words

    try:
        words = _run(main())
    finally:
        scheduler.close()
    assert len(words) == 3, words  # the first at once, the next two held, then the failing fourth


def test_a_failure_after_words_already_handed_over_reaches_the_route_after_them():
    """A failed step's error came in the same read as the words of the ticks before it (or was handed
    over while words were held for the stream interval): the route got the error alone, and the client
    never saw words the model had generated for it."""

    async def main():
        job = Job(["the network"], GenerationConfig(), None, interval=0.5)
        job.deliver(job.hold([_word(0, " a")], now=10.0))  # handed over at once
        assert job.hold([_word(0, " b")], now=10.1) is None  # held for the interval
        job.fail(RuntimeError("generation failed (IndexError); see the server's log"))  # held, then it
        await asyncio.sleep(0)  # the deliveries land in the queue before the first read
        read = []
        with pytest.raises(RuntimeError, match="generation failed"):
            async for batch in job.updates():
                read.append("".join(u.text for u in batch))
        return read, job.words

    read, words = _run(main())
    assert read == [" a b"] and words == 2


@pytest.mark.parametrize("batching", [True, False])
def test_with_a_long_interval_a_stream_gets_its_first_word_then_the_rest_at_once(model, batching):
    scheduler = BatchScheduler(model, max_batch=8) if batching else ThreadScheduler(model, max_threads=2)
    config = GenerationConfig(max_words=30, seed=3, stop_at_end=False)

    handed: list[list] = []  # what the scheduler hands over, whenever the reader gets to read it

    async def main():
        job = Job(["the network"], config, None, interval=3600.0)
        hold = job.hold

        def recorded(batch, now):
            out = hold(batch, now)
            if out is not None:
                handed.append(list(out))
            return out

        job.hold = recorded  # type: ignore[method-assign]
        scheduler.submit(job)
        return [batch async for batch in job.updates()]

    try:
        batches = _run(main())
    finally:
        scheduler.close()
    assert len(handed) == 2  # the first word as soon as it was chosen; the other 29 with the last
    assert sum(u.token is not None for u in handed[0]) == 1 and handed[-1][-1].finished
    # A reader that wakes after both hand-overs reads them as one batch (a fast model, a busy machine).
    assert len(batches) in (1, 2) and batches[-1][-1].finished
    assert "".join(u.text for batch in batches for u in batch) == model.generate("the network", config=config)


def test_a_job_that_finished_in_a_failing_tick_hears_of_the_failure_and_the_next_job_runs(model, monkeypatch):
    # The tick converted job A's last word (its row released), then failed on job B's: A was in no row
    # any more, so the failure reached only B and A waited for good. Both now end with the error, and the
    # scheduler, with a new generator, serves the next job.
    _fail_at_update(2, monkeypatch)
    scheduler = BatchScheduler(model, max_batch=256)

    async def main():
        a = Job(["the network"], GenerationConfig(max_words=1, seed=1), None)  # ends at its first word
        b = Job(["the system"], GenerationConfig(max_words=5, seed=2), None)
        scheduler.submit(a)
        scheduler.submit(b)
        outcomes = []
        for job in (a, b):
            try:
                await asyncio.wait_for(_texts(job), 10)
                outcomes.append("words")
            except RuntimeError as exc:
                outcomes.append(str(exc))
        after = Job(["the model"], GenerationConfig(max_words=4, seed=3), None)
        scheduler.submit(after)
        return outcomes, await asyncio.wait_for(_texts(after), 10)

    try:
        outcomes, (texts, _, _) = _run(main())
    finally:
        scheduler.close()
    assert outcomes == ["generation failed (IndexError); see the server's log"] * 2, outcomes
    assert texts == [model.generate("the model", max_words=4, seed=3)]
    assert scheduler.stats()["failed_steps"] == 1 and scheduler.stats()["sequences"] == 0


@pytest.mark.parametrize("where", ["generator", "add"])
def test_the_unbatched_baseline_ends_a_job_whose_generator_fails(model, monkeypatch, where):
    # An exception other than a refusal (a MemoryError, say) in making the generator or adding the
    # prompts was raised in the thread pool, where nobody reads it: the job waited for good.
    class Broken:
        def __getattr__(self, name):
            return getattr(model, name)

        def generator(self):
            if where == "generator":
                raise MemoryError
            gen = model.generator()
            gen.add = lambda *args, **kwargs: (_ for _ in ()).throw(MemoryError())
            return gen

    scheduler = ThreadScheduler(Broken(), max_threads=2)

    async def main():
        job = Job(["the network"], GenerationConfig(max_words=3, seed=1), None)
        scheduler.submit(job)
        await asyncio.wait_for(_texts(job), 10)

    try:
        with pytest.raises(RuntimeError, match=r"generation failed \(MemoryError\)"):
            _run(main())
    finally:
        scheduler.close()


# a job that fills the room left exactly joins
# the running batch at once rather than waiting for it to empty.
def test_a_job_that_exactly_fills_the_room_left_joins_the_running_batch(model):
    scheduler = BatchScheduler(model, max_batch=3)

    async def main():
        long = Job(["the network"], GenerationConfig(max_words=10_000, stop_at_end=False, seed=1), None)
        scheduler.submit(long)
        updates = long.updates()
        await anext(updates)  # the long job is in the batch: 1 of 3 rows taken
        config = GenerationConfig(max_words=3, num_return_sequences=2, stop_at_end=False, seed=2)
        short = Job(["the system"], config, None)  # 2 rows: 1 + 2 = max_batch
        scheduler.submit(short)
        texts = [""] * short.rows
        async for batch in short.updates():
            for u in batch:
                texts[u.index] += u.text
        in_flight = scheduler.stats()["sequences"]  # the long job's row, still running
        long.cancel()
        async for _ in updates:
            pass
        return texts, in_flight, config

    try:
        texts, in_flight, config = _run(main())
    finally:
        scheduler.close()
    assert texts == model.generate(["the system"], config=config)
    assert in_flight == 1, "the short job waited for the long one to end"
