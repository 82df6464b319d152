"""The cluster of a multi-worker run, as ``TF_CONFIG`` describes it, and the checks made before
TensorFlow is asked to form it (see :mod:`nextword.train.distribute`): :func:`parse_tf_config` (pure
Python: a bad ``TF_CONFIG`` fails before TensorFlow loads) and :func:`wait_for_peers`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import time
from dataclasses import dataclass

__all__ = [
    "TF_CONFIG_EXAMPLE",
    "Cluster",
    "DistributeError",
    "PeerUnreachableError",
    "parse_tf_config",
    "task_name",
    "wait_for_peers",
]

logger = logging.getLogger(__name__)

TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}'
)


class DistributeError(ValueError):
    """A distributed setting that cannot work: a bad ``TF_CONFIG``, workers that disagree."""


class PeerUnreachableError(DistributeError):
    """A worker of ``TF_CONFIG`` did not answer within the start-up timeout."""


@dataclass(frozen=True)
class Cluster:
    """The workers of a ``TF_CONFIG``, chief first, and the index of this process among them."""

    addresses: tuple[str, ...]
    index: int
    chiefs: int = 0  # 1 where TF_CONFIG lists a chief task (then first), else 0: worker 0 is the chief

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def name(self, index: int | None = None) -> str:
        """How messages name worker ``index`` (this one by default): as TF_CONFIG lists it."""
        return task_name(self.index if index is None else index, self.chiefs)


def task_name(index: int, chiefs: int = 0) -> str:
    """The task at ``index`` of a cluster (chief first) as TF_CONFIG names it: ``the chief`` where it
    lists a chief task (``chiefs`` 1), else ``worker N``, N its place in ``cluster.worker``."""
    return "the chief" if index < chiefs else f"worker {index - chiefs}"


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
    if isinstance(index, bool) or not isinstance(index, int):
        raise DistributeError(
            f"TF_CONFIG task index {index!r} must be an integer (written without quotes), this worker's "
            f"place in cluster.{kind}"
        )
    if not 0 <= index < len(jobs[kind]):
        raise DistributeError(
            f"TF_CONFIG task index {index!r} is out of range: cluster.{kind} has {len(jobs[kind])} "
            f"entries (indices 0 to {len(jobs[kind]) - 1})"
        )
    position = index if kind == "chief" else len(jobs["chief"]) + index
    return Cluster(addresses=tuple(everyone), index=position, chiefs=len(jobs["chief"]))


def wait_for_peers(cluster: Cluster, timeout: float) -> None:
    """Return once every other worker's address accepts a TCP connection; raise
    :class:`PeerUnreachableError` after ``timeout`` seconds.

    This worker listens on its own port meanwhile (answering the others' checks, as TensorFlow's
    server will once the strategy is created) and closes it before returning. A host that does not
    resolve, one worker listed under two names, or a port that is taken raise :class:`DistributeError`
    at once.
    """
    _check_hosts(cluster)
    port = int(cluster.addresses[cluster.index].rpartition(":")[2])
    try:  # all interfaces, as TensorFlow's gRPC server binds
        listener = socket.create_server(("", port), reuse_port=False)
    except OSError as exc:
        raise DistributeError(
            f"{cluster.name()} cannot listen on port {port} of TF_CONFIG "
            f"({os.strerror(exc.errno) if exc.errno else exc}): "
            "is another process using it? Two workers given the same task index do this (each worker "
            "needs its own), and so does a worker of an earlier cluster that still runs"
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
                shown = ", ".join(f"{cluster.name(i)} at {a}" for i, a in pending.items())
                raise PeerUnreachableError(
                    f"{shown} did not answer within {timeout:g} s: start the same training on every "
                    "worker of TF_CONFIG, or check the addresses (`peer_timeout`: the wait)"
                )
            for _ in selector.select(timeout=0.2 if pending else 0):  # answer the others' checks
                with contextlib.suppress(OSError):
                    listener.accept()[0].close()
    logger.info("all %d workers answered", len(cluster.addresses))


def _check_hosts(cluster: Cluster) -> None:
    """Raise :class:`DistributeError` for an address whose host does not resolve (TensorFlow would wait
    for it), or for two addresses that reach the same place (``localhost:P`` and ``127.0.0.1:P``). A
    name server that does not answer now is left to the wait."""
    reached: dict[tuple[str, int], str] = {}
    for i, address in enumerate(cluster.addresses):
        host, _, port = address.rpartition(":")
        try:
            found = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno == getattr(socket, "EAI_AGAIN", None):
                continue
            raise DistributeError(
                f"{cluster.name(i)} at {address}: its host {host} does not resolve ({exc.strerror}); correct "
                "the address in TF_CONFIG on every worker"
            ) from None
        for place in {(str(info[4][0]), int(info[4][1])) for info in found}:
            if place in reached and reached[place] != address:
                raise DistributeError(
                    f"TF_CONFIG lists one worker twice: {reached[place]} and {address} both reach "
                    f"{place[0]}:{place[1]}; give each worker its own address"
                )
            reached[place] = address
