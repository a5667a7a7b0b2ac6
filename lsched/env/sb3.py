"""A slot-scoring policy for Stable-Baselines3 (needs stable-baselines3 / sb3-contrib).

SB3's default MultiInputPolicy flattens the observation into one MLP whose output unit for
action slot i must learn, on its own, which of the 11,000 inputs describe slot i: a
position-indexed mapping that 400k steps of MaskablePPO do not find (bench_sb3: the sampled
policy ties with random). This extractor scores every slot with one shared network over
that slot's own features (its pipeline's, its query's and the global ones) — the weight
sharing Decima's and LSched's policies get from their graph networks — so what is learned
about one slot holds for every slot.

    model = MaskablePPO(SlotScoringPolicy, env)

Its output is the action's logits (slot scores, WAIT, thread choices), which the policy's
action head then only maps linearly; the critic reads the same per-slot summary.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class SlotScoringExtractor(BaseFeaturesExtractor):
    """Per-slot scores from a shared MLP; WAIT and thread-choice logits from the global
    features and the mean of the existing slots' inputs."""

    def __init__(self, observation_space: gym.spaces.Dict, hidden: int = 32) -> None:
        queries = observation_space["query_mask"].shape[0]
        slots = observation_space["pipeline_mask"].shape[0]
        choices = observation_space["action_mask"].shape[0] - slots - 1
        super().__init__(observation_space, features_dim=slots + 1 + choices)
        self.queries, self.pipelines = queries, slots // queries
        self.pipeline_width = observation_space["pipelines"].shape[0] // slots
        self.query_width = observation_space["queries"].shape[0] // queries
        self.global_width = observation_space["global"].shape[0] + 1  # + waiting
        width = self.pipeline_width + self.query_width + self.global_width + 1  # + schedulable
        self.score = nn.Sequential(
            nn.Linear(width, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        self.rest = nn.Sequential(
            nn.Linear(self.global_width + width, hidden), nn.Tanh(), nn.Linear(hidden, 1 + choices)
        )

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = obs["pipelines"].shape[0]
        q, p = self.queries, self.pipelines
        pipes = obs["pipelines"].reshape(batch, q, p, self.pipeline_width)
        query = obs["queries"].reshape(batch, q, 1, self.query_width).expand(-1, -1, p, -1)
        glob = torch.cat([obs["global"], obs["waiting"]], dim=-1)
        glob_slots = glob.reshape(batch, 1, 1, -1).expand(-1, q, p, -1)
        ready = obs["schedulable"].float().reshape(batch, q, p, 1)
        slots = torch.cat([pipes, query, glob_slots, ready], dim=-1)
        scores = self.score(slots).reshape(batch, q * p)
        exists = obs["pipeline_mask"].float().reshape(batch, q * p, 1)
        pooled = (slots.reshape(batch, q * p, -1) * exists).sum(1) / exists.sum(1).clamp(min=1.0)
        return torch.cat([scores, self.rest(torch.cat([glob, pooled], dim=-1))], dim=-1)


class SlotScoringPolicy(MaskableMultiInputActorCriticPolicy):
    """MaskablePPO's policy with SlotScoringExtractor: the extractor's output is the logits.

    The actor's head is the identity (a dense layer over the slot scores would mix slots by
    position again, which is what the extractor exists to avoid), and the scores start near
    zero so the first policy is near-uniform over the offered actions, as SB3's is.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", SlotScoringExtractor)
        kwargs.setdefault("net_arch", {"pi": [], "vf": [64, 64]})
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()
        for extractor in {
            id(e): e for e in (self.features_extractor, self.pi_features_extractor)
        }.values():
            for head in (extractor.score[-1], extractor.rest[-1]):
                nn.init.orthogonal_(head.weight, gain=0.01)
                nn.init.zeros_(head.bias)
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
