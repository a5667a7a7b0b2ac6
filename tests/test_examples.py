"""The examples/ scripts run unchanged against the env: a few hundred steps of each library.

A library that is not installed skips its example with a message saying which; the dev extra
installs all four (sb3-contrib, RLlib, TorchRL; the CleanRL-style loop needs only torch).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
SMOKE = {
    "maskable_ppo.py": (
        ["sb3_contrib"],
        [
            "--steps",
            "256",
            "--envs",
            "2",
            "--n-steps",
            "64",
            "--eval-seeds",
            "1",
            "--agents",
            "fair",
        ],
    ),
    "cleanrl_ppo.py": (["torch"], ["--steps", "256", "--envs", "2", "--n-steps", "64"]),
    "torchrl_ppo.py": (["torchrl", "tensordict"], ["--steps", "256", "--batch", "128"]),
    "rllib_ppo.py": (["ray.rllib"], ["--iterations", "1", "--batch", "256"]),
}
"""Each example: the modules it needs, and arguments for a run of a few hundred steps."""


def _missing(modules: list[str]) -> list[str]:
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(module)
    return missing


def test_every_example_has_a_smoke_run() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(SMOKE)


@pytest.mark.xdist_group("examples")
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_example_runs_against_the_env(script: str, tmp_path: Path) -> None:
    modules, args = SMOKE[script]
    missing = _missing(modules)
    if missing:
        pytest.skip(f"{script}: {', '.join(missing)} not installed (pip install -e '.[dev]')")
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["example"] == script.removesuffix(".py")
    assert summary["scenario"] == "tpch-streaming"


@pytest.mark.xdist_group("examples")
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_an_example_given_an_unknown_scenario_says_so_in_one_line(script: str) -> None:
    """argparse's usage error (exit 2), naming the option and the scenario, not a traceback."""
    modules, _ = SMOKE[script]
    missing = _missing(modules)
    if missing:
        pytest.skip(f"{script}: {', '.join(missing)} not installed (pip install -e '.[dev]')")
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--scenario", "no-such-scenario"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "argument --scenario: no-such-scenario: no such file" in run.stderr
    assert "Traceback" not in run.stderr


def test_an_example_refuses_a_count_below_one() -> None:
    """`--envs 0` was an IndexError and `--steps 0` ran a thousand steps."""
    for option in ("--envs", "--steps"):
        run = subprocess.run(
            [sys.executable, str(EXAMPLES / "cleanrl_ppo.py"), option, "0"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2 and f"argument {option}: 0 is not >= 1" in run.stderr
