"""Agents by name: one explicit table, and `make_agent` to build one with a scenario's options.

A factory is called as `factory(context, **options)` and returns a `Scheduler`. Packages that
bring their own agents call `register`; names with a prefix in `PLUGIN_MODULES` (the learned
agents, "lsched...") import that module on first use, which registers them. A user's own agents
reach every command without editing the package: the modules or `.py` files that the
environment variable `LSCHED_PLUGINS` lists (comma-separated), and the entry points of installed
packages in the group `lsched.agents` (each a factory, registered under its name), load once
per process before the first name is looked up — in worker processes too.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.context import AgentContext, AgentError, AgentOptionError, UnknownAgentError
from agents.families import HEURISTICS
from agents.heuristics import KNOB_NAMES, Heuristic, Knobs
from agents.query_level import QUERY_FORMS, QUERY_KNOB_NAMES, QueryKnobs, decision_seconds
from agents.tuned import TUNING_OPTIONS, Tuned, TuningBudget
from sim.interface import Scheduler
from sim.query_level import QueryLevel

AgentFactory = Callable[..., Scheduler]
"""factory(context: AgentContext, **options) -> Scheduler."""


DECISIONS = ("pipeline", "query")
"""`decisions:` of an agent entry: pipeline by pipeline (the default) or query by query."""


def _heuristic(cls: type[Heuristic], name: str) -> AgentFactory:
    """A factory for a heuristic: shared knobs go to `Knobs`, the rest to the constructor;
    `decisions: query` builds its query-level form (agents.query_level) instead."""
    own = [
        option
        for option in inspect.signature(cls.__init__).parameters
        if option not in ("self", "knobs", "rng", "scalability")
    ]
    takes_rng = "rng" in inspect.signature(cls.__init__).parameters
    takes_scalability = "scalability" in inspect.signature(cls.__init__).parameters

    def factory(context: AgentContext, **options: Any) -> Scheduler:
        decisions = options.pop("decisions", "pipeline")
        if decisions not in DECISIONS:
            raise AgentOptionError(
                f"option decisions: {decisions!r}; one of {', '.join(DECISIONS)}"
            )
        if decisions == "query":
            form = QUERY_FORMS.get(name)
            if form is None:
                raise AgentOptionError(
                    f"has no query-level form (decisions: query); those with one: "
                    f"{', '.join([*sorted(QUERY_FORMS), 'tuned', 'lsched'])}"
                )
            _check_options(options, sorted([*QUERY_KNOB_NAMES, "decision_s"]))
            decision_s = decision_seconds(options.pop("decision_s", 0.0))
            return QueryLevel(form(QueryKnobs(**options)), decision_s)
        _check_options(options, [*sorted(cls.knobs_read), *own, "decisions"])
        knobs = Knobs(**{k: v for k, v in options.items() if k in KNOB_NAMES})
        extra = {k: v for k, v in options.items() if k not in KNOB_NAMES}
        if takes_rng:
            extra["rng"] = context.rng.spawn(1)[0]
        if takes_scalability:
            extra["scalability"] = context.scalability
        return cls(knobs=knobs, **extra)

    return factory


def _tuned(context: AgentContext, **options: Any) -> Scheduler:
    _check_options(options, sorted(TUNING_OPTIONS))
    return Tuned(context, TuningBudget(**options))


def _check_options(options: dict[str, Any], known: list[str]) -> None:
    """Refuse an option the agent does not read, listing the ones it takes."""
    for name in options:
        if name not in known:
            takes = ", ".join(known) if known else "none"
            raise AgentOptionError(f"unknown option {name!r}; it takes: {takes}")


AGENTS: dict[str, AgentFactory] = {
    **{name: _heuristic(cls, name) for name, cls in HEURISTICS.items()},
    "tuned": _tuned,
}
"""Every agent by name; `register` adds to it."""

PLUGIN_MODULES: dict[str, str] = {"lsched": "agents.learned"}
"""Name prefix -> module that registers the agents of that prefix when imported."""


def is_learned(label: str) -> bool:
    """Whether an agent name or label is a learned policy (`lsched`, `lsched:PATH`, ...):
    what "the best baseline" of a comparison leaves out."""
    return any(label.startswith(prefix) for prefix in PLUGIN_MODULES)


def register(name: str, factory: AgentFactory, *, replace: bool = False) -> None:
    """Make `factory` available as `name`; re-registering needs `replace=True`. A name with a
    colon could never be asked for (`NAME:PATH` names a checkpoint), so it is refused."""
    if not name or ":" in name or name != name.strip():
        raise AgentError(f"agent name {name!r}: must be non-empty, without ':' or spaces around")
    if not callable(factory):
        raise AgentError(f"agent {name!r}: the factory must be callable(context, **options)")
    if name in AGENTS and not replace and AGENTS[name] is not factory:
        raise AgentError(f"agent {name!r} is already registered")
    AGENTS[name] = factory


PLUGINS_VARIABLE = "LSCHED_PLUGINS"
"""Environment variable: comma-separated modules (`mypkg.agents`) or `.py` files that
register agents when imported."""
ENTRY_POINT_GROUP = "lsched.agents"
"""Entry-point group of installed packages: each entry point is a factory, named as its agent."""
_plugins_loaded: set[str] = set()


def load_plugins() -> None:
    """Import what `LSCHED_PLUGINS` lists and register the `lsched.agents` entry points (each
    once per process, before any name is looked up, so a name means one agent whatever was
    asked first); a plugin that fails to load, or an entry point whose name is taken, is an
    AgentError naming it."""
    for item in (part.strip() for part in os.environ.get(PLUGINS_VARIABLE, "").split(",")):
        if item and item not in _plugins_loaded:
            _plugins_loaded.add(item)
            try:
                _import_plugin(item)
            except Exception as error:  # a plugin's own failure, whatever its type
                _plugins_loaded.discard(item)
                raise AgentError(
                    f"{PLUGINS_VARIABLE}: cannot load {item!r}: {type(error).__name__}: {error}"
                ) from error
    if "entry points" not in _plugins_loaded:
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if AGENTS.get(point.name) is not None and point.value in _plugins_loaded:
                continue  # registered by an earlier call that failed on a later entry point
            try:
                register(point.name, point.load())
            except Exception as error:
                raise AgentError(
                    f"entry point {point.name!r} ({point.value}) of {ENTRY_POINT_GROUP}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            _plugins_loaded.add(point.value)
        _plugins_loaded.add("entry points")


def plugin_file(item: str) -> Path | None:
    """The file an LSCHED_PLUGINS entry's code is in: the `.py` file it names, or its module's
    source (None where it cannot be found without importing it)."""
    if item.endswith(".py"):
        return Path(item).expanduser().resolve()
    try:
        spec = importlib.util.find_spec(item)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _import_plugin(item: str) -> None:
    """A module by name, or a `.py` file by path, as a module named after the file and a hash
    of its path: the same name in every process that loads it, and none already taken."""
    if not item.endswith(".py"):
        importlib.import_module(item)
        return
    path = plugin_file(item)
    assert path is not None
    if not path.is_file():
        raise FileNotFoundError(f"no such file {str(path)!r}")
    # a name of its own: `agents.py` or two `mine.py` must not meet a module already imported
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"_lsched_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def is_known(name: str) -> bool:
    """Whether `make_agent` knows a name (a plugin's too; `lsched` and `lsched:PATH` forms by
    their prefix), without building it."""
    load_plugins()
    base = name.partition(":")[0]
    return base in AGENTS or base.startswith(tuple(PLUGIN_MODULES))


def known_agents() -> list[str]:
    """Registered names, plus the plugins not loaded yet by their prefix and its checkpoint
    form (`lsched`, `lsched:PATH`), as a user would type them."""
    load_plugins()
    names = sorted(AGENTS)
    pending = [
        form
        for prefix in PLUGIN_MODULES
        if not any(n.startswith(prefix) for n in names)
        for form in (prefix, f"{prefix}:PATH")
    ]
    return names + pending


def make_agent(name: str, context: AgentContext, **options: Any) -> Scheduler:
    """Build the agent called `name`; options set its knobs (e.g. `max_parallelism=8`).

    `NAME:PATH` is short for NAME with option `checkpoint=PATH` (e.g. `lsched:runs/policy.pt`).
    """
    base, sep, checkpoint = name.partition(":")
    if sep and not checkpoint.strip():
        raise AgentOptionError(f"agent {name!r}: no policy file after the colon ({base}:PATH)")
    if sep:
        options = {**options, "checkpoint": checkpoint}
    load_plugins()
    factory = AGENTS.get(base)
    if factory is None:
        for prefix, module in PLUGIN_MODULES.items():
            if base.startswith(prefix):
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError as error:
                    if error.name != module:
                        raise
                factory = AGENTS.get(base)
                break
    if factory is None:
        raise UnknownAgentError(
            f"unknown agent {base!r}; known agents: {', '.join(known_agents())}"
        )
    try:
        return factory(context, **options)
    except AgentError as error:
        if sep and "unknown option 'checkpoint'" in str(error):
            raise AgentOptionError(
                f"agent {name!r}: NAME:PATH names a policy file, and {base} takes none "
                "(a learned policy does: lsched:PATH)"
            ) from None
        raise type(error)(f"agent {name!r}: {error}") from None
