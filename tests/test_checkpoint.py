"""A checkpoint is checked before it is used: its size before it is read, its metadata's
types and the network's sizes before anything is allocated, its weights for NaN and inf."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned import checkpoint as checkpoints
from agents.learned.agent import ObservationLimits, feature_sizes
from agents.learned.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    load_checkpoint,
    save_checkpoint,
    weights_digest,
)
from agents.learned.policy import Policy, PolicyConfig


def _saved(tmp_path: Path) -> tuple[Path, dict]:
    sizes = feature_sizes()
    policy = Policy(PolicyConfig(sizes.pipeline, sizes.query, sizes.global_, hidden=8, embed=4))
    info = CheckpointInfo(
        FEATURE_SCHEMA_VERSION, policy.config, ObservationLimits().to_dict(), ("tiny",), 3
    )
    path = save_checkpoint(tmp_path / "p.pt", policy, info)
    return path, torch.load(path, weights_only=True)


def _refused(path: Path, document: dict, problem: str) -> None:
    torch.save(document, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, FEATURE_SCHEMA_VERSION)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_a_huge_network_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path, document = _saved(tmp_path)
    document["policy_config"]["hidden"] = 10**9  # building it would need terabytes
    started = time.perf_counter()
    _refused(path, document, "policy_config.hidden: must be an integer in 1..4096")
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("policy_config", {"hidden": 8}, "missing ['global_features', 'pipeline_features'"),
        ("policy_config", "big", "policy_config: missing or not a mapping"),
        ("iterations", "3", "iterations: must be an integer >= 0"),
        ("iterations", True, "iterations: must be an integer >= 0"),
        ("scenarios", [1, 2], "scenarios: must be a list of names"),
        ("observation_limits", {"max_queries": -1}, "observation_limits: must be a mapping"),
        ("git_revision", 7, "git_revision: must be text or null"),
    ],
)
def test_metadata_of_the_wrong_type_is_refused(
    tmp_path: Path, field: str, value: object, problem: str
) -> None:
    path, document = _saved(tmp_path)
    document[field] = value
    _refused(path, document, problem)


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    path, document = _saved(tmp_path)
    name = next(n for n, t in document["state_dict"].items() if t.is_floating_point())
    document["state_dict"][name] = document["state_dict"][name].clone()
    document["state_dict"][name].view(-1)[0] = float("nan")
    document["weights_sha256"] = weights_digest(document["state_dict"])  # a consistent file
    _refused(path, document, f"state_dict.{name}: non-finite weights")


def test_a_file_larger_than_any_checkpoint_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = _saved(tmp_path)
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", path.stat().st_size - 1)
    with pytest.raises(CheckpointError, match="more than a checkpoint may hold"):
        load_checkpoint(path, FEATURE_SCHEMA_VERSION)


def test_the_shipped_policy_passes_every_check() -> None:
    from agents.learned.agent import INPUT_VERSION
    from agents.learned.factory import PRETRAINED

    policy, info, _ = load_checkpoint(PRETRAINED, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    assert all(torch.isfinite(p).all() for p in policy.parameters())
    # Trained by policy gradient (pretrained/README.md), then its deviation margin chosen by a
    # run of 0 iterations that starts from it: the file records that second run's choice.
    assert info.guide == "tuned" and info.deviation_margin == info.extra["margin"]["chosen"]
