"""`lsched real`: a scenario's workload on real DuckDB, steered by the same query-level agents.

DuckDB cannot be steered pipeline by pipeline from outside, but it can be steered as fleets steer
their warehouses: which waiting query starts next, and with how many threads. Each started query
runs in a worker process of its own, one whose connection was opened at k threads (a worker
never changes its count: `worker_threads`), so the threads granted never exceed the cluster's
budget, and the agent decides on what it would see in the simulator: plans, the optimizer's
estimates (measured from DuckDB's EXPLAIN, in the templates), arrival times and the query log;
never a true runtime.

- Data: generated at each scale factor with DuckDB's own generators into `data_dir()`
  (`$LSCHED_DATA`, default `~/.cache/lsched/duckdb`), written to a temporary file and renamed,
  so a killed generation never leaves a database that looks whole.
- Time: each query is submitted at its arrival on the real clock, times `time_scale`; `auto`
  takes the engine's measured speed factor (the isolated pass before the first run), so an
  engine slower than the calibration's sees the load the scenario was written for.
- Faults: a query that fails or runs past `timeout_s` is recorded with its error; the run goes on.
- Results: `lsched run`'s files (results.json, queries-AGENT-seedK.csv), written atomically
  after the last run, so Ctrl-C leaves nothing half-written.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.context import AgentOptionError
from agents.query_level import QUERY_FORMS
from lsched.errors import LschedError
from lsched.io import FIDELITY_FILE
from lsched.scenario import AgentChoice, Scenario
from lsched.workloads import calibrate
from sim.interface import CompletedQuery, PipelineView, QueryView, query_view
from sim.model import QuerySpec
from sim.query_level import QueryLevel, admit

DATA_ENV = "LSCHED_DATA"
AUTO_TIME_SCALE = "auto"
"""`time_scale` that stretches arrivals by the engine's speed factor, measured before the runs."""
DEFAULT_TIMEOUT_S = 60.0
"""Per-query timeout on the engine: far above any bundled query (TPC-H SF 1: 0.2 s at most)."""
READY_TIMEOUT_S = 120.0
"""How long a worker process may take to start and open the database."""
POLL_S = 0.005
"""How long the coordinator waits for a finished query before looking at arrivals again."""
STORAGES = ("memory", "file")
DEFAULT_STORAGE = "memory"
"""Where each worker's tables live. `memory`: copied from the database file into the worker's
in-memory database at start (about 4 s for TPC-H SF 1), the storage `lsched calibrate` times
the templates on (it generates the data into an in-memory connection). `file`: the read-only
file itself, for data too large to hold once per worker — measured 2026-12-04 on TPC-H SF 1
at 1 thread, the file runs the scan-heavy queries in 0.55-0.58x their in-memory time (Q1,
Q12, Q19: compressed columns and zone maps), Q13 in 1.20x, 0.84x summed; the in-memory copy
in 0.86-1.05x (median 0.98) of the generated tables' time. Per-template differences a single
speed factor cannot absorb."""

MEMORY_COPY_RATIO = 6.8
"""Resident memory of a worker's in-memory copy per byte of the database file: TPC-H SF 1's
265 MB file became 1.79 GB resident in one worker (DuckDB 1.5.5, this 2-core machine,
2026-12-07). With `memory` storage every worker holds a copy (`worker_threads`: 3 workers on 2
threads, 8 on 4), so the copies, not the queries, are what can exhaust a machine."""
MEMORY_SHARE = 0.8
"""The share of the memory available at start that the workers' copies may take; the rest is
left to the queries' own hash tables and to the coordinator."""


class RealEngineError(LschedError):
    """`lsched real` cannot run as asked (no query-level form, a suite without SQL, ...)."""


def data_dir() -> Path:
    """Where generated databases are cached."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "lsched" / "duckdb"


def database_path(suite: str, scale_factor: float) -> Path:
    return data_dir() / f"{suite}-sf{scale_factor:g}.duckdb"


def ensure_database(
    suite: str, scale_factor: float, progress: Callable[[str], None] | None = None
) -> Path:
    """The suite's database at `scale_factor`, generated once (temporary file, then rename)."""
    path = database_path(suite, scale_factor)
    if path.is_file():
        return path
    duckdb = calibrate._duckdb()
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):
        stale.unlink(missing_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if progress:
        progress(f"generating {suite} at scale factor {scale_factor:g} into {path}")
    try:
        con = duckdb.connect(str(temp))
        try:
            calibrate._prepare(con, suite, scale_factor)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(temp, path)
    finally:
        for leftover in path.parent.glob(f"{temp.name}*"):
            leftover.unlink(missing_ok=True)
    return path


def template_sql(suite: str, path: Path) -> dict[str, str]:
    """Template name → its SQL with the default parameters."""
    duckdb = calibrate._duckdb()
    if suite == "ssb":
        return {f"ssb-q{n}": sql for n, sql in calibrate.SSB_QUERIES.items()}
    con = duckdb.connect(str(path), read_only=True)
    try:
        calibrate._load_extension(con, suite)
        function = "tpch_queries" if suite == "tpch" else "tpcds_queries"
        rows = con.execute(f"SELECT query_nr, query FROM {function}()").fetchall()
    finally:
        con.close()
    return {f"{suite}-q{n}": sql for n, sql in rows}


# --------------------------------------------------------------------------- workers
def worker_threads(total_threads: int) -> tuple[int, ...]:
    """Each worker process's fixed thread count: `total // k` workers at k threads for every
    k up to the budget (1 + 1 + 2 on 2 threads), so any set of grants within the budget finds
    an idle worker already at its count and no worker ever changes its count.

    Why: `SET threads` to a new value restarts DuckDB's thread pool, and the next queries run
    slow while the new threads warm up — measured 2026-12-07 on TPC-H SF 1 (2 threads, in
    memory): Q2 right after `SET threads = 1; SET threads = 2` took 15.3 ms (min of 10)
    against 9.9 ms with no change, and 8.9 ms after `SET threads` to the value it already had;
    Q2-Q7 ran 1.1-1.3x slow right after a switch, the queries after ~0.3 s of work 1.0x
    (`lsched.workloads.calibrate.THREAD_SWITCH_WARMUP_S`). A database runs its concurrent
    queries on one warm pool; a runner whose workers switched counts charged agents that
    mix one- and two-thread grants a cost no engine has."""
    return tuple(k for k in range(1, total_threads + 1) for _ in range(total_threads // k))


def _check_real_scale(scenario: Scenario) -> None:
    """Refuse a scenario the engine cannot run as the simulator models it: the real engine is
    one DuckDB process running each query at its scale factor, so a cluster of several nodes
    or simulated work scaled by `work_multiplier` would be compared with another engine."""
    bundled = "the bundled duckdb-* scenarios are at the engine's scale"
    if scenario.cluster.nodes != 1:
        raise RealEngineError(
            f"{scenario.source}: cluster.nodes: {scenario.cluster.nodes}; the real engine is "
            f"one DuckDB process (1 node, as `cluster: {{engine: duckdb}}` sets); {bundled}"
        )
    for index, stream in enumerate(scenario.workload.streams):
        if stream.work_multiplier != 1:
            raise RealEngineError(
                f"{scenario.source}: workload.streams[{index}].work_multiplier: "
                f"{stream.work_multiplier:g}; the real engine runs each query at its scale "
                f"factor, so the prediction would be of {stream.work_multiplier:g}x the work it "
                f"runs: set 1; {bundled}"
            )


def check_memory(paths: Sequence[Path], workers: int, available: int | None = None) -> None:
    """Refuse `memory` storage whose copies (`workers` per database file, MEMORY_COPY_RATIO
    times its size) would take more than MEMORY_SHARE of the memory available (default: the
    machine's now), before a worker starts, rather than let the machine run out mid-run."""
    available = available_memory_bytes() if available is None else available
    if available is None:
        return  # the platform does not say: nothing to check against
    need = sum(MEMORY_COPY_RATIO * path.stat().st_size for path in paths) * workers
    if need > MEMORY_SHARE * available:
        raise RealEngineError(
            f"storage: memory: {workers} workers' in-memory copies of "
            f"{', '.join(p.name for p in paths)} need about {need / 1e9:.1f} GB, more than "
            f"{MEMORY_SHARE:.0%} of the {available / 1e9:.1f} GB available; use --storage file"
        )


def available_memory_bytes() -> int | None:
    """Memory this process can be given now: the machine's (Linux MemAvailable, else free
    pages) or, inside a container or a CI job, its cgroup's room if that is less — where the
    out-of-memory killer acts. None if the platform says neither."""
    known = [room for room in (_machine_room(), _cgroup_room()) if room is not None]
    return min(known) if known else None


def _machine_room() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_FILES = {
    "v2": ("memory.max", "memory.current"),
    "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes"),
}
"""(limit, usage) files of the memory controller, cgroup v2 and v1."""


def _cgroup_room(root: Path = CGROUP_ROOT, membership: str | None = None) -> int | None:
    """The least room (limit − usage) in this process's memory cgroup and those above it;
    None without a limit. `membership`: /proc/self/cgroup's text (read when None)."""
    try:
        text = membership if membership is not None else Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    rooms = []
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue  # not "id:controllers:path"
        _, controllers, path = fields
        if controllers == "":
            version, base = "v2", root
        elif "memory" in controllers.split(","):
            version, base = "v1", root / "memory"
        else:
            continue
        limit_name, usage_name = CGROUP_FILES[version]
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            folder = base.joinpath(*parts[:depth])
            try:
                limit = (folder / limit_name).read_text().strip()
                usage = int((folder / usage_name).read_text())
            except (OSError, ValueError):
                continue
            if limit.isdigit() and int(limit) < 2**62:  # "max" or v1's near-2^63: no limit
                rooms.append(max(int(limit) - usage, 0))
    return min(rooms) if rooms else None


def _serve(
    path: str, requests: Any, results: Any, storage: str = DEFAULT_STORAGE, threads: int = 1
) -> None:
    """A worker process: one connection opened at `threads` and never changed (see
    `worker_threads`; `storage`: the read-only file, or an in-memory copy of its tables), one
    query at a time."""
    import duckdb

    # Ctrl-C in a terminal reaches the whole process group: the coordinator stops the pool,
    # and a worker interrupted mid-query printed its own traceback over the one-line message
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = {"threads": int(threads)}
    if storage == "file":
        con = duckdb.connect(path, read_only=True, config=config)
    else:
        con = duckdb.connect(config=config)
        quoted = path.replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS source (READ_ONLY)")
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'source'"
        ).fetchall()
        for schema, table in tables:
            con.execute(f'CREATE TABLE main."{table}" AS SELECT * FROM source."{schema}"."{table}"')
        con.execute("DETACH source")
    results.put(None)  # ready: the pool's clock may start
    while True:
        request = requests.get()
        if request is None:
            break
        query_id, sql, timeout_s = request
        timer = threading.Timer(timeout_s, con.interrupt)
        started = time.monotonic()
        cpu_started = time.process_time()  # every thread of this process: DuckDB's CPU time
        error = ""
        timer.start()
        try:
            con.execute(sql).fetchall()
        except duckdb.Error as exc:
            error = " ".join(str(exc).split())[:200]
            if time.monotonic() - started >= timeout_s:
                error = f"timed out after {timeout_s:g} s"
        finally:
            timer.cancel()
        cpu_s = time.process_time() - cpu_started
        results.put((query_id, started, time.monotonic(), error, cpu_s))
    con.close()


class _Pool:
    """Worker processes for one database, each at a fixed thread count (`worker_threads`):
    every set of started queries whose threads fit `threads` has an idle worker apiece."""

    def __init__(self, path: Path, threads: int, storage: str = DEFAULT_STORAGE) -> None:
        context = multiprocessing.get_context("spawn")
        self.budget = threads
        """The engine's threads: what the started queries' grants may add up to."""
        self.threads = worker_threads(threads)
        """Worker slot -> its fixed thread count."""
        self.results = context.Queue()
        self.requests = [context.Queue() for _ in self.threads]
        self.processes = [
            context.Process(
                target=_serve, args=(str(path), r, self.results, storage, k), daemon=True
            )
            for r, k in zip(self.requests, self.threads, strict=True)
        ]
        for process in self.processes:
            process.start()
        for _ in self.processes:  # starting and opening the file ~0.4 s; a memory copy ~4 s more
            self.results.get(timeout=READY_TIMEOUT_S)
        self.idle: dict[int, list[int]] = {}
        for slot, k in reversed(list(enumerate(self.threads))):
            self.idle.setdefault(k, []).append(slot)
        self.busy: dict[int, int] = {}

    def submit(self, query_id: int, sql: str, threads: int, timeout_s: float) -> int:
        """Hand the query to an idle worker at `threads`; returns the worker's slot. Grants
        past the budget are refused: the coordinator's own accounting keeps within it."""
        in_use = sum(self.threads[worker] for worker in self.busy.values())
        if threads not in self.idle or in_use + threads > self.budget:
            raise RealEngineError(
                f"a {threads}-thread start with {in_use} threads in use exceeds the "
                f"{self.budget}-thread budget"
            )
        return self._hand(self.idle[threads].pop(), query_id, sql, timeout_s)

    def _hand(self, worker: int, query_id: int, sql: str, timeout_s: float) -> int:
        self.busy[query_id] = worker
        self.requests[worker].put((query_id, sql, timeout_s))
        return worker

    def on_every_worker(self, sql: str) -> None:
        """Run `sql` once on every worker (all of them idle), at its own thread count."""
        for worker in [w for slots in self.idle.values() for w in slots]:
            self.idle[self.threads[worker]].remove(worker)
            self._hand(worker, -1 - worker, sql, DEFAULT_TIMEOUT_S)
        while self.busy:
            self.poll(1.0)

    def poll(self, wait_s: float) -> tuple[int, float, float, str, float] | None:
        """(query id, start, end, error, CPU seconds) of a finished query, if one finishes
        within `wait_s`."""
        try:
            done = self.results.get(timeout=max(wait_s, 0.0))
        except queue.Empty:
            return None
        worker = self.busy.pop(done[0])
        self.idle[self.threads[worker]].append(worker)
        return done

    def close(self, abort: bool = False) -> None:
        """Stop the workers: each after its query, or (`abort`, on Ctrl-C) at once."""
        for request in self.requests:
            request.put(None)
        for process in self.processes:
            process.join(timeout=0 if abort else 5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


# --------------------------------------------------------------------------- one run
@dataclass(frozen=True, slots=True)
class RealQuery:
    """One query of a real run, on the run's clock (seconds from its start)."""

    query_id: int
    template: str
    query_class: str
    scale_factor: float
    arrival_s: float
    start_s: float
    finish_s: float
    threads: int
    worker: int
    """The worker slot (process) it ran in: the row of a query-level Gantt chart."""
    error: str = ""
    submitted_s: float = math.nan
    """When the coordinator handed it to its worker (`start_s` − this: the dispatch delay,
    which the simulator, starting a query at its decision, does not have)."""
    noticed_s: float = math.nan
    """When the coordinator saw it finish (this − `finish_s`: the notice delay)."""
    origin: str = ""
    """Its row and fingerprint in a replayed log (QuerySpec.origin)."""

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s


class _RealObservation:
    """The parts of sim.interface.Observation a query-level policy reads, from the real run.

    The engine reports no progress from inside a query, so a started query shows its threads
    on its first ready pipeline and no tasks done until it finishes; memory in use is not
    reported either (0), and every node is up."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.oracle = False
        self.now_s = 0.0
        self.active: dict[int, QueryView] = {}
        self.completed: list[CompletedQuery] = []
        self.arrivals_so_far = 0
        self.granted: dict[int, int] = {}
        """Started query id → its threads."""

    @property
    def free_threads(self) -> int:
        return self.cluster.total_threads - sum(self.granted.values())

    @property
    def free_threads_per_node(self) -> list[int]:
        per_node, nodes = self.cluster.threads_per_node, self.cluster.nodes
        free = self.free_threads
        return [max(0, min(per_node, free - k * per_node)) for k in range(nodes)]

    @property
    def nodes_up(self) -> list[bool]:
        return [True] * self.cluster.nodes

    @property
    def memory_used_gb(self) -> list[float]:
        return [0.0] * self.cluster.nodes

    @property
    def schedulable(self) -> list[PipelineView]:
        """Ready pipelines of the queries not started yet (a started one runs on its own)."""
        return [
            p
            for q in self.active.values()
            if q.query_id not in self.granted
            for p in q.pipelines
            if p.is_ready and not p.is_finished
        ]

    def start(self, query_id: int, threads: int, at_s: float) -> None:
        """Record a start in the query's view: its threads, on its first ready pipeline."""
        self.granted[query_id] = threads
        view = self.active[query_id]
        view.started_s = at_s
        view.threads = threads
        ready = next(p for p in view.pipelines if p.is_ready and not p.is_finished)
        ready.threads = threads

    @property
    def queries(self):
        return self.active.values()

    def query(self, query_id: int) -> QueryView:
        return self.active[query_id]


def run_workload(
    queries: Sequence[QuerySpec],
    agent: QueryLevel,
    scenario: Scenario,
    sql: dict[float, dict[str, str]],
    pools: dict[float, _Pool],
    *,
    time_scale: float,
    timeout_s: float,
    on_done: Callable[[RealQuery], None] | None = None,
) -> tuple[list[RealQuery], float, int]:
    """Submit `queries` at their arrival times and start them as `agent`'s policy decides;
    (the queries, seconds the policy spent deciding, how many times it was asked: on a real
    engine the scheduler's own CPU time is not free — it runs on the engine's cores and
    delays every start it makes)."""
    cluster = scenario.cluster
    policy = agent.policy
    policy.reset(cluster)
    obs = _RealObservation(cluster)
    pending = sorted(queries, key=lambda q: (q.arrival_s, q.query_id))
    specs = {q.query_id: q for q in queries}
    granted = obs.granted
    slots: dict[int, int] = {}
    submitted: dict[int, float] = {}
    done: list[RealQuery] = []
    position = 0
    clock = time.monotonic()
    changed = False
    decide_s = 0.0
    asked = 0
    while len(done) < len(queries):
        now = time.monotonic() - clock
        obs.now_s = now
        while position < len(pending) and pending[position].arrival_s * time_scale <= now:
            spec = pending[position]
            obs.active[spec.query_id] = query_view(spec)
            obs.arrivals_so_far += 1
            position += 1
            changed = True
        if changed:
            changed = False
            waiting = [q for q in obs.active.values() if q.query_id not in granted]
            deciding = time.perf_counter()
            admission = admit(policy, obs, waiting, granted, cluster.total_threads)
            decide_s += time.perf_counter() - deciding
            asked += admission.asked
            for choice in admission.starts:
                spec = specs[choice.query_id]
                obs.start(choice.query_id, choice.threads, now)
                text = calibrate.parameter_sql(
                    spec.template, sql[spec.scale_factor][spec.template], spec.parameter_draw
                )
                pool = pools[spec.scale_factor]
                slots[spec.query_id] = pool.submit(spec.query_id, text, choice.threads, timeout_s)
                submitted[spec.query_id] = time.monotonic() - clock
            if not granted and position == len(pending) and obs.active:
                raise RealEngineError(
                    f"the agent left the engine idle with {len(obs.active)} queries waiting "
                    "and no arrivals to come"
                )
        next_arrival = (
            pending[position].arrival_s * time_scale - now if position < len(pending) else 1.0
        )
        for pool in pools.values():
            finished = pool.poll(min(POLL_S, max(next_arrival, 0.0)))
            if finished is None:
                continue
            noticed = time.monotonic() - clock
            query_id, start, end, error, cpu_s = finished
            spec = specs[query_id]
            threads = granted.pop(query_id)
            view = obs.active.pop(query_id)
            record = RealQuery(
                query_id,
                spec.template,
                spec.query_class,
                spec.scale_factor,
                spec.arrival_s * time_scale,
                start - clock,
                end - clock,
                threads,
                slots.pop(query_id),
                error,
                submitted.pop(query_id),
                noticed,
                spec.origin,
            )
            obs.completed.append(
                CompletedQuery(
                    query_id,
                    spec.template,
                    spec.query_class,
                    spec.scale_factor,
                    record.arrival_s,
                    record.finish_s,
                    view.est_work_s,
                    cpu_s if not error else math.nan,
                )
            )
            done.append(record)
            changed = True
            if on_done:
                on_done(record)
    return sorted(done, key=lambda r: r.query_id), decide_s, asked


# --------------------------------------------------------------------------- agents
QUERY_LEVEL_AGENTS = frozenset({*QUERY_FORMS, "tuned", "lsched"})
"""Registered agents with a query-level form (`lsched real` keeps these of a scenario's list)."""


def _query_choice(choice: AgentChoice) -> AgentChoice:
    """The entry of the agent's query-level form (`decisions: query` unless it says)."""
    return AgentChoice(choice.name, {"decisions": "query", **choice.options})


def real_descriptions(scenario: Scenario, choices: Sequence[AgentChoice]) -> dict[str, str]:
    """What each agent ran on the engine (`tuned`'s chosen rule), by the label it was asked by."""
    from lsched.runner import agent_descriptions

    texts = agent_descriptions(scenario, [_query_choice(c) for c in choices])
    return {
        c.label: f"{c.label}: {text.partition(': ')[2]}"
        for c in choices
        if (text := texts.get(_query_choice(c).label))
    }


def query_level_agent(scenario: Scenario, choice: AgentChoice) -> QueryLevel:
    """The agent's query-level form (an entry without `decisions` gets `decisions: query`)."""
    from lsched.runner import build_agent

    options = dict(_query_choice(choice).options)
    no_form = RealEngineError(
        f"agent {choice.label!r} decides per pipeline and has no query-level form; "
        "DuckDB is steered query by query (e.g. fifo, sjf, srpt, fair, tuned)"
    )
    try:
        agent = build_agent(scenario, AgentChoice(choice.name, options))
    except AgentOptionError as error:
        if "decisions" in str(error) or "query-level" in str(error):
            raise no_form from None
        raise
    agent.reset(scenario.cluster)  # a tuned agent tunes here
    form = getattr(agent, "query_level", None)
    if not isinstance(form, QueryLevel):
        raise no_form
    return form


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


# --------------------------------------------------------------------------- the comparison
@dataclass(frozen=True)
class RealReport:
    """Every real run, by (agent label, seed, repeat), and the agents in the order given."""

    scenario: str
    seeds: tuple[int, ...]
    agents: tuple[str, ...]
    runs: dict[tuple[str, int, int], list[RealQuery]]
    repeats: int
    time_scale: float
    isolated: dict[tuple[str, float], tuple[float, ...]]
    """(template, scale factor) → its latency alone with every thread, one sample per probe
    (`probes`), so that the speed factor sees the same engine as the runs."""
    threads: int
    """The engine's thread budget (the cluster's threads): what utilisation is taken over."""
    decide_s: dict[tuple[str, int, int], float] = field(default_factory=dict)
    """Seconds each run's policy spent deciding, by (agent label, seed, repeat)."""
    asked: dict[tuple[str, int, int], int] = field(default_factory=dict)
    """How many times each run's policy was asked (its decisions), by the same keys."""
    brackets: dict[tuple[str, int, int], tuple[int, int]] = field(default_factory=dict)
    """Per run (same keys): the indices into `probes` of the isolated pass right before it
    and right after it (the next run's before), so each run's own speed factor can be read
    off the engine as it was around that run (`fidelity_report`'s drift-matched figures)."""
    probes: tuple[dict[tuple[str, float], float], ...] = ()
    """Every isolated pass in the order taken: (template, scale factor) → seconds alone."""
    time_scale_auto: bool = False
    """Whether `time_scale` is the speed factor measured before the first run (`auto`)."""
    descriptions: dict[str, str] = field(default_factory=dict)
    """What agents that can say ran (`tuned`'s chosen rule), by label, as `lsched run` notes."""

    def decision_s(self, agent: str) -> float:
        """Seconds one decision of `agent` took: the median over its runs of time spent
        deciding over decisions made (0 for runs that made none)."""
        keys = [key for key in self.decide_s if key[0] == agent]
        return statistics.median(
            self.decide_s[key] / self.asked[key] if self.asked.get(key) else 0.0 for key in keys
        )


def run_real(
    scenario: Scenario,
    agents: Sequence[AgentChoice],
    seeds: Sequence[int],
    *,
    repeats: int = 3,
    time_scale: float | str = 1.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    storage: str = DEFAULT_STORAGE,
    progress: Callable[[str], None] | None = None,
    on_done: Callable[[RealQuery], None] | None = None,
) -> RealReport:
    """Each seed's workload on DuckDB under each agent, `repeats` times. Repeats and agents
    interleave (repeat 1 of every agent, then repeat 2, ...), so the engine's drift spreads
    over all agents instead of favouring the one that ran first. Every run is bracketed by
    isolated passes (one right before it, which is the previous run's after, and one after
    the last): the engine's speed around each run, for the drift-matched figures.

    `time_scale="auto"` (`AUTO_TIME_SCALE`) multiplies arrivals by the speed factor of the
    first pass: an engine 1.5x slower than the calibrated one would run a 60% stream at 90%
    load and a 90% stream past saturation, where a comparison measures little but the drift."""
    auto = time_scale == AUTO_TIME_SCALE
    if not auto and (isinstance(time_scale, str) or not 0 < time_scale < math.inf):
        raise RealEngineError(
            f"time_scale: expected a number > 0 or {AUTO_TIME_SCALE!r}, got {time_scale!r}"
        )
    built = [(choice.label, query_level_agent(scenario, choice)) for choice in agents]
    from lsched.runner import seed_queries

    workloads = {seed: seed_queries(scenario, seed) for seed in seeds}
    suites = {_suite_of(q.template) for qs in workloads.values() for q in qs}
    factors = sorted({q.scale_factor for qs in workloads.values() for q in qs})
    if len(suites) != 1:
        raise RealEngineError(
            f"{scenario.source}: workload: the real engine runs one suite's data at a time "
            f"(this workload mixes {', '.join(sorted(suites))})"
        )
    suite = suites.pop()
    if suite not in calibrate.SUITES:
        raise RealEngineError(
            f"{scenario.source}: workload: templates {suite}-*: no SQL to run on the engine"
        )
    _check_real_scale(scenario)
    paths = {sf: ensure_database(suite, sf, progress) for sf in factors}
    sql = {sf: template_sql(suite, path) for sf, path in paths.items()}
    runs: dict[tuple[str, int, int], list[RealQuery]] = {}
    decide_s: dict[tuple[str, int, int], float] = {}
    asked: dict[tuple[str, int, int], int] = {}
    probes: list[dict[tuple[str, float], float]] = []
    brackets: dict[tuple[str, int, int], tuple[int, int]] = {}
    threads = scenario.cluster.total_threads
    if storage not in STORAGES:
        raise RealEngineError(f"storage: expected one of {', '.join(STORAGES)}, got {storage!r}")
    if storage == "memory":
        check_memory(list(paths.values()), len(worker_threads(threads)))
    if progress:
        span_s = max(max(q.arrival_s for q in qs) for qs in workloads.values())
        progress(
            f"{len(built) * len(seeds) * repeats} real run(s), each at least its arrivals' "
            f"{span_s:.0f} s (times the time scale), between isolated passes of every template"
        )
    pools = {sf: _Pool(path, threads, storage) for sf, path in paths.items()}
    finished = False
    try:
        used = {
            sf: sorted(
                {q.template for qs in workloads.values() for q in qs if q.scale_factor == sf}
            )
            for sf in pools
        }
        for sf, pool in pools.items():
            _warm_up(pool, sql[sf], set(used[sf]))

        def probe() -> int:
            sample = {}
            for sf, pool in pools.items():
                sample.update(isolated_pass(pool, sql[sf], used[sf], threads, sf))
            probes.append(sample)
            return len(probes) - 1

        before = probe()
        if auto:
            ran = [(q.template, q.scale_factor) for qs in workloads.values() for q in qs]
            time_scale = workload_speed(probes[before], _alone_simulated(scenario, ran), ran)
            if progress:
                progress(f"time scale {time_scale:.3f}: the engine's speed factor now")
        for repeat in range(repeats):
            for seed in seeds:
                for label, agent in built:
                    key = label, seed, repeat
                    runs[key], decide_s[key], asked[key] = run_workload(
                        workloads[seed],
                        agent,
                        scenario,
                        sql,
                        pools,
                        time_scale=time_scale,
                        timeout_s=timeout_s,
                        on_done=on_done,
                    )
                    after = probe()
                    brackets[key] = (before, after)
                    before = after
        finished = True
    finally:
        for pool in pools.values():
            pool.close(abort=not finished)
    isolated: dict[tuple[str, float], list[float]] = {}
    for sample in probes:
        for key, value in sample.items():
            isolated.setdefault(key, []).append(value)
    return RealReport(
        scenario.name,
        tuple(seeds),
        tuple(label for label, _ in built),
        runs,
        repeats,
        time_scale,
        {key: tuple(values) for key, values in isolated.items()},
        threads,
        decide_s,
        asked,
        brackets,
        tuple(probes),
        auto,
        real_descriptions(scenario, agents),
    )


def _warm_up(pool: _Pool, sql: dict[str, str], templates: set[str]) -> None:
    """Every template once on every worker, so that no agent's first run pays for cold
    caches (the file's pages, each process's first plans, a new thread pool's first work)."""
    for name in sorted(templates):
        pool.on_every_worker(sql[name])


def _suite_of(template: str) -> str:
    return template.split("-", 1)[0]


def median_run(report: RealReport, agent: str, seed: int) -> list[RealQuery]:
    """The repeat whose mean latency is the median one (its queries are written to CSV)."""
    repeats = [report.runs[agent, seed, r] for r in range(report.repeats)]
    repeats.sort(key=lambda run: mean([q.latency_s for q in run]))
    return repeats[(len(repeats) - 1) // 2]


def isolated_pass(
    pool: _Pool, sql: dict[str, str], templates: Sequence[str], threads: int, scale_factor: float
) -> dict[tuple[str, float], float]:
    """Each template once, alone on the engine with `threads` threads and default parameters:
    one sample of the real side of the speed factor."""
    out = {}
    for name in templates:
        pool.submit(-1, sql[name], threads, DEFAULT_TIMEOUT_S)
        done = None
        while done is None:
            done = pool.poll(1.0)
        _, start, end, error, _ = done
        if error:
            raise RealEngineError(f"{name} at scale factor {scale_factor:g} failed: {error}")
        out[name, scale_factor] = end - start
    return out


def fidelity_report(
    report: RealReport, scenario: Scenario, agents: Sequence[AgentChoice]
) -> dict[str, Any]:
    """The simulator's prediction beside the real runs.

    The speed factor is how much slower DuckDB runs now than when it was calibrated, weighted
    as the workload weighs it: the real isolated latencies (median of the rounds) of every
    query the seeds run, summed, over the simulated ones, summed — so a template that is
    frequent or long counts as much as it loads the engine (the median over templates, which
    a handful of 10-ms queries can move, is reported beside it). The prediction simulates each
    seed with every query's work times that factor (the same agents, decisions and execution
    noise), so queueing is predicted at the load the engine really saw; scaling latencies
    afterwards would not. Then:
    per agent mean and p95 latency predicted and real (median of the repeats) and their error,
    each pair's ratio of mean latencies, and the noise floor (the widest spread of an agent's
    repeats' mean latencies). Two agents whose decisions are the same (sjf and srpt at query
    level; `tuned` where it picked another entry's rule) are predicted the same schedule
    (`same_schedule`: equal latencies, deciding free); their real ratio's distance from 1
    (`same_schedule_spread`, the widest) is the noise a ratio between agents carries in that
    session, measured on pairs whose true ratio is known.

    The prediction charges each of the agent's decisions the seconds one took in the real runs
    (`RealReport.decision_s`, `QueryLevel.decision_s`): the scheduler's own time, as the speed
    factor is the engine's, measured in the same run; `predicted_mean_latency_free` is the
    prediction with deciding free.

    Drift-matched figures (`*_matched`, where the report has `brackets`): the engine's speed
    drifts within a session (up to 25% in an hour here), and queueing amplifies it near
    saturation, so one factor for the whole session predicts every run at the session's
    average speed. Each run is then also predicted at its own factor — the same weighting,
    from the isolated passes right before and right after it — and compared with itself:
    an agent's error is the median over its repeats of predicted over real, and a pair's
    ratio is compared repeat by repeat (the two runs of a round ran minutes apart at most)."""
    from sim.engine import simulate

    alone_sim = _alone_simulated(scenario, report.isolated)
    alone_real = {key: statistics.median(runs) for key, runs in report.isolated.items()}
    median_speed = statistics.median(alone_real[key] / alone_sim[key] for key in alone_sim)
    workloads = {seed: scenario.queries(seed) for seed in report.seeds}
    ran = [(q.template, q.scale_factor) for queries in workloads.values() for q in queries]
    speed = workload_speed(alone_real, alone_sim, ran)
    per_agent: dict[str, Any] = {}
    parity: list[dict[str, Any]] = []
    matched_pred: dict[tuple[str, int, int], float] = {}
    matched_real: dict[tuple[str, int, int], float] = {}
    run_speeds: list[float] = []
    schedules: dict[str, list[tuple[float, ...]]] = {}
    """Per agent, each seed's predicted latencies with deciding free: equal lists, one schedule."""

    def predict(seed: int, at_speed: float, policy: QueryLevel) -> Any:
        """The seed's workload simulated on an engine `at_speed` times its calibrated time,
        arriving as the real runs submitted it (times the report's time scale)."""
        slowed = [_slower(q, at_speed, report.time_scale) for q in workloads[seed]]
        return simulate(
            slowed, scenario.cluster, policy, scenario.execution_rng(seed), record_tasks=False
        )

    for choice in agents:
        label = choice.label
        form = query_level_agent(scenario, choice)
        decision_s = report.decision_s(label) if report.decide_s else 0.0
        charged = QueryLevel(form.policy, decision_s)
        predicted_means, predicted_p95, free_means = [], [], []
        real_means, real_p95, spreads = [], [], []
        for seed in report.seeds:
            simulated = predict(seed, speed, charged)
            latencies = [q.latency_s for q in simulated.queries]
            predicted_means.append(mean(latencies))
            free = predict(seed, speed, QueryLevel(form.policy)) if decision_s else simulated
            free_means.append(mean([q.latency_s for q in free.queries]))
            schedules.setdefault(label, []).append(tuple(q.latency_s for q in free.queries))
            predicted_p95.append(_percentile(latencies, 95))
            repeats = [
                [q.latency_s for q in report.runs[label, seed, r]] for r in range(report.repeats)
            ]
            means = [mean(r) for r in repeats]
            for r, real_mean in enumerate(means):
                run_speed = _run_speed(report, (label, seed, r), workloads[seed], alone_sim)
                if run_speed is None:
                    continue
                run_speeds.append(run_speed)
                at_run = predict(seed, run_speed, charged)
                matched_pred[label, seed, r] = mean([q.latency_s for q in at_run.queries])
                matched_real[label, seed, r] = real_mean
            real_means.append(statistics.median(means))
            real_p95.append(statistics.median(_percentile(r, 95) for r in repeats))
            spreads.append((max(means) - min(means)) / statistics.median(means))
            real = {q.query_id: q for q in median_run(report, label, seed)}
            for q in simulated.queries:
                parity.append(
                    {
                        "agent": label,
                        "seed": seed,
                        "query_id": q.query_id,
                        "template": q.template,
                        "predicted_s": q.latency_s,
                        "real_s": real[q.query_id].latency_s,
                    }
                )
        predicted, measured = mean(predicted_means), mean(real_means)
        per_agent[label] = {
            "predicted_mean_latency": predicted,
            "real_mean_latency": measured,
            "mean_error": predicted / measured - 1.0,
            "predicted_mean_latency_free": mean(free_means),
            "mean_error_free": mean(free_means) / measured - 1.0,
            "predicted_p95_latency": mean(predicted_p95),
            "real_p95_latency": mean(real_p95),
            "p95_error": mean(predicted_p95) / mean(real_p95) - 1.0,
            # one real run per seed has no spread to measure: unknown, not zero
            "real_spread": max(spreads) if report.repeats > 1 else None,
            "decision_s": decision_s,
            "decide_s": mean(
                [
                    statistics.median(
                        report.decide_s.get((label, seed, r), math.nan)
                        for r in range(report.repeats)
                    )
                    for seed in report.seeds
                ]
            ),
            "failed_queries": sum(
                bool(q.error) for key, run in report.runs.items() if key[0] == label for q in run
            ),
            **_delays_ms([q for key, run in report.runs.items() if key[0] == label for q in run]),
        }
        if matched_pred:
            per_agent[label]["mean_error_matched"] = _matched(
                report,
                {
                    key[1:]: matched_pred[key] / matched_real[key]
                    for key in matched_pred
                    if key[0] == label
                },
            )
    pairs = {}
    labels = [c.label for c in agents]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            first, second = per_agent[a], per_agent[b]
            predicted = first["predicted_mean_latency"] / second["predicted_mean_latency"]
            real = first["real_mean_latency"] / second["real_mean_latency"]
            pairs[f"{a} / {b}"] = {
                "predicted_ratio": predicted,
                "real_ratio": real,
                "ratio_error": predicted / real - 1.0,
                "same_schedule": schedules[a] == schedules[b],
            }
            if matched_pred:
                pairs[f"{a} / {b}"]["ratio_error_matched"] = _matched(
                    report,
                    {
                        (seed, r): (matched_pred[a, seed, r] / matched_pred[b, seed, r])
                        / (matched_real[a, seed, r] / matched_real[b, seed, r])
                        for seed in report.seeds
                        for r in range(report.repeats)
                    },
                )
    return {
        "scenario": report.scenario,
        "seeds": list(report.seeds),
        "repeats": report.repeats,
        "time_scale": report.time_scale,
        "time_scale_auto": report.time_scale_auto,
        "speed_factor": speed,
        "speed_factor_median": median_speed,
        "noise_floor": (
            max(a["real_spread"] for a in per_agent.values()) if report.repeats > 1 else None
        ),
        "same_schedule_spread": max(
            (abs(p["real_ratio"] - 1.0) for p in pairs.values() if p["same_schedule"]),
            default=None,
        ),
        "speed_factor_runs": [min(run_speeds), max(run_speeds)] if run_speeds else None,
        "agents": per_agent,
        "pairs": pairs,
        "queries": parity,
    }


def _delays_ms(queries: Sequence[RealQuery]) -> dict[str, float | None]:
    """Median milliseconds from the coordinator's hand-over to the query's start in its worker
    (`dispatch_ms`) and from its finish to the coordinator seeing it (`notice_ms`): the real
    runner's own latency, which the simulator does not charge."""
    dispatch = [q.start_s - q.submitted_s for q in queries if not math.isnan(q.submitted_s)]
    notice = [q.noticed_s - q.finish_s for q in queries if not math.isnan(q.noticed_s)]
    return {
        "dispatch_ms": statistics.median(dispatch) * 1e3 if dispatch else None,
        "notice_ms": statistics.median(notice) * 1e3 if notice else None,
    }


def _run_speed(
    report: RealReport,
    key: tuple[str, int, int],
    queries: Sequence[QuerySpec],
    alone_sim: dict[tuple[str, float], float],
) -> float | None:
    """One run's speed factor: the workload-weighted real isolated latencies of the passes
    right before and right after it (their mean) over the simulated ones; None without."""
    bracket = report.brackets.get(key)
    if bracket is None:
        return None
    before, after = (report.probes[i] for i in bracket)
    ran = [(q.template, q.scale_factor) for q in queries]
    around = {k: (before[k] + after[k]) / 2.0 for k in set(ran)}
    return workload_speed(around, alone_sim, ran)


def workload_speed(
    real_alone: dict[tuple[str, float], float],
    simulated_alone: dict[tuple[str, float], float],
    ran: Sequence[tuple[str, float]],
) -> float:
    """How many times slower the engine runs a workload than its calibration: the real
    isolated latencies of every query run (`ran`: its (template, scale factor) per query),
    summed, over the simulated ones — so a template counts as much as it loads the engine."""
    return sum(real_alone[k] for k in ran) / sum(simulated_alone[k] for k in ran)


def _alone_simulated(
    scenario: Scenario, keys: Iterable[tuple[str, float]]
) -> dict[tuple[str, float], float]:
    """The simulator's isolated latency of each (template, scale factor) on the scenario's
    cluster: the other side of the speed factor."""
    from lsched.workloads.scalability import isolated_latency_s

    return {
        (t, sf): isolated_latency_s(scenario.templates[t], sf, scenario.cluster)
        for t, sf in set(keys)
    }


def _matched(report: RealReport, ratios: dict[tuple[int, int], float]) -> float:
    """Mean over seeds of the median over repeats of `ratios[seed, repeat]`, minus 1."""
    medians = [
        statistics.median(ratios[seed, r] for r in range(report.repeats)) for seed in report.seeds
    ]
    return mean(medians) - 1.0


def _slower(query: QuerySpec, speed: float, time_scale: float = 1.0) -> QuerySpec:
    """The query on an engine `speed` times slower: every pipeline's work (and its estimate,
    which the optimizer would scale alike) times `speed`; its arrival times `time_scale`, as
    the real runner submits it."""
    pipelines = tuple(
        replace(p, work_s=p.work_s * speed, est_work_s=p.est_work_s * speed)
        for p in query.pipelines
    )
    return replace(query, arrival_s=query.arrival_s * time_scale, pipelines=pipelines)


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


PARITY_PLOT = "parity.png"


def results_document(report: RealReport) -> dict[str, Any]:
    """`lsched run`'s results.json from the real runs (each seed's median repeat)."""
    isolated = report.isolated
    agents = {}
    for label in report.agents:
        per_seed = [median_run(report, label, seed) for seed in report.seeds]
        latencies = [[q.latency_s for q in run] for run in per_seed]
        slowdowns = [
            q.latency_s / statistics.median(isolated[q.template, q.scale_factor])
            for run in per_seed
            for q in run
            if (q.template, q.scale_factor) in isolated
        ]
        agents[label] = {
            "mean_latency": mean([mean(v) for v in latencies]),
            "p50_latency": mean([_percentile(v, 50) for v in latencies]),
            "p95_latency": mean([_percentile(v, 95) for v in latencies]),
            "p99_latency": mean([_percentile(v, 99) for v in latencies]),
            "mean_slowdown": mean(slowdowns),
            "makespan": mean([max(q.finish_s for q in run) for run in per_seed]),
            "utilization": mean([_utilization(run, report) for run in per_seed]),
            "queries": mean([len(run) for run in per_seed]),
            "failed_queries": mean([sum(bool(q.error) for q in run) for run in per_seed]),
            "lost_tasks": 0.0,
            "rerun_tasks": 0.0,
        }
    isolated_mean = mean(
        [
            statistics.median(isolated[q.template, q.scale_factor])
            for seed in report.seeds
            for q in median_run(report, report.agents[0], seed)
            if (q.template, q.scale_factor) in isolated
        ]
    )
    return {
        "scenario": report.scenario,
        "seeds": list(report.seeds),
        "engine": "duckdb (real)",
        "repeats": report.repeats,
        "time_scale": report.time_scale,
        "lower_bound": {"mean_latency": isolated_mean},
        "agents": agents,
        "descriptions": dict(report.descriptions),
    }


def _utilization(run: Sequence[RealQuery], report: RealReport) -> float:
    """Busy thread-seconds over the budget's thread-seconds from the first arrival to the
    last finish."""
    span = max(q.finish_s for q in run) - min(q.arrival_s for q in run)
    busy = sum((q.finish_s - q.start_s) * q.threads for q in run)
    return busy / (span * report.threads) if span > 0 else 0.0


MEAN_TARGET, RATIO_TARGET = 0.10, 0.05
"""The real-engine issue's fidelity targets: every agent's mean latency within 10% of the real
one, and every ratio of two agents' means within 5%."""


def fidelity_verdict(fidelity: dict) -> list[str]:
    """What the table means for the question asked: do the simulator's rankings and ratios
    hold on the engine, and are the errors beyond what the engine's own noise explains."""
    agents, pairs = fidelity["agents"], fidelity["pairs"]
    lines = []
    for name, figures in pairs.items():
        lines.append(
            f"{name}: predicted {figures['predicted_ratio']:.3f}, real {figures['real_ratio']:.3f}"
            f" ({figures['ratio_error']:+.1%})"
        )
    predicted = sorted(agents, key=lambda a: agents[a]["predicted_mean_latency"])
    real = sorted(agents, key=lambda a: agents[a]["real_mean_latency"])
    if len(agents) > 1:
        lines.append(
            "ranking (fastest first): "
            + (
                f"the same on the engine: {', '.join(real)}"
                if predicted == real
                else f"predicted {', '.join(predicted)}; real {', '.join(real)}"
            )
        )
    scale, speed = fidelity.get("time_scale"), fidelity.get("speed_factor")
    if fidelity.get("time_scale_auto") and scale and speed and abs(speed / scale - 1) > 0.25:
        lines.append(
            f"arrivals were stretched × {scale:.2f} by the speed measured before the first run, "
            f"and the engine then ran at × {speed:.2f} on average: the workload ran at about "
            f"{speed / scale:.0%} of the scenario's load (the prediction simulated the same "
            "arrivals, so the comparison holds; the load it was made at did not)"
        )
    worst_mean = max(abs(a["mean_error"]) for a in agents.values())
    worst_ratio = max((abs(p["ratio_error"]) for p in pairs.values()), default=0.0)
    met = worst_mean <= MEAN_TARGET and worst_ratio <= RATIO_TARGET
    floor = fidelity["noise_floor"]
    lines.append(
        f"targets (means within {MEAN_TARGET:.0%}, ratios within {RATIO_TARGET:.0%}): "
        f"{'met' if met else 'missed'} (worst {worst_mean:.1%} and {worst_ratio:.1%})"
        + (
            f"; the engine's own runs of one agent differ by up to {floor:.1%}"
            + (
                ", more than the errors: within noise"
                if floor >= max(worst_mean, worst_ratio)
                else ""
            )
            if floor is not None
            else "; noise unknown with one repeat"
        )
    )
    return lines


def write_real_results(
    report: RealReport,
    fidelity: dict[str, Any],
    out: Path,
    scenario: Scenario,
    agents: Sequence[AgentChoice],
) -> list[Path]:
    """results.json, queries/tasks CSVs per agent and seed (the median repeat; a task row per
    query, its worker slot as the thread), fidelity.json, the parity plot and the scenario as
    run (`--set` included, as `lsched run --out` keeps it); results.json last, so a folder that
    has it has everything."""
    from lsched.io import (
        QUERY_COLUMNS,
        RESULTS_FILE,
        SCENARIO_FILE,
        TASK_COLUMNS,
        atomic_write_bytes,
        atomic_write_text,
        queries_file,
        tasks_file,
        write_csv,
        write_json,
    )
    from lsched.plots import parity_figure, png_bytes
    from lsched.runner import scenario_text

    isolated = report.isolated
    written = []
    for label in report.agents:
        for seed in report.seeds:
            run = median_run(report, label, seed)
            rows = []
            for q in run:
                alone = isolated.get((q.template, q.scale_factor))
                isolated_s = statistics.median(alone) if alone else math.nan
                rows.append(
                    (
                        q.query_id,
                        q.template,
                        q.query_class,
                        q.scale_factor,
                        q.arrival_s,
                        q.start_s,
                        q.finish_s,
                        q.latency_s,
                        isolated_s,
                        q.latency_s / isolated_s,
                        q.origin,
                        q.error,
                    )
                )
            written.append(
                write_csv(queries_file(out, label, seed), (*QUERY_COLUMNS, "error"), rows)
            )
            tasks = [(q.query_id, 0, 0, 0, q.worker, q.start_s, q.finish_s) for q in run]
            written.append(write_csv(tasks_file(out, label, seed), TASK_COLUMNS, tasks))
    written.append(write_json(out / FIDELITY_FILE, fidelity))
    written.append(atomic_write_text(out / SCENARIO_FILE, scenario_text(scenario, agents)))
    figure = parity_figure(fidelity["queries"], f"{report.scenario}: simulator vs DuckDB")
    written.append(atomic_write_bytes(out / PARITY_PLOT, png_bytes(figure)))
    written.append(write_json(out / RESULTS_FILE, results_document(report)))
    return written
