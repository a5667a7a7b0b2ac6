"""What a run keeps between iterations and processes: checkpoint metadata, the warm start
from a trained policy, resuming a killed run, and the metrics log (plus TensorBoard)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned.agent import INPUT_VERSION, PolicyOptions
from agents.learned.checkpoint import CheckpointError, CheckpointInfo, git_revision, load_checkpoint
from agents.learned.factory import PRETRAINED
from agents.learned.policy import Policy, PolicyConfig
from lsched.io import atomic_write_text
from lsched.learn.config import RESUMABLE_DIFFERENCES, TrainConfig, config_document


def check_policy_config(path: Path, saved: PolicyConfig, run: PolicyConfig) -> None:
    """A file's weights fit this run's network only if every size matches; name those that don't."""
    theirs, ours = saved.to_dict(), run.to_dict()
    differ = [
        f"{key} {theirs[key]} (this run: {ours[key]})" for key in ours if theirs[key] != ours[key]
    ]
    if differ:
        raise CheckpointError(f"{path}: policy_config: {', '.join(differ)}; --set them to match")


def warm_start(config: TrainConfig, policy_config: PolicyConfig, policy: Policy) -> None:
    """Load `config.init`'s weights into `policy`, refusing a file this run could not continue."""
    assert config.init is not None
    path = PRETRAINED if config.init == "lsched" else Path(config.init)
    saved, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    check_policy_config(path, info.policy_config, policy_config)
    # what the weights were trained to read and do; the deviation margin is chosen after
    # training (margin_grid), so a run from them may change it
    trained = [f.name for f in fields(PolicyOptions) if f.name != "deviation_margin"]
    for key in ("guide", *trained):
        value = getattr(info, key)
        if value != getattr(config, key):
            raise CheckpointError(
                f"{path}: {key}: trained with {value!r}, this run has "
                f"{getattr(config, key)!r}; --set {key} to match"
            )
    policy.load_state_dict(saved.state_dict())


def checkpoint_info(
    policy_config: PolicyConfig,
    limits: Any,
    names: Sequence[str],
    iteration: int,
    config: TrainConfig,
    wall_s: float,
    baselines: Mapping[str, Any],
) -> CheckpointInfo:
    return CheckpointInfo(
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        policy_config=policy_config,
        observation_limits=limits.to_dict(),
        scenarios=tuple(names),
        iterations=iteration,
        git_revision=git_revision(),
        extra={
            "train_config": config_document(config),
            "train_wall_s": wall_s,
            **PolicyOptions.of(config).to_dict(),
            "guide": config.guide,
            "input_version": INPUT_VERSION,
        },
    )


def resume_state(
    path: Path,
    config: TrainConfig,
    names: Sequence[str],
    policy_config: PolicyConfig,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    saved, info, document = load_checkpoint(path, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    training = document.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(f"{path}: training: no optimizer state (a final policy, not a run)")
    check_policy_config(path, info.policy_config, policy_config)
    if tuple(info.scenarios) != tuple(names):
        raise CheckpointError(
            f"{path}: scenarios: trained on {', '.join(info.scenarios)}, asked {', '.join(names)}"
        )
    now = config_document(config)
    changed = sorted(
        key
        for key, value in training["config"].items()
        if now.get(key) != value and key not in RESUMABLE_DIFFERENCES
    )
    if changed:
        raise CheckpointError(f"{path}: config: resumed with different {', '.join(changed)}")
    policy.load_state_dict(saved.state_dict())
    optimizer.load_state_dict(training["optimizer"])
    torch.set_rng_state(training["torch_rng"])
    return {
        "iteration": int(training["iteration"]),
        "wall_s": float(training["wall_s"]),
        "baselines": training.get("baselines") or {},
    }


def truncate_metrics(path: Path, iteration: int) -> None:
    """Drop lines past the checkpoint: they will be recomputed, identically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by the kill: everything after it is gone anyway
        if record.get("iteration", 0) <= iteration and "margin" not in record:
            kept.append(line)  # the margin is chosen again after the last iteration
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def append_metrics(path: Path, record: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, allow_nan=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


BOARD_FOLDER = "tensorboard"
"""Where `Board` writes, inside a training run's folder."""


class Board:
    """TensorBoard scalars next to metrics.jsonl, only when tensorboard is installed."""

    def __init__(self, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the optional tensorboard package
            self._writer = None
        else:
            self._writer = SummaryWriter(str(out / BOARD_FOLDER))

    def write(self, record: Mapping[str, Any]) -> None:
        if self._writer is None:
            return
        step = int(record["iteration"])
        for key, value in record.items():
            if isinstance(value, int | float) and key != "iteration":
                self._writer.add_scalar(f"train/{key}", value, step)
        for scenario, entry in (record.get("eval") or {}).items():
            for key, value in entry.items():
                self._writer.add_scalar(f"eval/{scenario}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
