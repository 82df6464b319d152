import re

__version__ = "0.3.0.dev0"


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"1.24.1"`` (or ``"1.25.0.dev2026..."``) as ``(1, 24, 1)``; missing or unreadable parts are 0."""
    numbers = [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3]]
    return (*numbers, 0, 0, 0)[:3]  # type: ignore[return-value]
