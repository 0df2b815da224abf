"""New code for the next runs: watch the files under ``jobs/`` and retire the template when
one changes, as ``uvicorn --reload`` restarts its server.

Only the template is renewed: runs in flight finish on the code they started with, the
worker itself (Prefect's code, its connections) stays up.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio

POLL_S = 1.0
WATCHED_PACKAGE = "jobs"

Snapshot = frozenset[tuple[str, int, int]]


def package_dir(name: str = WATCHED_PACKAGE) -> Path | None:
    """The folder of a package, found without importing it (the worker never imports jobs)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _files(root: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith((".", "__")):
                yield from _files(Path(entry.path))
            elif entry.is_file() and entry.name.endswith(".py"):
                yield entry


def snapshot(root: Path) -> Snapshot:
    """(path, mtime, size) of every Python file below ``root``."""
    found = set()
    for entry in _files(root):
        try:
            stat = entry.stat()
        except OSError:
            continue  # removed meanwhile: the next snapshot says so
        found.add((entry.path, stat.st_mtime_ns, stat.st_size))
    return frozenset(found)


async def watch(
    root: Path,
    renew: Callable[[], None],
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    poll_s: float = POLL_S,
) -> None:
    """Call ``renew`` (in a thread) whenever a Python file below ``root`` changes."""
    seen = await anyio.to_thread.run_sync(snapshot, root)
    while True:
        await anyio.sleep(poll_s)
        current = await anyio.to_thread.run_sync(snapshot, root)
        if current == seen:
            continue
        changed = sorted({path for path, *_ in current ^ seen})
        seen = current
        shown = ", ".join(os.path.relpath(path, root) for path in changed[:5])
        logger.info("code under %s changed (%s): building a new warm template", root, shown)
        await anyio.to_thread.run_sync(renew)
