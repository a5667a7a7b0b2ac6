"""Train TorchRL's PPO (ClipPPOLoss, GAE, a data collector) on an lsched scenario.

    python examples/torchrl_ppo.py --scenario tpch-streaming --steps 100000

TorchRL's GymWrapper takes the env through `FlatObservation` ({"observations",
"action_mask"}) with integer (categorical) actions. The actor is TorchRL's
ProbabilisticActor over a two-part masked categorical (pipeline slot, threads to add), so
it only samples actions the env offers.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import GymWrapper
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import lsched
from lsched.arguments import positive_int, scenario_argument
from lsched.env import FlatObservation

NO_SHAPE = torch.Size()


class MaskedMultiCategorical(torch.distributions.Distribution):
    """Independent categoricals over the parts of `nvec`, logits masked by `mask`."""

    arg_constraints: dict = {}  # noqa: RUF012 - torch's convention

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor, nvec: tuple[int, ...]) -> None:
        logits = logits.masked_fill(mask == 0, -1e8)
        self.parts = [
            torch.distributions.Categorical(logits=part, validate_args=False)
            for part in torch.split(logits, list(nvec), dim=-1)
        ]
        super().__init__(batch_shape=logits.shape[:-1], validate_args=False)

    def sample(self, sample_shape: torch.Size = NO_SHAPE) -> torch.Tensor:
        return torch.stack([part.sample(sample_shape) for part in self.parts], dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(part.log_prob(value[..., i]) for i, part in enumerate(self.parts))

    def entropy(self) -> torch.Tensor:
        return sum(part.entropy() for part in self.parts)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return torch.stack([part.probs.argmax(-1) for part in self.parts], dim=-1)


def mlp(inputs: int, outputs: int, hidden: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, outputs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="tpch-streaming", type=scenario_argument)
    parser.add_argument("--steps", type=positive_int, default=100_000)
    parser.add_argument("--batch", type=positive_int, default=1024, help="env steps per update")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    base = FlatObservation(gym.make(lsched.ENV_ID, scenario=args.scenario))
    nvec = tuple(int(n) for n in base.action_space.nvec)
    env = GymWrapper(base, categorical_action_encoding=True)
    env.set_seed(args.seed + 1_000_000)  # training seeds, away from the held-out 0..
    size = env.observation_spec["observations"].shape[-1]
    actor = ProbabilisticActor(
        TensorDictModule(mlp(size, sum(nvec)), in_keys=["observations"], out_keys=["logits"]),
        in_keys={"logits": "logits", "mask": "action_mask"},
        distribution_class=MaskedMultiCategorical,
        distribution_kwargs={"nvec": nvec},
        spec=env.action_spec,
        return_log_prob=True,
    )
    critic = ValueOperator(mlp(size, 1), in_keys=["observations"])
    loss = ClipPPOLoss(actor, critic, entropy_coeff=0.01)
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-4)
    collector = Collector(
        env,
        actor,
        frames_per_batch=args.batch,
        total_frames=max(args.steps, args.batch),
        auto_register_policy_transforms=True,
    )
    rewards = []
    for batch in collector:
        with torch.no_grad():
            advantage(batch)
        flat = batch.reshape(-1)
        for _ in range(4):
            for index in torch.randperm(len(flat)).chunk(max(1, len(flat) // 64)):
                out = loss(flat[index])
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                optimizer.zero_grad()
                total.backward()
                nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
                optimizer.step()
        collector.update_policy_weights_()
        rewards.append(float(batch["next", "reward"].mean()))
    collector.shutdown()
    print(
        json.dumps(
            {
                "example": "torchrl_ppo",
                "scenario": args.scenario,
                "steps": len(rewards) * args.batch,
                "mean_step_reward_last_batch": round(rewards[-1], 4),
            }
        )
    )


if __name__ == "__main__":
    main()
