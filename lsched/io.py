"""Atomic file output and the small CSV/JSON helpers results are written with.

Every file is written to a temporary sibling and moved into place with `os.replace`, so a
reader (or an interrupted run) never sees a half-written file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lsched.errors import LschedError


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder, then os.replace).

    The temp file is opened like any new file, so the result gets the usual umask permissions.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
        os.replace(temp, target)
    except OSError as error:
        temp.unlink(missing_ok=True)
        if error.filename in (None, str(temp)):  # a full disk names nothing; else our temp
            raise OSError(error.errno, f"{target}: {error.strerror}") from None
        raise
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_text(document: Any) -> str:
    """Stable JSON: sorted nowhere (insertion order is meaningful), 2-space indent, newline."""
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, document: Any) -> Path:
    return atomic_write_text(path, json_text(document))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a header row; floats are written with repr precision so they round-trip."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    return atomic_write_text(path, csv_text(header, rows))


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts keyed by the header."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- results folder
RESULTS_FILE = "results.json"
SCENARIO_FILE = "scenario.yaml"
"""The scenario document a run used, beside results.json (folders before it lack it)."""
FIDELITY_FILE = "fidelity.json"
"""What `lsched real` adds to a results folder: the prediction beside the measurement."""
SWEEP_TABLE_FILE = "sweep.json"
"""A sweep folder's table (lsched.sweep), what tells a sweep's folder from a run's."""
METRICS_FILE = "metrics.jsonl"
"""A training folder's log, one record per iteration (lsched.learn)."""
LEARNING_CURVE_FILE = "learning-curve.png"
"""What `lsched plot` draws from a training folder's METRICS_FILE, beside it."""
QUERY_COLUMNS = (
    "query_id",
    "template",
    "class",
    "scale_factor",
    "arrival_s",
    "start_s",
    "finish_s",
    "latency_s",
    "isolated_s",
    "slowdown",
    "origin",
)
"""`origin`: a replayed query's row and fingerprint in its log (empty for a generated one)."""
TASK_COLUMNS = ("query_id", "pipeline", "task", "node", "thread", "start_s", "end_s")
DAG_COLUMNS = (
    "query_id",
    "pipeline",
    "parents",
    "tasks",
    "operator",
    "work_s",
    "est_work_s",
    "memory_gb",
)


RUN_OUTPUTS = (
    RESULTS_FILE,
    SCENARIO_FILE,
    "queries-*.csv",
    "tasks-*.csv",
    "dag-seed*.csv",
    FIDELITY_FILE,
    "*.png",
    "report.html",
)
"""What `lsched run --out` (and `lsched plot` / `lsched report` on its folder) write: a rerun
into the same folder removes every file of these first, so nothing of the old run is left
beside a results.json that does not list it."""


def out_folder(text: str | None, option: str = "--out") -> Path | None:
    """An output folder named on the command line; an empty name (which would mean the current
    folder) and a file are refused."""
    if text is None:
        return None
    if not text.strip():
        raise LschedError(f"{option}: an empty path; name a folder (e.g. {option} runs/mine)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise LschedError(f"{path}: {option} must be a folder, and this is a file")
    return path


def check_results_folder(folder: Path) -> None:
    """Refuse, before anything runs, a folder that holds files but no earlier run's results
    (`--out` writes into a new folder, an empty one, or one an earlier `lsched run` wrote), and
    one that cannot be made or written — found before minutes of work, not after."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise LschedError(f"{folder}: --out cannot be made: {existing} is a file, not a folder")
    try:  # a probe, not os.access: root passes that test where /proc refuses anyway
        os.rmdir(tempfile.mkdtemp(prefix=".lsched-probe-", dir=existing))
    except OSError as error:
        raise LschedError(f"{folder}: --out cannot be written ({error.strerror})") from None
    if not folder.is_dir() or (folder / RESULTS_FILE).is_file():
        return
    foreign = sorted(p.name for p in folder.iterdir() if not p.name.startswith(STAGING_PREFIX))
    if foreign:
        raise LschedError(
            f"{folder}: --out is not empty and holds no {RESULTS_FILE} (e.g. {foreign[0]!r}); "
            "name a new or empty folder, or one an earlier `lsched run` wrote"
        )


def clear_run_outputs(folder: Path, keep: Iterable[str] = ()) -> list[Path]:
    """Remove what an earlier run left in `folder` (RUN_OUTPUTS; nothing else, and not the
    names in `keep`): results.json first, so an interrupted clean-up never leaves a
    results.json beside missing files."""
    kept = set(keep)
    removed = []
    for pattern in RUN_OUTPUTS:
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and path.name not in kept:
                path.unlink()
                removed.append(path)
    return removed


STAGING_PREFIX = ".staging-"


@contextmanager
def staged_outputs(folder: Path) -> Iterator[Path]:
    """A fresh folder inside `folder` (so on its file system: a mount point or a symlink to
    another disk cannot make the moves fail) to write a run's outputs into. When the block
    ends without error they replace the earlier run's (RUN_OUTPUTS): its results.json is
    removed first, then what the new run does not write, then the new files move in,
    results.json last — a folder with a results.json is always whole. A failed write, a full
    disk or Ctrl-C leaves `folder` as it was and nothing staged behind."""
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    stage = folder / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    stage.mkdir()
    try:
        try:
            yield stage
        except OSError as error:  # name where the user asked for it, not the staging folder
            problem = str(error).replace(str(stage), str(folder))
            raise LschedError(f"{problem} (nothing written: {folder} is as it was)") from None
        staged = sorted(stage.iterdir(), key=lambda p: (p.name == RESULTS_FILE, p.name))
        (folder / RESULTS_FILE).unlink(missing_ok=True)
        names = {p.name for p in staged}
        clear_run_outputs(folder, keep=names)
        for path in staged:
            os.replace(path, folder / path.name)
        for leftover in folder.glob(f"{STAGING_PREFIX}*"):  # a killed run's, not a live one's
            if leftover != stage and leftover.is_dir() and not _alive(leftover.name):
                shutil.rmtree(leftover, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made and not any(folder.iterdir()):
            folder.rmdir()


MAX_SLUG_CHARS = 80
"""An agent's part of a file name, at most: a label with long options (a policy's path, class
weights) would exceed the file system's 255 bytes; the rest is replaced by a digest."""


def _alive(stage_name: str) -> bool:
    """Whether the process that made a staging folder (its pid is in the name) still runs:
    a concurrent run into the same folder is still writing there."""
    pid = stage_name.removeprefix(STAGING_PREFIX).partition("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def agent_slug(label: str, *, capped: bool = True) -> str:
    """An agent label as a file-name part: `lsched:runs/m.pt` → `lsched_runs_m.pt`."""
    slug = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", label)
    if len(slug) <= MAX_SLUG_CHARS or not capped:
        return slug
    digest = hashlib.sha256(label.encode("utf-8")).hexdigest()[:12]
    return f"{slug[: MAX_SLUG_CHARS - 13]}-{digest}"


def queries_file(folder: str | Path, agent: str, seed: int) -> Path:
    return Path(folder) / f"queries-{agent_slug(agent)}-seed{seed}.csv"


def tasks_file(folder: str | Path, agent: str, seed: int) -> Path:
    return Path(folder) / f"tasks-{agent_slug(agent)}-seed{seed}.csv"


def dag_file(folder: str | Path, seed: int) -> Path:
    return Path(folder) / f"dag-seed{seed}.csv"


def gantt_file(folder: str | Path, agent: str) -> Path:
    return Path(folder) / f"gantt-{agent_slug(agent)}.png"
