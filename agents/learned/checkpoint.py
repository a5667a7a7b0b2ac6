"""Policy checkpoints: weights plus what they were trained for, in a file `weights_only` can load.

A checkpoint is a dict of tensors and plain types (no pickled classes), so
`torch.load(path, weights_only=True)` reads it without running foreign code. Besides the
weights it records the feature schema version the policy was trained on (a policy fed
features laid out differently would decide nonsense, so a mismatch is refused), the policy's
sizes, the observation limits, the training scenarios and iterations, and the git revision.
A training checkpoint adds a `training` entry (optimizer and RNG states) to resume from.
Writes are atomic: a crash leaves the previous file, never half of a new one.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents.context import AgentError
from agents.learned.policy import Policy, PolicyConfig

FORMAT = "lsched-policy"
"""The `format` entry that marks a file as ours."""
FORMAT_VERSION = 1
"""Layout of the checkpoint dict itself (not of the features); bumped on incompatible change."""
MAX_CHECKPOINT_BYTES = 256 * 2**20
"""Largest file `read_document` reads (the shipped policy is 92 KB, a training checkpoint with
its optimizer state a few times that): a bound before anything is read into memory."""
MAX_NETWORK_SIZE = 4096
"""Largest width, feature count, limit-level count or round count a checkpoint's
`policy_config` may declare: checked before the network is built (allocated)."""
_SIZE_FLOORS = {"limit_levels": 2, "rounds": 0}
"""Smallest value of a `policy_config` entry (1 for the others)."""


class CheckpointError(AgentError):
    """A checkpoint that cannot be used; the one-line message names the file and the problem."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything a checkpoint says besides its weights."""

    feature_schema_version: int
    policy_config: PolicyConfig
    observation_limits: Mapping[str, int]
    scenarios: tuple[str, ...]
    iterations: int
    git_revision: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Free-form plain data: training settings, wall time, final figures."""

    @property
    def guide(self) -> str | None:
        """The heuristic the policy was trained next to; None: unguided."""
        return self.extra.get("guide")

    @property
    def workload_features(self) -> bool:
        """Whether the policy read workload features (files from before the option did)."""
        return bool(self.extra.get("workload_features", True))

    @property
    def wait_only_with_guide(self) -> bool:
        """Whether the guided policy may WAIT only when its guide does."""
        return bool(self.extra.get("wait_only_with_guide", True))

    @property
    def scalability_features(self) -> bool:
        """Whether the policy read the scalability prior."""
        return bool(self.extra.get("scalability_features", True))

    @property
    def deviation_margin(self) -> float:
        """How much more the policy must prefer its action to override its guide (0: never
        gated; files from before the option were not)."""
        return float(self.extra.get("deviation_margin", 0.0))

    @property
    def query_deviation_margin(self) -> float:
        """The margin of the query-level form (chosen on query-level workloads,
        `TrainConfig.query_margin_grid`); files without one use `deviation_margin`."""
        return float(self.extra.get("query_deviation_margin", self.deviation_margin))


def save_checkpoint(
    path: str | Path,
    policy: Policy,
    info: CheckpointInfo,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write weights + `info` (+ optional training state) atomically; returns the path."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_schema_version": int(info.feature_schema_version),
        "policy_config": info.policy_config.to_dict(),
        "observation_limits": {k: int(v) for k, v in info.observation_limits.items()},
        "scenarios": list(info.scenarios),
        "iterations": int(info.iterations),
        "git_revision": info.git_revision,
        "extra": dict(info.extra),
        "state_dict": {k: v.detach().clone() for k, v in policy.state_dict().items()},
    }
    document["weights_sha256"] = weights_digest(document["state_dict"])
    if training is not None:
        document["training"] = dict(training)
    buffer = io.BytesIO()
    torch.save(document, buffer)
    return _atomic_write(Path(path), buffer.getvalue())


def load_checkpoint(
    path: str | Path,
    expected_schema_version: int | None = None,
    expected_input_version: int | None = None,
) -> tuple[Policy, CheckpointInfo, dict[str, Any]]:
    """(policy in eval mode, its info, the raw document) — or CheckpointError naming the file.

    `expected_schema_version` is the feature schema of the caller's encoder and
    `expected_input_version` the agent's own input transform (`extra.input_version`, absent
    counts as matching); a checkpoint trained on others is refused before its weights are
    read: its inputs would mean different things, and "retrain" says more than a shape error.
    """
    document = read_document(path)
    where = str(path)
    version = document.get("feature_schema_version")
    if expected_schema_version is not None and version != expected_schema_version:
        raise CheckpointError(
            f"{where}: feature_schema_version: trained on features version {version}, this "
            f"lsched encodes version {expected_schema_version}; retrain with `lsched train`"
        )
    extra = document.get("extra") or {}
    inputs = extra.get("input_version", expected_input_version) if isinstance(extra, dict) else None
    if expected_input_version is not None and inputs not in (None, expected_input_version):
        # (a malformed `extra` gives None here and is reported as metadata below)
        raise CheckpointError(
            f"{where}: input_version: trained on policy inputs version {inputs}, this lsched "
            f"builds version {expected_input_version}; retrain with `lsched train`"
        )
    info = _checked_info(document, where)
    config = info.policy_config
    weights = document.get("state_dict")
    if not isinstance(weights, dict) or document.get("weights_sha256") != weights_digest(weights):
        raise CheckpointError(f"{where}: state_dict: weights fail their checksum (corrupt file)")
    for name, value in weights.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{where}: state_dict.{name}: non-finite weights (NaN or inf)")
    policy = Policy(config)
    try:
        policy.load_state_dict(document["state_dict"])
    except (KeyError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise CheckpointError(
            f"{where}: state_dict: weights do not match policy_config ({first})"
        ) from None
    policy.eval()
    return policy, info, document


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_info(document: Mapping[str, Any], where: str) -> CheckpointInfo:
    """The metadata, every entry type-checked and the network's sizes bounded, before a
    single weight is used or a tensor allocated."""

    def fail(field: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{where}: {field}: {problem}")

    sizes = document.get("policy_config")
    fields = PolicyConfig.__dataclass_fields__
    if not isinstance(sizes, dict):
        raise fail("policy_config", "missing or not a mapping")
    unknown = sorted(set(map(str, sizes)) - set(fields))
    missing = sorted(n for n in ("pipeline_features", "query_features", "global_features")
                     if n not in sizes)  # fmt: skip
    if unknown or missing:
        raise fail("policy_config", f"unknown {unknown} / missing {missing} entries")
    for name, value in sizes.items():
        floor = _SIZE_FLOORS.get(name, 1)
        if not _is_int(value) or not floor <= value <= MAX_NETWORK_SIZE:
            raise fail(
                f"policy_config.{name}",
                f"must be an integer in {floor}..{MAX_NETWORK_SIZE} (got {value!r})",
            )
    version = document.get("feature_schema_version")
    limits = document.get("observation_limits")
    scenarios = document.get("scenarios")
    checks = {
        "feature_schema_version": (_is_int(version), "an integer"),
        "observation_limits": (
            isinstance(limits, dict)
            and all(isinstance(k, str) and _is_int(v) and v >= 0 for k, v in limits.items()),
            "a mapping of names to integers",
        ),
        "scenarios": (
            isinstance(scenarios, list | tuple) and all(isinstance(n, str) for n in scenarios),
            "a list of names",
        ),
        "iterations": (
            _is_int(document.get("iterations")) and document["iterations"] >= 0,
            "an integer >= 0",
        ),
        "git_revision": (isinstance(document.get("git_revision"), str | None), "text or null"),
        "extra": (isinstance(document.get("extra", {}), dict | None), "a mapping"),
    }
    for field_name, (ok, kind) in checks.items():
        if not ok:
            raise fail(field_name, f"must be {kind} (got {document.get(field_name)!r:.80})")
    return CheckpointInfo(
        feature_schema_version=int(version),  # type: ignore[arg-type]
        policy_config=PolicyConfig(**sizes),
        observation_limits=dict(limits),  # type: ignore[arg-type]
        scenarios=tuple(scenarios),  # type: ignore[arg-type]
        iterations=int(document["iterations"]),
        git_revision=document.get("git_revision"),
        extra=dict(document.get("extra") or {}),
    )


def read_document(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, checked to be ours; CheckpointError for anything else."""
    where = str(path)
    try:
        size = Path(path).stat().st_size
        if not Path(path).is_file():  # /dev/zero reads forever, a pipe blocks
            raise CheckpointError(f"{where}: not a regular file (a device, pipe or folder)")
        if size > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(
                f"{where}: {size} bytes, more than a checkpoint may hold "
                f"({MAX_CHECKPOINT_BYTES} bytes): not read"
            )
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{where}: no such checkpoint file") from None
    except OSError as error:
        raise CheckpointError(f"{where}: cannot read: {error.strerror or error}") from None
    if not data:
        raise CheckpointError(f"{where}: empty file, not a checkpoint")
    if not data.startswith(b"PK"):
        raise CheckpointError(f"{where}: not an lsched policy checkpoint (not a torch zip file)")
    try:
        document = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{where}: truncated or corrupt checkpoint ({problem[:160]})"
        ) from None
    except Exception as error:  # the unpickler raises assorted types on foreign content
        raise CheckpointError(
            f"{where}: not loadable with weights_only=True ({type(error).__name__})"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not an lsched policy checkpoint (no format={FORMAT!r})")
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format_version: {document.get('format_version')!r}, this lsched reads "
            f"{FORMAT_VERSION}"
        )
    return document


def weights_digest(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 over names and bytes of the weights: torch does not check its zip's CRCs."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        if not isinstance(value, torch.Tensor):
            return ""
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def git_revision(folder: str | Path | None = None) -> str | None:
    """The checkout's HEAD commit (with `+dirty` if modified), or None outside a git checkout."""
    cwd = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _atomic_write(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)  # mkstemp's 0600 would hide a shipped policy
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target
