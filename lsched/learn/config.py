"""Training settings: one frozen dataclass (every field documented, CleanRL style), its
checks, and `--set FIELD=VALUE` parsing. A setting is checked, for type and range, before any
work starts; a bad one is a TrainError (one line on the command line, exit code 2)."""

from __future__ import annotations

import json
import math
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Union, get_args, get_origin, get_type_hints

from agents.learned.checkpoint import MAX_NETWORK_SIZE
from lsched import io
from lsched.documents import closest_hint, setting_value
from lsched.errors import LschedError

EPISODE_ENDS = ("auto", "arrival", "finish")
"""How an episode of K queries ends (TrainConfig.episode_end)."""


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting (CleanRL style): change one here, or on `lsched train --set`.

    The defaults are the recipe that trained the shipped policy (30 minutes on 2 cores).
    """

    seed: int = 0
    """Everything random in a run derives from (seed, iteration): same seed, same policy."""
    iterations: int = 400
    """Policy-gradient steps. 0 (with `init` or `imitate`): none, the start ships — with
    `margin_grid`, how a trained policy gets its deviation margin chosen afterwards."""
    workloads_per_iteration: int = 4
    """Training workloads (groups) per step; scenarios are visited round-robin."""
    rollouts_per_workload: int = 4
    """Rollouts of each workload: the baseline's sample size."""
    shared_execution: bool = True
    """The rollouts of a group share the execution seed (task durations) as well as the
    workload, so the baseline conditions on the whole exogenous input (Mao et al., ICLR 2019)
    and an advantage measures the policy's decisions only. With a seed each, a behaviour-cloned,
    nearly deterministic policy gets advantages that are mostly duration noise: 40 iterations
    changed none of its greedy validation schedules."""
    workers: int = 0
    """Rollout processes; 0: one per CPU core. 1 runs in this process (no pool)."""
    learning_rate: float = 1e-4
    """Policy-gradient step size. In the measured world, 2e-4 after a loosely cloned start
    (4 epochs) moved validation on tpch-streaming / diurnal-mixed to -1.2% / -1.6% but on
    ssb-dashboards to +4.5% against the best baseline within 36 iterations; the shipped run
    uses 1e-4 after 12 epochs. Before (uniform scalability), 2e-4 improved validation from
    +0.57% to -0.16% in 64 iterations, and with a duration seed per rollout 5e-5 changed
    nothing and 3e-4 drifted from the first validation. A run ships its best-validated
    iteration."""
    max_grad_norm: float = 1.0
    """Gradients (policy gradient and behaviour cloning) are clipped to this global norm."""
    entropy_start: float = 0.001
    """Weight of the entropy bonus at iteration 0 ..."""
    entropy_end: float = 0.0001
    """... decayed geometrically to this at `entropy_decay_iterations`, then kept."""
    entropy_decay_iterations: int = 40
    """Iterations over which the entropy weight decays (0: `entropy_end` from the start)."""
    curriculum_start_queries: int = 100
    """Episode horizon at iteration 0: the arrival time of this many queries ..."""
    curriculum_end_queries: int = 200
    """... growing linearly to this at `curriculum_iterations` (capped by the workload's size)."""
    curriculum_iterations: int = 30
    """Iterations over which the horizon grows (0: `curriculum_end_queries` from the start)."""
    episode_end: str = "auto"
    """Where an episode of K queries ends: "arrival" at the K-th query's arrival (later
    arrivals left out), "finish" once the first K queries have all finished, "auto" "finish"
    when those K arrive at once (batch scenarios: the K-th arrival is t = 0, so the episode
    would end before its first decision, and tpch-batch trained on nothing) and "arrival"
    otherwise."""
    horizon_jitter: float = 0.3
    """Each group's K is drawn uniformly within ±this fraction of the curriculum's K, so the
    policy never learns one fixed episode end."""
    checkpoint_every: int = 5
    """Iterations between checkpoints (and always after the last)."""
    eval_every: int = 6
    """Iterations between greedy evaluations on validation seeds (0: never)."""
    eval_seeds: int = 2
    """Validation workloads per scenario, from the training range past every rollout seed."""
    eval_max_queries: int | None = 150
    """Evaluate on the first queries of each validation workload only (None: all of them)."""
    baselines: tuple[str, ...] = ("fifo", "sjf", "srpt", "fair", "cpf", "tuned")
    """Heuristics the progress report compares against (simulated once, on the same seeds)."""
    workload_features: bool = True
    """False zeroes the workload features (template history, the query log's estimate
    correction, arrival rate, time of day): the ablation that shows what they provide."""
    scalability_features: bool = True
    """False zeroes the scalability prior (each pipeline's serial fraction as its breaker type
    and data size predict it): the ablation that shows what reading scalability provides."""
    wait_only_with_guide: bool = True
    """A guided policy may WAIT (leave free threads idle) only when its guide would
    (LearnedScheduler.wait_only_with_guide); stored in the checkpoint."""
    deviation_margin: float = 0.0
    """PolicyOptions.deviation_margin during training's validation (rollouts sample, so it
    never gates them); the shipped file holds the one `margin_grid` picks."""
    margin_grid: tuple[float, ...] = ()
    """After training, the deviation margins tried on `margin_seeds` validation workloads per
    scenario with the best policy; the one with the lowest worst-scenario ratio to the best
    baseline, taken at the upper end of its interval (`margin_confidence_z`), ships (ties: the
    smaller margin). Empty: keep `deviation_margin`."""
    margin_confidence_z: float = 1.645
    """Standard errors of the paired per-workload ratios added to each scenario's ratio before
    the margins are compared (lsched.learn.margin): 1.645, a one-sided 95% bound under a normal
    approximation, as high-confidence policy improvement asks; 0 compares the ratios alone (the
    rule until 2026-12-07, which on 4 workloads picked a margin that lost held out)."""
    margin_seeds: int = 4
    """Validation workloads per scenario for `margin_grid` (from the validation range)."""
    margin_scenarios: tuple[str, ...] = ()
    """Scenarios `margin_grid` is judged on besides the training ones (their validation-range
    seeds): the margin guards decisions the policy never trained on, such as a batch where
    every query arrives at once, so it is best chosen where those happen too."""
    margin_max_queries: int | None = None
    """Queries of each `margin_grid` workload (None: all: the margin guards whole runs)."""
    query_margin_scenarios: tuple[str, ...] = ()
    """Scenarios the query-level form's deviation margin is chosen on (the form `lsched real`
    runs; e.g. the bundled `duckdb-*`), after `margin_grid`. Empty: the query-level form
    gates with the pipeline-level margin."""
    query_margin_grid: tuple[float, ...] = ()
    """The margins tried there, on `margin_seeds` whole validation workloads per scenario
    against the best baseline's query-level form; the same worst-case rule as `margin_grid`
    (the checkpoint's `query_deviation_margin`)."""
    time_limit_s: float | None = 1740.0
    """Stop (with a checkpoint) after this much training wall time, whatever `iterations` says:
    29 minutes, so the whole command (loading, the final files) stays within 30 on 2 cores."""
    guide: str | None = "tuned"
    """Heuristic whose current proposal the policy sees as an input (residual learning: the
    policy learns where to deviate from it). Stored in the checkpoint; None: no guide."""
    imitate: str | None = "tuned"
    """Warm start: before policy gradient, clone this agent's decisions (behaviour cloning) on
    training workloads, so RL starts from a good heuristic instead of random play. None: off."""
    init: str | None = None
    """Warm start from this policy file instead of cloning `imitate` ("lsched": the shipped
    policy), to fine-tune a trained policy on your own workload. Its network sizes, guide,
    `workload_features` and `scalability_features` must match this run's settings. Use a
    smaller `learning_rate` on one scenario: fine-tuning on tpch-streaming alone at 2e-4 went
    from -1.5% to +6.1% against the best baseline within 4 iterations, while 5e-5 improved
    validation steadily."""
    imitation_workloads: int = 2
    """Teacher episodes per scenario for the warm start."""
    imitation_epochs: int = 12
    """Passes over the teacher's decisions. Following the guide has to be learned before it
    pays: in the measured world the loss was 0.53 after 4 epochs (validation +0.4% on
    tpch-streaming) and 0.011 after 12 (-0.3%; the warm start took 187 s, teacher episodes
    included)."""
    imitation_learning_rate: float = 9e-4
    """Adam step size of behaviour cloning."""
    imitation_max_queries: int | None = 150
    """First queries of each teacher episode (None: all)."""
    limit_levels: int = 10
    """Parallelism levels of the limit head (agents.learned.policy.limit_for_level)."""
    hidden: int = 32
    """PolicyConfig.hidden: width of the hidden layers of every small MLP."""
    embed: int = 16
    """PolicyConfig.embed: width of pipeline, query and global embeddings."""
    rounds: int = 6
    """PolicyConfig.rounds: message-passing rounds along each plan DAG."""
    learn_batch_decisions: int = 512
    """Decisions per forward/backward chunk when a worker recomputes log-probabilities."""
    imitation_batch_size: int = 256
    """Teacher decisions per behaviour-cloning step."""
    imitation_seed_offset: int = 200
    """Teacher episodes run on training seeds offset + this + k (k < imitation_workloads)."""
    validation_seed_offset: int = 500
    """Validation runs on training seeds offset + this + k (k < eval_seeds): apart from the
    teacher's and from every rollout seed."""
    rollout_seed_offset: int = 1000
    """Rollout workloads and execution noise draw training seeds offset + this + [0, span):
    offset .. offset + this − 1 stay for tuning, imitation and validation."""
    rollout_seed_span: int = 1_000_000_000
    """How many rollout seeds there are to draw from (`rollout_seed_offset`)."""

    def entropy_weight(self, iteration: int) -> float:
        if self.entropy_decay_iterations <= 0:
            return self.entropy_end
        fraction = min(iteration / self.entropy_decay_iterations, 1.0)
        return self.entropy_start * (self.entropy_end / self.entropy_start) ** fraction

    def horizon_queries(self, iteration: int) -> float:
        if self.curriculum_iterations <= 0:
            return float(self.curriculum_end_queries)
        fraction = min(iteration / self.curriculum_iterations, 1.0)
        start, end = self.curriculum_start_queries, self.curriculum_end_queries
        return start + (end - start) * fraction


class TrainError(LschedError):
    """Training cannot start or resume as asked (bad settings, an unusable output folder)."""


ProgressCallback = Callable[[Mapping[str, Any]], None]
"""Called once per iteration with that iteration's metrics (the JSONL record)."""

METRICS_FILE = io.METRICS_FILE
"""The training folder's log, one record per iteration (named in lsched.io, which plots read)."""
CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
"""The policy with the best validation score so far (when evaluation is on)."""
POLICY_FILE = "policy.pt"
"""The final weights without optimizer state: what `lsched:PATH` loads."""

SEED_STREAM_GROUP = 11
SEED_STREAM_SAMPLE = 12
SEED_STREAM_IMITATION = 13
"""SeedSequence keys of a run's per-iteration streams (workload choice, policy sampling)."""


def check_config(config: TrainConfig) -> None:
    """Refuse a setting of the wrong type, out of range, or naming an agent that does not
    exist, in one message naming the field; run before anything is loaded or written."""
    hints = get_type_hints(TrainConfig)
    wrong = [
        f"{name} must be {_describe(hint)} (got {getattr(config, name)!r})"
        for name, hint in hints.items()
        if name in TrainConfig.__dataclass_fields__ and not _conforms(getattr(config, name), hint)
    ]
    if wrong:
        raise TrainError(f"train settings: {'; '.join(wrong)}")
    seed_floor = max(
        config.imitation_seed_offset + config.imitation_workloads,
        config.validation_seed_offset + max(config.eval_seeds, config.margin_seeds),
    )
    checks = {
        "seed": (config.seed >= 0, ">= 0"),
        "iterations": (
            config.iterations >= 1
            or (config.iterations == 0 and (config.init is not None or config.imitate is not None)),
            ">= 1 (0 only with init or imitate: a policy to ship)",
        ),
        "workloads_per_iteration": (config.workloads_per_iteration >= 1, ">= 1"),
        "rollouts_per_workload": (
            config.rollouts_per_workload >= 2,
            ">= 2 (each rollout is judged against its group's mean)",
        ),
        "workers": (config.workers >= 0, ">= 0 (0: one per core)"),
        "learning_rate": (config.learning_rate > 0, "> 0"),
        "max_grad_norm": (config.max_grad_norm > 0, "> 0"),
        "imitation_learning_rate": (config.imitation_learning_rate > 0, "> 0"),
        "checkpoint_every": (config.checkpoint_every >= 1, ">= 1"),
        "eval_every": (config.eval_every >= 0, ">= 0 (0: no validation)"),
        "eval_seeds": (config.eval_seeds >= 1, ">= 1"),
        "eval_max_queries": (
            config.eval_max_queries is None or config.eval_max_queries >= 1,
            ">= 1 or null",
        ),
        "curriculum_start_queries": (config.curriculum_start_queries >= 1, ">= 1"),
        "curriculum_end_queries": (
            config.curriculum_end_queries >= config.curriculum_start_queries,
            f">= curriculum_start_queries ({config.curriculum_start_queries})",
        ),
        "curriculum_iterations": (config.curriculum_iterations >= 0, ">= 0"),
        "entropy_start": (config.entropy_start > 0, "> 0"),
        "entropy_end": (config.entropy_end > 0, "> 0"),
        "entropy_decay_iterations": (config.entropy_decay_iterations >= 0, ">= 0"),
        "horizon_jitter": (0 <= config.horizon_jitter < 1, "in [0, 1)"),
        "episode_end": (config.episode_end in EPISODE_ENDS, f"one of {', '.join(EPISODE_ENDS)}"),
        "time_limit_s": (config.time_limit_s is None or config.time_limit_s > 0, "> 0 or null"),
        "imitation_workloads": (config.imitation_workloads >= 1, ">= 1"),
        "imitation_epochs": (config.imitation_epochs >= 0, ">= 0"),
        "imitation_max_queries": (
            (config.imitation_max_queries is None or config.imitation_max_queries >= 1),
            ">= 1 or null",
        ),
        "imitation_batch_size": (config.imitation_batch_size >= 1, ">= 1"),
        "limit_levels": (2 <= config.limit_levels <= MAX_NETWORK_SIZE, f"in 2..{MAX_NETWORK_SIZE}"),
        "hidden": (1 <= config.hidden <= MAX_NETWORK_SIZE, f"in 1..{MAX_NETWORK_SIZE}"),
        "embed": (1 <= config.embed <= MAX_NETWORK_SIZE, f"in 1..{MAX_NETWORK_SIZE}"),
        "rounds": (0 <= config.rounds <= MAX_NETWORK_SIZE, f"in 0..{MAX_NETWORK_SIZE}"),
        "learn_batch_decisions": (config.learn_batch_decisions >= 1, ">= 1"),
        "imitation_seed_offset": (config.imitation_seed_offset >= 0, ">= 0"),
        "validation_seed_offset": (config.validation_seed_offset >= 0, ">= 0"),
        "rollout_seed_offset": (
            config.rollout_seed_offset >= seed_floor,
            f">= {seed_floor}: past the imitation and validation seeds "
            "(imitation_seed_offset + imitation_workloads, validation_seed_offset + "
            "max(eval_seeds, margin_seeds))",
        ),
        "deviation_margin": (config.deviation_margin >= 0, ">= 0"),
        "margin_grid": (all(m >= 0 for m in config.margin_grid), "a list of margins >= 0"),
        "margin_seeds": (config.margin_seeds >= 1, ">= 1"),
        "margin_confidence_z": (config.margin_confidence_z >= 0, ">= 0"),
        "margin_max_queries": (
            config.margin_max_queries is None or config.margin_max_queries >= 1,
            ">= 1 or null",
        ),
        "query_margin_grid": (
            all(m >= 0 for m in config.query_margin_grid),
            "a list of margins >= 0",
        ),
        "margin_scenarios": (
            all(isinstance(s, str) for s in config.margin_scenarios),
            "a list of scenario names or files",
        ),
        "query_margin_scenarios": (
            all(isinstance(s, str) for s in config.query_margin_scenarios),
            "a list of scenario names or files",
        ),
        "rollout_seed_span": (config.rollout_seed_span >= 1, ">= 1"),
    }
    bad = [
        f"{name} must be {rule} (got {getattr(config, name)!r})"
        for name, (ok, rule) in checks.items()
        if not ok
    ]
    if bad:
        raise TrainError(f"train settings: {'; '.join(bad)}")
    from agents.registry import AGENTS, PLUGIN_MODULES, is_known, known_agents, load_plugins

    load_plugins()  # a plugin's heuristic can guide
    if config.guide is not None and (
        config.guide not in AGENTS or config.guide.startswith(tuple(PLUGIN_MODULES))
    ):
        heuristics = ", ".join(sorted(n for n in AGENTS if not n.startswith("lsched")))
        raise TrainError(
            f"train settings: guide {config.guide!r} is not a heuristic agent "
            f"(choose one of {heuristics}, or null)"
        )
    named = [("imitate", config.imitate)] if config.imitate is not None else []
    named += [("baselines", name) for name in config.baselines]
    for field, name in named:
        if not is_known(name):
            raise TrainError(
                f"train settings: {field}: unknown agent {name!r}; known agents: "
                f"{', '.join(known_agents())}"
            )


def _conforms(value: Any, hint: Any) -> bool:
    """Whether `value` has the field type `hint` (bool is not a number; numbers are finite)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arm) for arm in get_args(hint))
    if origin is tuple:
        item = get_args(hint)[0]
        return isinstance(value, tuple) and all(_conforms(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in get_args(hint))
    if origin is tuple:
        return f"a list of {_ITEMS.get(get_args(hint)[0], 'values')}"
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number"}
    return names.get(hint, "a string" if hint is str else str(hint))


_ITEMS = {str: "strings", int: "integers", float: "numbers"}


def config_document(config: TrainConfig) -> dict[str, Any]:
    """The settings as plain data: what checkpoints record and `--resume` compares."""
    document = asdict(config)
    document["baselines"] = list(config.baselines)
    document["margin_scenarios"] = list(config.margin_scenarios)
    document["query_margin_scenarios"] = list(config.query_margin_scenarios)
    return document


RESUMABLE_DIFFERENCES = frozenset({"iterations", "workers", "time_limit_s", "eval_every"})
"""Settings a resumed run may change without changing what an iteration computes."""


def config_from_settings(items: Sequence[str], base: TrainConfig | None = None) -> TrainConfig:
    """A TrainConfig from `FIELD=VALUE` strings (VALUE as JSON, else a plain string).

    What `--set` on the command line feeds; unknown fields and bad values raise TrainError.
    """
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        fields_ = TrainConfig.__dataclass_fields__
        if key in fields_ and not sep:
            default = json.dumps(getattr(TrainConfig(), key))
            raise TrainError(f"train setting {item!r}: expected FIELD=VALUE, e.g. {key}={default}")
        if not sep or key not in fields_:
            problem = f"unknown field {key!r}" if sep else "expected FIELD=VALUE"
            raise TrainError(
                f"train setting {item!r}: {problem}; "
                f"{closest_hint(key, list(fields_))}FIELD is one of {', '.join(fields_)}"
            )
        settings[key] = setting_value(text)
    if isinstance(settings.get("baselines"), list):
        settings["baselines"] = tuple(settings["baselines"])
    for key in ("margin_grid", "query_margin_grid"):
        if isinstance(settings.get(key), list):
            settings[key] = tuple(
                float(m) if isinstance(m, int) and not isinstance(m, bool) else m
                for m in settings[key]
            )
    for key in ("margin_scenarios", "query_margin_scenarios"):
        if isinstance(settings.get(key), list):
            settings[key] = tuple(settings[key])
    for key in ("time_limit_s", "learning_rate", "imitation_learning_rate", "deviation_margin"):
        if isinstance(settings.get(key), int) and not isinstance(settings[key], bool):
            settings[key] = float(settings[key])
    try:
        config = replace(base or TrainConfig(), **settings)
    except TypeError as error:
        raise TrainError(f"train settings: {error}") from None
    check_config(config)
    return config
