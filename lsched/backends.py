"""Where independent runs execute: in this process, in local worker processes, or on Ray.

A backend maps a picklable function over picklable items and hands each result back as soon
as it is ready: `map_unordered(fn, items)` yields `(item, result)` pairs, and a task that raised
yields a `TaskFailure` in place of its result while the others go on. `map` is the ordered,
fail-fast form. The simulator and the agents know nothing of backends; sweeps (`lsched.sweep`)
and training (`lsched.train`) use them.

Functions given to a backend must be deterministic in their item (every draw seeded from it),
so a result never depends on the backend or the number of workers: only the order in which
results arrive does.

"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import socket
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

from agents.registry import PLUGINS_VARIABLE
from lsched.errors import LschedError

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("local", "ray")
"""Names `make_backend` accepts (the `--backend` choices)."""
IN_FLIGHT_PER_WORKER = 2
"""Tasks submitted ahead per worker: enough to keep workers busy while results are handled,
few enough that a long item iterable is consumed lazily and a Ctrl-C cancels little work."""
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Thread-pool variables set to 1 in worker processes (unless already set): each worker is
one busy core, and nested thread pools would only oversubscribe the machine."""
RAY_ADDRESS_ENV = "RAY_ADDRESS"
"""Read when no address is given, as `ray.init` itself does."""
RAY_CONNECT_TIMEOUT_S = 5.0
"""How long to wait for a Ray cluster's address to accept a connection."""
CODE_PACKAGES = ("sim", "agents", "lsched")
"""Packages shipped to an existing Ray cluster (runtime_env py_modules), so its workers run
exactly the driver's code; the cluster needs only lsched's dependencies installed."""


class BackendError(LschedError):
    """A backend that cannot be made as asked (unknown name, Ray missing or unreachable)."""


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """What a task that raised leaves behind: its exception's type and message."""

    error_type: str
    message: str
    traceback: str = field(default="", repr=False, compare=False)
    """The worker-side traceback, for logs; not part of equality."""
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    """The exception itself when it survives pickling (so `map` can raise it again)."""

    def __str__(self) -> str:
        text = f"{self.error_type}: {self.message}" if self.message else self.error_type
        return " ".join(text.split())

    @classmethod
    def of(cls, error: BaseException) -> TaskFailure:
        return cls(
            type(error).__name__,
            str(error),
            "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            error if _travels(error) else None,
        )


def _travels(error: BaseException) -> bool:
    """Whether the exception comes back from pickling as itself (one whose __init__ takes
    other arguments than its message does not): checked everywhere, so the exception `map`
    raises is the same whichever backend ran the task."""
    try:
        copy = pickle.loads(pickle.dumps(error))
    except Exception:  # any pickling problem means: send the text only
        return False
    return type(copy) is type(error) and str(copy) == str(error)


class TaskError(RuntimeError):
    """Raised by `map` for a failed task whose exception could not travel back as itself."""

    def __init__(self, index: int, failure: TaskFailure) -> None:
        self.index = index
        self.failure = failure
        super().__init__(f"task {index} failed: {failure}")


def raise_failure(index: int, failure: TaskFailure) -> NoReturn:
    """Raise task `index`'s own exception (with a note saying which task), else a TaskError."""
    error = failure.exception
    if error is None:
        raise TaskError(index, failure)
    error.add_note(f"(raised by task {index} of a backend map)")
    raise error


def guarded_call(fn: Callable[[T], R], item: T) -> R | TaskFailure:
    """`fn(item)`, or the failure it raised: what every worker runs, so one task's exception
    reaches the caller as data instead of tearing down the map."""
    try:
        return fn(item)
    except Exception as error:  # any task error becomes a recorded failure
        return TaskFailure.of(error)


class _Closing(ABC):
    """Something holding workers: `close()` releases them, `with` closes on the way out."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers (idempotent)."""

    def abort(self) -> None:
        """Release the workers at once, dropping the work they hold (an interrupt: Ctrl-C, or
        SIGTERM, which reaches this process alone). Default: `close`."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.abort()
        else:
            self.close()


class Backend(_Closing):
    """Runs a function over items somewhere; use as a context manager or call `close()`."""

    name: str
    workers: int
    """How many tasks run at once."""

    @abstractmethod
    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | TaskFailure]]:
        """`(item, fn(item) or its TaskFailure)` in completion order; items are read lazily."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`[fn(item) for item in items]` run on the backend. A failed task stops the map and
        its exception is raised here (a TaskError when it could not travel back)."""
        results: dict[int, R] = {}
        stream = self.map_unordered(partial(_call_indexed, fn), enumerate(items))
        try:
            for (index, _), result in stream:
                if isinstance(result, TaskFailure):
                    raise_failure(index, result)
                results[index] = result
        finally:
            stream.close()  # cancels what is still queued when a task failed
        return [results[i] for i in range(len(results))]


def _call_indexed(fn: Callable[[T], R], pair: tuple[int, T]) -> R:
    return fn(pair[1])


# --------------------------------------------------------------------------- local
def default_workers() -> int:
    """One worker per CPU this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _process_context() -> multiprocessing.context.BaseContext:
    """forkserver where the platform has it, else spawn: never plain fork, which copies the
    parent's threads' locks (torch, BLAS) into children that then deadlock."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _init_worker(plugins: str | None = None) -> None:
    """One thread per library, and the plugins the pool's creator had: a forkserver started
    earlier would otherwise pass on its own environment, not the creator's."""
    for name in SINGLE_THREAD_ENV:
        os.environ.setdefault(name, "1")
    if plugins is None:
        os.environ.pop(PLUGINS_VARIABLE, None)
    else:
        os.environ[PLUGINS_VARIABLE] = plugins


MAX_LOCAL_WORKERS = 256
"""Most local worker processes: each imports torch and numpy (~300 MB), so 100,000 would
exhaust any machine before doing any work."""


class LocalBackend(Backend):
    """Worker processes on this machine (`workers=1`: everything runs in this process)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 0:
            raise BackendError(f"--workers: must be >= 0 (0: one per CPU), got {workers}")
        if workers > MAX_LOCAL_WORKERS:
            raise BackendError(
                f"--workers: {workers} processes on one machine, more than "
                f"lsched.backends.MAX_LOCAL_WORKERS ({MAX_LOCAL_WORKERS}); a cluster is "
                "--backend ray's"
            )
        self.workers = workers or default_workers()
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=_process_context(),
                initializer=_init_worker,
                initargs=(os.environ.get(PLUGINS_VARIABLE),),
            )
        return self._executor

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | TaskFailure]]:
        if self.workers == 1:
            for item in items:
                yield item, guarded_call(fn, item)
            return
        yield from _stream_futures(self._submitter(fn), items, self.workers * IN_FLIGHT_PER_WORKER)

    def _submitter(self, fn: Callable[[T], R]) -> Callable[[T], Future[Any]]:
        def submit(item: T) -> Future[Any]:
            try:
                return self._pool().submit(guarded_call, fn, item)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): its tasks are recorded as failed;
                # a fresh pool takes the rest.
                self._shutdown()
                return self._pool().submit(guarded_call, fn, item)

        return submit

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        self._shutdown()

    def abort(self) -> None:
        """Terminate the workers rather than wait for their tasks: a 20-s task held a
        SIGTERM'd `lsched train` for its whole length. (No public way before Python 3.14's
        `terminate_workers`: the executor's own process table.)"""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


def _stream_futures(
    submit: Callable[[T], Future[Any]], items: Iterable[T], limit: int
) -> Iterator[tuple[T, Any]]:
    """Keep up to `limit` tasks in flight and yield each as it completes."""
    source = iter(items)
    pending: dict[Future[Any], T] = {}

    def fill() -> None:
        while len(pending) < limit:
            item = next(source, _END)
            if item is _END:
                return
            pending[submit(item)] = item  # type: ignore[arg-type]

    try:
        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                try:
                    result = future.result()
                except Exception as error:  # a dead worker, an unpicklable result
                    result = TaskFailure.of(error)
                yield item, result
            fill()
    finally:
        for future in pending:
            future.cancel()


_END = object()


# --------------------------------------------------------------------------- Ray
def import_ray() -> Any:
    """The ray module, or a BackendError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BackendError(
            "the ray backend needs Ray: pip install 'lsched[ray]' (install the 'ray' extra)"
        ) from None
    return ray


def code_runtime_env() -> dict[str, Any]:
    """A Ray runtime_env that ships this checkout's packages to the cluster's workers."""
    root = Path(__file__).resolve().parent.parent
    return {"py_modules": [str(root / name) for name in CODE_PACKAGES]}


def _check_reachable(address: str) -> None:
    """Fail in seconds on a wrong `host:port`: `ray.init` itself retries for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise BackendError(f"--address: cannot reach Ray at {address}: {reason}") from None


class RayBackend(Backend):
    """Ray tasks, one CPU each, on a local Ray instance or an existing cluster.

    Without an address (and no RAY_ADDRESS) a local instance with `workers` CPUs is started,
    and stopped by `close()`. With one, the driver connects to that cluster and ships its code
    (`code_runtime_env`); `workers` then only bounds the tasks in flight (0: the cluster's CPUs).
    If Ray is already initialised in this process, that connection is used as it is.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 0,
        address: str | None = None,
        *,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if workers < 0:
            raise BackendError(f"--workers: must be >= 0 (0: all CPUs), got {workers}")
        ray = import_ray()
        self._ray = ray
        self._owns = False
        self.address = address or os.environ.get(RAY_ADDRESS_ENV) or None
        if self.address not in (None, "local"):
            _check_reachable(self.address)
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "logging_level": logging.ERROR,
                "include_dashboard": False,
            }
            if self.address in (None, "local"):
                # "local": a fresh instance even if `ray start` left one running here.
                options["address"] = "local"
                options["num_cpus"] = workers or default_workers()
                if runtime_env is not None:
                    options["runtime_env"] = runtime_env
            else:
                options["address"] = self.address
                options["runtime_env"] = runtime_env or code_runtime_env()
                del options["include_dashboard"]
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = self.address or "a local instance"
                hint = ""
                if isinstance(error.__cause__, ray.exceptions.AuthenticationError):
                    hint = (
                        " (the cluster wants its token: set RAY_AUTH_MODE=token and provide "
                        "~/.ray/auth_token or RAY_AUTH_TOKEN)"
                    )
                raise BackendError(f"ray: cannot start or reach {where}: {error}{hint}") from None
            self._owns = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(cpus, 1)
        self._task = ray.remote(num_cpus=1)(guarded_call)

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | TaskFailure]]:
        ray = self._ray
        remote_fn = ray.put(fn)  # pickled once, not once per task
        source = iter(items)
        pending: dict[Any, T] = {}
        limit = self.workers * IN_FLIGHT_PER_WORKER
        try:
            while True:
                while len(pending) < limit:
                    item = next(source, _END)
                    if item is _END:
                        break
                    pending[self._task.remote(remote_fn, item)] = item  # type: ignore[assignment]
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as error:  # a lost worker or node
                        result = TaskFailure.of(error)
                    yield item, result
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False


# --------------------------------------------------------------------------- factory
def make_backend(name: str = "local", workers: int = 1, address: str | None = None) -> Backend:
    """The backend called `name` ("local" or "ray"); `address` is for Ray only."""
    if name == "local":
        if address is not None:
            raise BackendError("--address: only the ray backend connects to an address")
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers, address)
    raise BackendError(f"--backend: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "LocalBackend",
    "RayBackend",
    "TaskError",
    "TaskFailure",
    "code_runtime_env",
    "default_workers",
    "guarded_call",
    "import_ray",
    "make_backend",
    "raise_failure",
]
