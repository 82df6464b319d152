"""Which ``tf.distribute`` strategy trains, and what the processes of a multi-worker run share.

``TrainConfig.distribute`` picks the strategy:

* ``none``: TensorFlow's default strategy, this process alone (its first GPU if it has one);
* ``mirrored``: ``tf.distribute.MirroredStrategy``, one replica per local GPU (the CPU when none);
* ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, one process per machine, the cluster
  described by the ``TF_CONFIG`` environment variable as TensorFlow documents it::

      TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                  "task": {"type": "worker", "index": 0}}'

  Worker 0 (or the task of type ``chief``, if the cluster lists one) is the chief: it alone writes
  the run folder. The others prepare their own copy of the encoded corpus in a temporary folder
  (:mod:`nextword.train.scratch`), and receive the chief's state (weights, optimizer, metrics
  history) by broadcast, so they need the corpus files but no shared disk.

TensorFlow waits for absent peers without limit, so before the strategy is created
:func:`wait_for_peers` checks that every worker's host resolves (at once) and that its port answers
within ``TrainConfig.peer_timeout`` seconds, and raises :class:`PeerUnreachableError` otherwise. A port
that answers is not always a worker that joins: another service may listen there, or the workers'
``TF_CONFIG`` lists may disagree, and TensorFlow then waits inside its C++ code, holding the
interpreter's lock. So a watchdog process (:mod:`nextword.train.watchdog`) runs from the strategy's
creation until :func:`confirm_workers` has heard from every worker (the first collective: the workers'
settings compared field by field); past ``peer_timeout`` seconds it says what to check and kills the
worker, and it ends the worker when Ctrl-C or SIGTERM reaches them meanwhile. Creating the strategy
also takes over SIGTERM at the C level; :func:`start_workers` gives it back to Python, so ``timeout``
and schedulers stop a worker as they stop a lone run. A worker that dies later is noticed by
TensorFlow's coordination service within seconds (missing heartbeats); the others then fail with
:class:`WorkerLostError` instead of waiting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cluster import (
    Cluster,
    DistributeError,
    PeerUnreachableError,
    parse_tf_config,
    task_name,
    wait_for_peers,
)
from .scratch import worker_scratch
from .watchdog import Watchdog, give_sigterm_back

__all__ = [
    "Cluster",
    "DistributeError",
    "PeerUnreachableError",
    "WorkerLostError",
    "Workers",
    "broadcast_json",
    "broadcast_variables",
    "check_same",
    "confirm_workers",
    "parse_tf_config",
    "start_workers",
    "wait_for_peers",
    "worker_scratch",
]

logger = logging.getLogger(__name__)


class WorkerLostError(RuntimeError):
    """Another worker stopped answering during training (killed, crashed, its machine gone)."""


@dataclass(frozen=True)
class Workers:
    """The strategy of this process and its place among the processes that train together."""

    strategy: Any  # tf.distribute.Strategy
    mode: str  # TrainConfig.distribute
    index: int = 0  # this worker; 0 is the chief
    count: int = 1  # worker processes
    chiefs: int = 0  # 1 where TF_CONFIG lists a chief task (see Cluster)
    reducers: dict[tuple[bool, str], Any] = field(default_factory=dict, compare=False, repr=False)
    watchdog: Watchdog | None = field(default=None, compare=False, repr=False)  # see confirm_workers

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def name(self) -> str:
        """This worker as TF_CONFIG names it (``worker 1``, ``the chief``), for messages."""
        return task_name(self.index, self.chiefs)

    @property
    def replicas(self) -> int:
        """Replicas training in sync, over all workers."""
        return int(self.strategy.num_replicas_in_sync)

    def replica_ids(self, pipeline: int, pipelines: int) -> range:
        """The replicas that input pipeline ``pipeline`` of ``pipelines`` feeds (one per worker)."""
        per = self.replicas // pipelines
        return range(pipeline * per, (pipeline + 1) * per)


def start_workers(mode: str, peer_timeout: float) -> Workers:
    """Create the strategy of ``mode`` (see the module docstring). For ``multi-worker`` this checks
    ``TF_CONFIG`` and waits for the peers first; call it before any other TensorFlow work, as
    ``MultiWorkerMirroredStrategy`` must be created at program start."""
    if mode == "multi-worker":
        cluster = parse_tf_config(os.environ.get("TF_CONFIG"))
        if len(cluster.addresses) > 1:
            wait_for_peers(cluster, peer_timeout)
    elif (os.environ.get("TF_CONFIG") or "").strip():  # a worker started without --distribute multi-worker
        logger.warning(
            "TF_CONFIG is set, but distribute=%r: this process trains alone, not with the workers TF_CONFIG "
            "lists (for that, start every worker with distribute='multi-worker')",
            mode,
        )
    import tensorflow as tf

    if mode == "none":
        return Workers(tf.distribute.get_strategy(), mode)
    if mode == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        logger.info("MirroredStrategy over %s", list(strategy.extended.worker_devices))
        return Workers(strategy, mode)
    if mode != "multi-worker":
        raise DistributeError(f"unknown distribute mode {mode!r}")
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
    )
    others = [a for i, a in enumerate(cluster.addresses) if i != cluster.index]
    watchdog = Watchdog(cluster.name(), others, peer_timeout) if others else None
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except BaseException:
        if watchdog is not None:  # else it would end this process (a notebook's) after peer_timeout
            watchdog.cancel()
        raise
    give_sigterm_back()
    logger.info(
        "%s of a cluster of %d (%s), %s in sync",
        cluster.name(),
        len(cluster.addresses),
        "the chief" if cluster.is_chief else "not the chief",
        f"{strategy.num_replicas_in_sync} replica{'' if strategy.num_replicas_in_sync == 1 else 's'}",
    )
    return Workers(
        strategy,
        mode,
        index=cluster.index,
        count=len(cluster.addresses),
        chiefs=cluster.chiefs,
        watchdog=watchdog,
    )


def confirm_workers(workers: Workers, settings: dict[str, int]) -> None:
    """The workers' first exchange: raise :class:`DistributeError` on every worker unless all hold the
    chief's ``settings`` (a fingerprint per setting, so the message names the ones that differ), then
    stop the watchdog of :func:`start_workers`: the cluster has formed. Call it on every worker right
    after :func:`start_workers`, before anything is read or written."""
    try:
        with lost_workers(workers):
            check_same(workers, settings)
    finally:
        if workers.watchdog is not None:
            workers.watchdog.cancel()
    give_sigterm_back()  # TensorFlow's collectives took it over once more


@contextlib.contextmanager
def lost_workers(workers: Workers) -> Iterator[None]:
    """Turn TensorFlow's errors about an unreachable peer, or about this worker's data files gone from
    under it, into :class:`WorkerLostError`: one line that says to restart every worker."""
    if workers.count == 1:
        yield
        return
    import tensorflow as tf

    lost = (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.CancelledError,
        tf.errors.AbortedError,
        tf.errors.FailedPreconditionError,
        tf.errors.InternalError,
    )
    restart = (
        "restart every worker with the same command: training continues from the last checkpoint (or "
        "starts again, before the first)"
    )
    try:
        yield
    except lost as exc:
        raise WorkerLostError(
            f"{workers.name} lost contact with the other workers ({_reason(exc)}); {restart}"
        ) from None
    except (tf.errors.NotFoundError, tf.errors.UnknownError) as exc:
        missing = _file_error(exc)
        if missing is None:  # not about a file: a fault of its own, with its traceback
            raise
        logger.debug("%s: reading its data failed", workers.name, exc_info=True)
        raise WorkerLostError(
            f"{workers.name} could not read its data ({missing}): another process removed or "
            f"replaced the files it trains on; {restart}"
        ) from None


def _file_error(exc: Exception) -> str | None:
    """What a TensorFlow error says of a file that could not be read (an input pipeline's Python error,
    ``FileNotFoundError: [Errno 2] No such file or directory: '...'``; TensorFlow's own), else None."""
    lines = str(getattr(exc, "message", exc)).splitlines()
    found = next(
        (m.group(0) for line in lines if (m := re.search(r"(\w+Error: )?\[Errno \d+\].*", line))), None
    )
    found = found or next((line.strip() for line in lines if "No such file or directory" in line), None)
    return found[:200] if found else None


def _reason(exc: Exception) -> str:
    """The line of a TensorFlow error that says what happened to the peer (its first line is often
    just "Graph execution error:")."""
    lines = [line.strip() for line in str(getattr(exc, "message", exc)).splitlines() if line.strip()]
    telling = ("unhealthy", "heartbeat", "reset", "unavailable", "aborted", "socket", "connect", "deadline")
    found = next((line for line in lines if any(word in line.lower() for word in telling)), None)
    return (found or (lines[0] if lines else type(exc).__name__))[:200]


def _all_reduce(workers: Workers, value: np.ndarray, *, chief_only: bool) -> np.ndarray:
    """The sum of ``value`` over the workers, each worker's first replica contributing (or the chief's
    first replica alone, with ``chief_only``: then every worker gets the chief's ``value``, x + 0
    being exact)."""
    import tensorflow as tf

    value = np.asarray(value)
    key = (chief_only, value.dtype.str)
    reduce = workers.reducers.get(key)
    if reduce is None:  # traced once per kind and dtype, for vectors of any length: TensorFlow warned
        strategy, per_worker = workers.strategy, workers.replicas // workers.count  # of retracing

        def contribute(mine: tf.Tensor) -> tf.Tensor:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            keep = replica == 0 if chief_only else replica % per_worker == 0
            return tf.where(keep, mine, tf.zeros_like(mine))

        def summed(mine: tf.Tensor) -> tf.Tensor:
            per_replica = strategy.run(contribute, args=(mine,))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        signature = [tf.TensorSpec([None], tf.as_dtype(value.dtype))]  # (N,)
        reduce = workers.reducers[key] = tf.function(summed, input_signature=signature)
    return np.asarray(reduce(tf.constant(value.reshape(-1)))).reshape(value.shape)


def _from_chief(workers: Workers, value: np.ndarray) -> np.ndarray:
    """``value`` as the chief holds it, on every worker."""
    return _all_reduce(workers, value, chief_only=True)


def broadcast_json(workers: Workers, data: Any) -> Any:
    """The chief's ``data`` (JSON-able) on every worker; others pass anything (it is ignored)."""
    if workers.count == 1:
        return data
    payload = (
        np.frombuffer(json.dumps(data).encode(), dtype=np.uint8)
        if workers.is_chief
        else np.zeros(0, np.uint8)
    )
    length = int(_from_chief(workers, np.asarray([len(payload)], dtype=np.int64))[0])
    padded = np.zeros(length, dtype=np.int64)  # int64 like the other broadcasts: one traced function
    padded[: len(payload)] = payload[:length]
    received = _from_chief(workers, padded).astype(np.uint8).tobytes()
    return json.loads(received.decode())


def broadcast_variables(workers: Workers, variables: Sequence[Any]) -> None:
    """Give every worker's ``variables`` the chief's values (after the chief loaded a checkpoint):
    one all-reduce per dtype, of all of them flattened into one vector."""
    if workers.count == 1:
        return
    by_dtype: dict[str, list[Any]] = {}
    for variable in variables:
        by_dtype.setdefault(np.dtype(variable.numpy().dtype).str, []).append(variable)
    for group in by_dtype.values():
        values = [np.asarray(v.numpy()) for v in group]
        flat = _from_chief(workers, np.concatenate([v.ravel() for v in values]))  # (sum of sizes,)
        offsets = np.cumsum([0, *(v.size for v in values)])
        for variable, value, low, high in zip(group, values, offsets[:-1], offsets[1:], strict=True):
            variable.assign(flat[low:high].reshape(value.shape))


def check_same(workers: Workers, values: dict[str, int]) -> None:
    """Raise :class:`DistributeError` on every worker unless all hold the chief's integer ``values``
    (data and settings fingerprints): a worker with another corpus or other options fails at once,
    and so do the others, instead of waiting for it."""
    if workers.count == 1:
        return
    names = sorted(values)
    mine = np.asarray([values[n] % 2**62 for n in names], dtype=np.int64)
    differ = _from_chief(workers, mine) != mine  # (N,) on this worker
    everywhere = _all_reduce(workers, differ.astype(np.int64), chief_only=False)  # (N,) workers differing
    if everywhere.any():
        shown = ", ".join(n for n, k in zip(names, everywhere, strict=True) if k)
        raise DistributeError(
            f"the workers disagree on {shown}: run every worker with the same command, the same corpus "
            "files and the same nextword version"
        )
