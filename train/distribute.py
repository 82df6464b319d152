"""Which ``tf.distribute`` strategy trains, and what the processes of a multi-worker run share.

``TrainConfig.distribute`` picks the strategy:

* ``none``: TensorFlow's default strategy, this process alone (its first GPU if it has one);
* ``mirrored``: ``tf.distribute.MirroredStrategy``, one replica per local GPU (the CPU when none);
* ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, one process per machine, the cluster
  described by the ``TF_CONFIG`` environment variable as TensorFlow documents it::

      TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                  "task": {"type": "worker", "index": 0}}'

  Worker 0 (or the task of type ``chief``, if the cluster lists one) is the chief: it alone writes
  the run folder. The others prepare their own copy of the encoded corpus in a temporary folder that
  they remove when they end, and receive the chief's state (weights, optimizer, metrics history) by
  broadcast, so they need the corpus files but no shared disk.

TensorFlow waits for absent peers without limit, so before the strategy is created
:func:`wait_for_peers` checks that every worker's port answers within ``TrainConfig.peer_timeout``
seconds and raises :class:`PeerUnreachableError` otherwise. A port that answers is not always a worker
that joins: another service may listen there, or the workers' ``TF_CONFIG`` lists may disagree, and
TensorFlow then waits inside its C++ code, holding the interpreter's lock. So a watchdog process runs
from the strategy's creation until :func:`confirm_workers` has heard from every worker (the first
collective: the workers' settings compared field by field); past ``peer_timeout`` seconds it says what
to check and kills the worker. Creating the strategy also takes over SIGTERM at the C level;
:func:`start_workers` gives it back to Python, so ``timeout`` and schedulers stop a worker as they stop
a lone run. A worker that dies later is noticed by TensorFlow's coordination service within seconds
(missing heartbeats); the others then fail with :class:`WorkerLostError` instead of waiting.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}'
)


class DistributeError(ValueError):
    """A distributed setting that cannot work: a bad ``TF_CONFIG``, workers that disagree."""


class PeerUnreachableError(DistributeError):
    """A worker of ``TF_CONFIG`` did not answer within the start-up timeout."""


class WorkerLostError(RuntimeError):
    """Another worker stopped answering during training (killed, crashed, its machine gone)."""


@dataclass(frozen=True)
class Cluster:
    """The workers of a ``TF_CONFIG``, chief first, and the index of this process among them."""

    addresses: tuple[str, ...]
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def parse_tf_config(text: str | None) -> Cluster:
    """Check a ``TF_CONFIG`` value and return its cluster; :class:`DistributeError` says what is wrong.

    Accepted: ``cluster`` with a ``worker`` list and optionally a one-entry ``chief`` list of
    ``HOST:PORT`` addresses, and ``task`` with a ``type`` (``worker`` or ``chief``) and an ``index``
    within that list. Other task types (parameter servers, evaluators) are not used by this strategy.
    """
    if not text or not text.strip():
        raise DistributeError(
            f"distribute='multi-worker' needs TF_CONFIG; set it on each worker, e.g. {TF_CONFIG_EXAMPLE}"
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise DistributeError(f'TF_CONFIG has no "cluster" object; expected {TF_CONFIG_EXAMPLE}')
    cluster = config["cluster"]
    unknown = sorted(set(cluster) - {"worker", "chief"})
    if unknown:
        raise DistributeError(
            f'TF_CONFIG cluster has {unknown}: multi-worker training uses only "worker" and "chief"'
        )
    jobs: dict[str, list[str]] = {}
    for job in ("chief", "worker"):
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise DistributeError(f'TF_CONFIG cluster.{job} must be a list of "HOST:PORT" strings')
        for i, address in enumerate(addresses):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise DistributeError(f"TF_CONFIG cluster.{job}[{i}] = {address!r} is not HOST:PORT")
        jobs[job] = addresses
    if len(jobs["chief"]) > 1:
        raise DistributeError(f"TF_CONFIG cluster.chief lists {len(jobs['chief'])} tasks; it takes one")
    if not jobs["worker"] and not jobs["chief"]:
        raise DistributeError(f"TF_CONFIG cluster lists no workers; expected {TF_CONFIG_EXAMPLE}")
    everyone = [*jobs["chief"], *jobs["worker"]]
    if len(set(everyone)) < len(everyone):
        raise DistributeError(f"TF_CONFIG lists an address twice: {everyone}")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise DistributeError(
            'TF_CONFIG has no task: add "task": {"type": "worker", "index": N}, N being this worker\'s '
            "place in cluster.worker"
        )
    kind, index = task["type"], task["index"]
    if kind not in jobs or not jobs[kind]:
        raise DistributeError(
            f"TF_CONFIG task type {kind!r} is not a job of its cluster ({sorted(k for k in jobs if jobs[k])})"
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
        raise DistributeError(
            f"TF_CONFIG task index {index!r} is out of range: cluster.{kind} has {len(jobs[kind])} "
            f"entries (indices 0 to {len(jobs[kind]) - 1})"
        )
    position = index if kind == "chief" else len(jobs["chief"]) + index
    return Cluster(addresses=tuple(everyone), index=position)


def wait_for_peers(cluster: Cluster, timeout: float) -> None:
    """Return once every other worker's address accepts a TCP connection; raise
    :class:`PeerUnreachableError` after ``timeout`` seconds.

    This worker listens on its own port meanwhile (answering the others' checks, as TensorFlow's
    server will once the strategy is created) and closes it before returning. A port that is taken
    raises :class:`DistributeError`.
    """
    port = int(cluster.addresses[cluster.index].rpartition(":")[2])
    try:  # all interfaces, as TensorFlow's gRPC server binds
        listener = socket.create_server(("", port), reuse_port=False)
    except OSError as exc:
        raise DistributeError(
            f"worker {cluster.index} cannot listen on port {port} of TF_CONFIG ({exc.strerror}): "
            "is another process using it?"
        ) from None
    pending = {i: a for i, a in enumerate(cluster.addresses) if i != cluster.index}
    deadline = time.monotonic() + timeout
    with listener, selectors.DefaultSelector() as selector:
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
        while pending:
            for i, address in list(pending.items()):
                host, _, peer_port = address.rpartition(":")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((host.strip("[]"), int(peer_port)), timeout=1.0),
                ):
                    del pending[i]
            if pending and time.monotonic() > deadline:
                shown = ", ".join(f"worker {i} at {a}" for i, a in pending.items())
                raise PeerUnreachableError(
                    f"{shown} did not answer within {timeout:g} s: start the same training on every "
                    "worker of TF_CONFIG, or check the addresses (`peer_timeout`: the wait)"
                )
            for _ in selector.select(timeout=0.2 if pending else 0):  # answer the others' checks
                with contextlib.suppress(OSError):
                    listener.accept()[0].close()
    logger.info("all %d workers answered", len(cluster.addresses))


@dataclass(frozen=True)
class Workers:
    """The strategy of this process and its place among the processes that train together."""

    strategy: Any  # tf.distribute.Strategy
    mode: str  # TrainConfig.distribute
    index: int = 0  # this worker; 0 is the chief
    count: int = 1  # worker processes
    reducers: dict[bool, Any] = field(default_factory=dict, compare=False, repr=False)  # see _all_reduce
    watchdog: _Watchdog | None = field(default=None, compare=False, repr=False)  # see confirm_workers

    @property
    def is_chief(self) -> bool:
        return self.index == 0

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
    watchdog = _Watchdog(cluster, peer_timeout) if len(cluster.addresses) > 1 else None
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    _give_sigterm_back()
    logger.info(
        "worker %d of %d (%s), %s in sync",
        cluster.index,
        len(cluster.addresses),
        "chief" if cluster.is_chief else "not chief",
        f"{strategy.num_replicas_in_sync} replica{'' if strategy.num_replicas_in_sync == 1 else 's'}",
    )
    return Workers(strategy, mode, index=cluster.index, count=len(cluster.addresses), watchdog=watchdog)


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
    _give_sigterm_back()  # TensorFlow's collectives took it over once more


_WATCHDOG = """
import os, signal, sys, time
parent, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(timeout)
if os.getppid() == parent:  # still waiting: the parent would have killed this process otherwise
    sys.stderr.write(message)
    sys.stderr.flush()
    os.kill(parent, signal.SIGKILL)
"""


class _Watchdog:
    """A child process that kills this one (SIGKILL, after one line on stderr) unless cancelled within
    ``timeout`` seconds. A process, not a thread: while TensorFlow waits for a cluster that cannot form
    it holds the interpreter's lock, so no Python thread runs, and it ignores SIGTERM."""

    def __init__(self, cluster: Cluster, timeout: float) -> None:
        others = ", ".join(a for i, a in enumerate(cluster.addresses) if i != cluster.index)
        message = (
            f"nextword train: error: worker {cluster.index} could not form the cluster within {timeout:g} s "
            f"although every address answered ({others}): another service may be listening at one of them, "
            "or the workers' TF_CONFIG differ (every worker needs the same cluster list, in the same order, "
            "and its own index); check TF_CONFIG on every worker (peer_timeout, --peer-timeout: the wait)\n"
        )
        self._child = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout), message],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )

    def cancel(self) -> None:
        self._child.kill()
        self._child.wait()


def _give_sigterm_back() -> None:
    """Put Python's SIGTERM handler back at the C level: creating ``MultiWorkerMirroredStrategy``
    installs TensorFlow's own there (``signal.getsignal`` still names Python's, which then never runs),
    so SIGTERM was ignored and ``timeout`` or a scheduler could not stop a worker."""
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def worker_scratch(workers: Workers, out: str) -> Iterator[Path]:
    """The temporary folder (``$TMPDIR``) where a non-chief worker keeps its copy of the encoded corpus,
    this user's alone: emptied at the start (a killed session's leftovers), removed at the end. Named by
    the run folder and the worker's index, so a restarted worker finds and clears its predecessor's."""
    digest = hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"nextword-worker{workers.index}-{digest}"
    shutil.rmtree(root, ignore_errors=True)
    try:
        root.mkdir(mode=0o700)  # the corpus's ids: on a shared /tmp, no other user's to read
    except FileExistsError:  # another user's, or a link: what rmtree leaves
        why = "there already, and not a folder this run can clear: remove it or set TMPDIR"
        raise FileExistsError(errno.EEXIST, why, str(root)) from None
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def lost_workers(workers: Workers) -> Iterator[None]:
    """Turn TensorFlow's errors about an unreachable peer into :class:`WorkerLostError`."""
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
    try:
        yield
    except lost as exc:
        raise WorkerLostError(
            f"worker {workers.index} lost contact with the other workers ({_reason(exc)}); restart every "
            "worker with the same command: training continues from the last checkpoint (or starts again, "
            "before the first)"
        ) from None


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

    reduce = workers.reducers.get(chief_only)
    if reduce is None:  # one traced function per kind, for every shape (reduce_retracing)
        strategy, per_worker = workers.strategy, workers.replicas // workers.count

        def contribute(mine: tf.Tensor) -> tf.Tensor:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            keep = replica == 0 if chief_only else replica % per_worker == 0
            return tf.where(keep, mine, tf.zeros_like(mine))

        def summed(mine: tf.Tensor) -> tf.Tensor:
            per_replica = strategy.run(contribute, args=(mine,))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        reduce = workers.reducers[chief_only] = tf.function(summed, reduce_retracing=True)
    return np.asarray(reduce(tf.constant(value)))


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
