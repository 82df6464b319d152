"""What this process's control groups allow it (a container's limits, ``docker run --memory 1g
--cpus 1``): the memory left under their limits and the CPUs' worth of time their quota gives. The
machine's own figures (free memory, its cores, the process's CPU affinity) do not show either. Linux's
cgroup v2 (``memory.max``, ``cpu.max``) and v1 (``memory.limit_in_bytes``, ``cpu.cfs_quota_us``); None
elsewhere, or where no limit is set. Each group from the process's own up to the root counts: the
tightest limit wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

__all__ = ["cpu_quota", "memory_room"]

PROC = "/proc/self/cgroup"
MOUNT = "/sys/fs/cgroup"
_V1_NO_LIMIT = 1 << 60  # v1 writes "no memory limit" as a number near 2**63


def memory_room(proc: str = PROC, mount: str = MOUNT) -> int | None:
    """Bytes the memory limits of this process's groups still leave (each limit less its group's
    usage, not counting the file cache, active or not, which the kernel drops before it kills anything
    for the limit: a corpus read twice moves to the active list; the least of them), or None without a
    limit."""
    rooms = []
    for folder, v2 in _groups("memory", proc, mount):
        names = ("memory.max", "memory.current") if v2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        limit, usage = (_number(_read(folder, name)) for name in names)
        if limit is not None and limit < _V1_NO_LIMIT and usage is not None:
            cache = sum(
                _stat(folder, ("" if v2 else "total_") + key) for key in ("inactive_file", "active_file")
            )
            rooms.append(max(limit - max(usage - cache, 0), 0))
    return min(rooms) if rooms else None


def _stat(folder: str, key: str) -> int:
    """``key``'s bytes in the group's ``memory.stat`` (0 where it is not there)."""
    for line in (_read(folder, "memory.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return _number(value.strip()) or 0
    return 0


def cpu_quota(proc: str = PROC, mount: str = MOUNT) -> float | None:
    """The CPUs' worth of time the quotas of this process's groups allow (``cpu.max`` ``50000 100000``
    is 0.5; the least of them), or None without a quota."""
    quotas = []
    for folder, v2 in _groups("cpu", proc, mount):
        if v2:
            parts = (_read(folder, "cpu.max") or "").split()
            quota, period = (_number(parts[0]), _number(parts[1])) if len(parts) == 2 else (None, None)
        else:
            quota = _number(_read(folder, "cpu.cfs_quota_us"))
            period = _number(_read(folder, "cpu.cfs_period_us"))
        if quota is not None and quota > 0 and period:  # v2 "max", v1 -1: no quota
            quotas.append(quota / period)
    return min(quotas) if quotas else None


def _groups(controller: str, proc: str, mount: str) -> Iterator[tuple[str, bool]]:
    """The folders of this process's groups for ``controller``, its own first and then each one above it
    up to the hierarchy's root, each with whether it is cgroup v2's (``/proc/self/cgroup``'s ``0::``
    line) or v1's (a ``N:cpu,cpuacct:`` line, mounted at ``mount/controller``). In a container that sees
    only its own groups, the path read may not exist below the mount: the root is then the group."""
    try:
        with open(proc, encoding="utf-8") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:  # not Linux
        return
    for parts in lines:
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            root, v2 = mount, True
        elif controller in parts[1].split(","):
            root, v2 = os.path.join(mount, controller), False
        else:
            continue
        folder = os.path.normpath(os.path.join(root, parts[2].lstrip("/")))
        while folder.startswith(root):
            yield folder, v2
            if folder == root:
                break
            folder = os.path.dirname(folder)


def _read(folder: str, name: str) -> str | None:
    try:
        with open(os.path.join(folder, name), encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def _number(text: str | None) -> int | None:
    """The integer ``text`` holds, or None (no file, or ``max``: no limit)."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
