"""`tuned`'s choices kept on disk, so its search (a minute on tpch-streaming) runs once per
scenario rather than once per command.

A choice is keyed by everything the search reads: the scenario as loaded (its document with
overrides, the contents of its template files and trace), the code that simulates and
schedules (every source and data file of `sim`, `agents` and `lsched`, and the versions of
Python, NumPy and SimPy), and `tuned`'s own options and cluster. Any change is a different
key, so a cached choice is the one a search would find now, and results stay byte-identical
with or without the cache. Unreadable entries are searched again; a folder that cannot be
written only costs the next command its search.
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

CACHE_ENV = "LSCHED_CACHE_DIR"
"""Where choices are kept; empty or `off` keeps none. Default: $XDG_CACHE_HOME/lsched, else
~/.cache/lsched."""

CODE_PACKAGES = ("sim", "agents", "lsched")
CODE_SUFFIXES = (".py", ".json", ".csv")


def cache_folder() -> Path | None:
    """The folder `tuned`'s choices go to (None: caching is off)."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off") else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lsched"


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A digest of the code a search runs: its result changes when any of it does."""
    import numpy
    import simpy

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    versions = (platform.python_version(), numpy.__version__, simpy.__version__)
    digest.update(repr(versions).encode())
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


class DiskChoices:
    """A `ChoiceStore` (agents.context) bound to one scenario: a JSON file per choice."""

    def __init__(self, folder: Path, scenario_key: str) -> None:
        self.folder = folder
        self.scenario_key = scenario_key

    def path(self, key: str) -> Path:
        name = hashlib.sha256(f"{self.scenario_key}\0{key}".encode()).hexdigest()[:32]
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


def scenario_store(scenario: Any) -> DiskChoices | None:
    """The store for `scenario` (a lsched Scenario), or None when caching is off."""
    folder = cache_folder()
    if folder is None:
        return None
    workload = scenario.workload
    files = []
    for path in workload.template_files:
        try:
            files.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
        except OSError:
            return None  # loaded a moment ago; gone now: nothing to key on
    trace = workload.trace.sha256 if workload.trace is not None else None
    document = {k: v for k, v in scenario.document.items() if k != "agents"}  # not read
    key = json.dumps([document, files, trace, code_fingerprint()], default=str)
    return DiskChoices(folder, hashlib.sha256(key.encode()).hexdigest())
