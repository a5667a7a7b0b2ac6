"""Backends: the same results in any order on every backend, failures as data, stateful pools.

Ray tests share one local Ray instance (num_cpus=2, one module-scoped fixture) and are skipped
when ray is not importable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import operator
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from lsched.backends import (
    BackendError,
    LocalBackend,
    TaskError,
    TaskFailure,
    import_ray,
    make_backend,
)

HAVE_RAY = importlib.util.find_spec("ray") is not None


def needs_ray(test: Any) -> Any:
    """Skipped without ray; kept on one xdist worker (with --dist loadgroup) so the suite
    starts one Ray instance, not one per worker."""
    test = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed")(test)
    return pytest.mark.xdist_group("ray")(test)


ITEMS = ["3", "1", "x", "4", "6", "5", "nine", "2"]
"""Strings for `int`: two of them fail."""
EXPECTED = {
    "3": 3,
    "1": 1,
    "4": 4,
    "6": 6,
    "5": 5,
    "2": 2,
    "x": TaskFailure("ValueError", "invalid literal for int() with base 10: 'x'"),
    "nine": TaskFailure("ValueError", "invalid literal for int() with base 10: 'nine'"),
}


def unordered(backend: Any, fn: Any, items: list[Any]) -> list[tuple[Any, Any]]:
    return sorted(backend.map_unordered(fn, items), key=lambda pair: ITEMS.index(pair[0]))


class Unpicklable(ValueError):
    """An error whose __init__ takes more than its message: it does not unpickle."""

    def __init__(self, source: str, field: str) -> None:
        super().__init__(f"{source}: {field}: bad")


def unpicklable_error_on_odd(item: int) -> int:
    if item % 2:
        raise Unpicklable("f.yaml", "a.b")
    return item


# ------------------------------------------------------------------------- local
@pytest.mark.parametrize("workers", [1, 2])
def test_local_map_unordered_records_failures_and_goes_on(workers: int) -> None:
    with LocalBackend(workers) as backend:
        pairs = unordered(backend, int, ITEMS)
    assert pairs == [(item, EXPECTED[item]) for item in ITEMS]
    assert str(pairs[2][1]) == "ValueError: invalid literal for int() with base 10: 'x'"
    assert "Traceback" in pairs[2][1].traceback


@pytest.mark.parametrize("workers", [1, 2])
def test_map_keeps_order_and_fails_fast(workers: int) -> None:
    with LocalBackend(workers) as backend:
        assert backend.map(operator.neg, range(7)) == [0, -1, -2, -3, -4, -5, -6]
        # The task's own exception, whichever process raised it, saying which task it was.
        with pytest.raises(ValueError, match="invalid literal for int") as caught:
            backend.map(int, ITEMS)
        # tasks 2 and 6 both fail; with 2 workers either may finish first and stop the map
        failing = {"(raised by task 2 of a backend map)", "(raised by task 6 of a backend map)"}
        assert len(failing & set(caught.value.__notes__)) == 1
        if workers == 1:  # in order: the first failure is the first to run
            assert "(raised by task 2 of a backend map)" in caught.value.__notes__
        # An exception that does not survive pickling comes back as text, the same everywhere.
        with pytest.raises(
            TaskError, match=r"task 1 failed: Unpicklable: f\.yaml: a\.b: bad"
        ) as err:
            backend.map(unpicklable_error_on_odd, [0, 1, 2])
        assert err.value.index == 1
        assert backend.map(operator.neg, []) == []


def test_items_are_read_lazily() -> None:
    """A long iterable is not consumed ahead of the workers (bounded tasks in flight)."""
    taken = []

    def numbers() -> Any:
        for n in range(1000):
            taken.append(n)
            yield n

    with LocalBackend(2) as backend:
        stream = backend.map_unordered(operator.neg, numbers())
        next(stream)
        stream.close()
    assert len(taken) < 10


def test_an_interrupt_terminates_the_workers_rather_than_waiting_for_them() -> None:
    """SIGTERM reaches the parent alone (Ctrl-C reaches the workers too): interrupted, the pool
    must not sit out the tasks its workers hold, 30 s each here."""
    import time

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), LocalBackend(2) as backend:
        for _ in backend.map_unordered(time.sleep, [0.0, 30.0, 30.0, 30.0]):
            raise KeyboardInterrupt
    assert time.monotonic() - started < 20


def test_make_backend_rejects_bad_choices() -> None:
    with pytest.raises(BackendError, match="unknown backend 'spark'; choose one of local, ray"):
        make_backend("spark")
    with pytest.raises(BackendError, match="only the ray backend"):
        make_backend("local", 2, "ray://head:10001")
    with pytest.raises(BackendError, match="--workers: must be >= 0"):
        make_backend("local", -1)
    assert make_backend("local", 0).workers >= 1


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(BackendError, match="install the 'ray' extra"):
        import_ray()
    with pytest.raises(BackendError, match=r"pip install 'lsched\[ray\]'"):
        make_backend("ray", 2)


# ------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_backend() -> Any:
    """One local Ray instance with 2 CPUs for every Ray test of this module."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed")
    import ray

    if ray.is_initialized():  # another module left one running: ours must own its CPUs
        ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
    backend = make_backend("ray", 2)
    # Ray workers cannot import this test module: ship its functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield backend
    backend.close()
    assert not ray.is_initialized()


@needs_ray
def test_ray_gives_the_local_results(ray_backend: Any) -> None:
    assert ray_backend.workers == 2
    assert unordered(ray_backend, int, ITEMS) == [(item, EXPECTED[item]) for item in ITEMS]
    assert ray_backend.map(operator.neg, range(5)) == [0, -1, -2, -3, -4]
    with pytest.raises(ValueError, match="invalid literal for int"):
        ray_backend.map(int, ITEMS)
    with pytest.raises(TaskError, match=r"task 1 failed: Unpicklable: f\.yaml: a\.b: bad"):
        ray_backend.map(unpicklable_error_on_odd, [0, 1, 2])


@needs_ray
def test_a_sweep_on_ray_writes_the_local_table(ray_backend: Any, tmp_path: Path) -> None:
    from test_sweep import table_files, write_sweep

    from lsched.sweep import run_sweep

    spec = write_sweep(tmp_path)
    run_sweep(spec, tmp_path / "local", LocalBackend(1))
    report = run_sweep(spec, tmp_path / "ray", ray_backend)
    assert report.executed == 8 and report.failed == 0
    assert table_files(tmp_path / "ray") == table_files(tmp_path / "local")


def test_ray_is_imported_only_when_asked() -> None:
    code = "import lsched.backends, lsched.sweep, sys; print('ray' in sys.modules)"
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert result.stdout.strip() == "False"
    assert import_ray is not None


@needs_ray
def test_an_unreachable_ray_address_fails_fast() -> None:
    with pytest.raises(BackendError, match=r"--address: cannot reach Ray at 127\.0\.0\.1:1: "):
        make_backend("ray", 2, "127.0.0.1:1")


@needs_ray
def test_training_on_ray_matches_training_on_local_processes(
    ray_backend: Any, tmp_path: Path
) -> None:
    from test_train import FAST, TINY

    from agents.features import FEATURE_SCHEMA_VERSION
    from agents.learned.checkpoint import load_checkpoint, weights_digest
    from lsched.train import train

    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    config = dataclasses.replace(FAST, iterations=2, eval_every=0, imitate=None)
    digests = []
    for name, backend in (("local", LocalBackend(2)), ("ray", ray_backend)):
        with contextlib.ExitStack() as stack:
            if name == "local":
                stack.enter_context(backend)
            policy_path = train(config, [str(scenario)], tmp_path / name, backend=backend)
        policy, _, _ = load_checkpoint(policy_path, FEATURE_SCHEMA_VERSION)
        digests.append(weights_digest(policy.state_dict()))
    assert digests[0] == digests[1]


def test_local_workers_beyond_one_machine_are_refused() -> None:
    from lsched.backends import MAX_LOCAL_WORKERS, BackendError, LocalBackend

    with pytest.raises(BackendError, match="MAX_LOCAL_WORKERS"):
        LocalBackend(MAX_LOCAL_WORKERS + 1)
