"""A user's own agents reach every command without editing the package: LSCHED_PLUGINS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents import registry
from agents.context import AgentError
from lsched.cli import app

PLUGIN = """\
from agents import register
from agents.heuristics import Fifo, Knobs


def capped(context, cap: int = 4):
    return Fifo(Knobs(max_parallelism=cap))


register("{name}", capped)
"""

SWEEP = """\
scenarios: [tpch-streaming]
agents: [{{name: {name}, cap: 2}}, {{name: {name}, cap: 8}}]
seeds: 1
"""


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test registers or loads stays in the test."""
    monkeypatch.setattr(registry, "AGENTS", dict(registry.AGENTS))
    monkeypatch.setattr(registry, "_plugins_loaded", set())


def test_a_plugin_file_adds_an_agent_to_run_and_sweep(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = tmp_path / "my_capped_agent.py"
    plugin.write_text(PLUGIN.format(name="my_capped"))
    monkeypatch.setenv(registry.PLUGINS_VARIABLE, str(plugin))
    # the sweep first: its file check must find the plugin before anything else loaded it
    sweep = tmp_path / "caps.yaml"
    sweep.write_text(SWEEP.format(name="my_capped"))
    out = tmp_path / "sweep"
    swept = CliRunner().invoke(app, ["sweep", str(sweep), "--out", str(out), "--workers", "2"])
    assert swept.exit_code == 0, swept.output
    rows = json.loads((out / "sweep.json").read_text())["runs"]
    assert [row["status"] for row in rows] == ["ok", "ok"]  # the worker processes loaded it
    run = CliRunner().invoke(
        app, ["run", "tpch-streaming", "--agents", "fifo,my_capped", "--seeds", "1", "--json"]
    )
    assert run.exit_code == 0, run.output
    agents = json.loads(run.stdout)["agents"]
    # a cap keeps FIFO from drowning in parallel overhead: a different, better schedule
    assert agents["my_capped"]["mean_latency"] < agents["fifo"]["mean_latency"]


def test_a_plugin_that_fails_to_load_is_one_error_line(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import no_such_module_anywhere\n")
    monkeypatch.setenv(registry.PLUGINS_VARIABLE, f"{tmp_path / 'missing.py'}")
    result = CliRunner().invoke(app, ["run", "tpch-streaming", "--agents", "mine", "--seeds", "1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: LSCHED_PLUGINS: cannot load '{tmp_path / 'missing.py'}': FileNotFoundError: "
        f"no such file '{tmp_path / 'missing.py'}'"
    ]
    monkeypatch.setenv(registry.PLUGINS_VARIABLE, str(broken))
    result = CliRunner().invoke(app, ["run", "tpch-streaming", "--agents", "mine", "--seeds", "1"])
    assert result.exit_code == 2
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in result.output
    assert "Traceback" not in result.output


def test_a_name_no_command_could_ask_for_is_refused(fresh_registry: None) -> None:
    for name in ("my:agent", "", " padded "):
        with pytest.raises(AgentError, match="must be non-empty, without ':'"):
            registry.register(name, lambda context: None)
    with pytest.raises(AgentError, match="must be callable"):
        registry.register("not_a_factory", 3)  # type: ignore[arg-type]


def test_plugins_load_before_any_lookup_and_files_keep_their_own_modules(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name means one agent whatever is asked first (plugins loaded only for an unknown name
    let `fair` be either); a plugin file named like a module already imported (`json.py`),
    or like another plugin file, is loaded all the same."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "json.py", tmp_path / "b" / "json.py"
    first.write_text(PLUGIN.format(name="from_a"))
    second.write_text(PLUGIN.format(name="from_b"))
    monkeypatch.setenv(registry.PLUGINS_VARIABLE, f"{first},{second}")
    assert registry.is_known("fifo") and registry.is_known("from_a") and registry.is_known("from_b")
    shadow = tmp_path / "shadow.py"
    shadow.write_text(PLUGIN.format(name="fair"))
    monkeypatch.setenv(registry.PLUGINS_VARIABLE, str(shadow))
    with pytest.raises(AgentError, match=r"shadow\.py'.*agent 'fair' is already registered"):
        registry.is_known("fifo")  # a built-in looked up first still loads the plugins


def test_an_entry_point_registers_its_factory_and_may_not_take_a_name(
    fresh_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import EntryPoint

    points = [EntryPoint("ep_fifo", "agents.heuristics:Fifo", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: points)
    assert registry.is_known("ep_fifo") and registry.AGENTS["ep_fifo"] is not None
    monkeypatch.setattr(registry, "_plugins_loaded", set())
    points[:] = [EntryPoint("fair", "agents.heuristics:Fifo", registry.ENTRY_POINT_GROUP)]
    with pytest.raises(AgentError, match=r"entry point 'fair'.*already registered"):
        registry.known_agents()
