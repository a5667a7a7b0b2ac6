"""`tuned`'s choices kept on disk, so its search (a minute on tpch-streaming) runs once per
scenario rather than once per command.

A choice is keyed by everything the search reads, as it reads it (`Tuned` digests the
training workloads as drawn, each seed's execution-noise state, the cluster, oracle, budget
and scalability model, and its own options) and by the code that searches (every source and
data file of `sim` and `agents`; the Python, NumPy and SimPy versions; the machine; the
plugins named in LSCHED_PLUGINS). Any change is a different key, so a cached choice is the one
a search would find now, and results stay byte-identical with or without the cache.
Unreadable entries are searched again; a folder that cannot be written only costs the next
command its search.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from agents.registry import ENTRY_POINT_GROUP, PLUGINS_VARIABLE, plugin_file

CACHE_ENV = "LSCHED_CACHE_DIR"
"""Where choices are kept; empty or `off` keeps none. Default: $XDG_CACHE_HOME/lsched, else
~/.cache/lsched."""

CODE_PACKAGES = ("sim", "agents")
"""What simulates and schedules: the workloads are in the key as drawn, so the code that
draws them (lsched's) need not be."""
CODE_SUFFIXES = (".py", ".json", ".csv")


def _plugins() -> tuple[str, ...]:
    """The plugins a process loads, by their code: the bytes of each file LSCHED_PLUGINS
    names (or its module's file) and each `lsched.agents` entry point's distribution and
    version; an edited plugin is other code."""
    import importlib.metadata

    parts = []
    for item in (p.strip() for p in os.environ.get(PLUGINS_VARIABLE, "").split(",")):
        if not item:
            continue
        path = plugin_file(item)
        try:
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path else ""
        except OSError:
            content = ""
        parts.append(f"{item}:{content}")
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist
        parts.append(f"{point.name}={point.value}@{dist.name if dist else ''}")
        parts.append(dist.version if dist else "")
    return tuple(parts)


def cache_folder() -> Path | None:
    """The folder `tuned`'s choices go to (None: caching is off, or no home to put it in)."""
    value = os.environ.get(CACHE_ENV)
    try:
        if value is not None:
            return None if value.strip().lower() in ("", "off") else Path(value).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except (RuntimeError, KeyError):  # no HOME and no passwd entry (a container's random uid)
        return None
    return Path(base) / "lsched"


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A digest of the code a search runs: its result changes when any of it does."""
    import numpy
    import simpy

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    versions = (
        platform.python_version(),
        platform.machine(),
        numpy.__version__,
        simpy.__version__,
        _plugins(),  # a plugin may patch what the search runs
    )
    digest.update(repr(versions).encode())
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


class DiskChoices:
    """A `ChoiceStore` (agents.context): a JSON file per choice, named by the digest of what
    the search read (`Tuned` computes it) and of the code that searched."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        name = hashlib.sha256(f"{code_fingerprint()}\0{key}".encode()).hexdigest()[:32]
        return self.folder / "tuned" / f"{name}.json"

    def load(self, key: str) -> Mapping[str, Any] | None:
        try:
            document = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def save(self, key: str, document: Mapping[str, Any]) -> None:
        from lsched.io import atomic_write_text

        with contextlib.suppress(OSError, ValueError):  # read-only or full: searched next time
            atomic_write_text(self.path(key), json.dumps(document, allow_nan=False))


def choice_store() -> DiskChoices | None:
    """The store `tuned` keeps its choices in, or None when caching is off."""
    folder = cache_folder()
    return None if folder is None else DiskChoices(folder)
