"""A CleanRL-style single-file PPO with action masking, in plain PyTorch, on an lsched scenario.

    python examples/cleanrl_ppo.py --scenario tpch-streaming --steps 100000

What a researcher forks: every line of the algorithm is here. The env is gymnasium's vector
env of `gym.make(lsched.ENV_ID)` wrapped in `FlatObservation` ({"observations", "action_mask"});
the action is two categorical choices (pipeline slot, threads to add), each masked by its part
of the flat mask, so the policy never samples an action the env would not offer.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import lsched
from lsched.arguments import positive_int, scenario_argument
from lsched.env import FlatObservation


class Agent(nn.Module):
    def __init__(self, obs_size: int, nvec: list[int], hidden: int = 64) -> None:
        super().__init__()
        self.nvec = nvec
        self.critic = nn.Sequential(
            nn.Linear(obs_size, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        self.actor = nn.Sequential(
            nn.Linear(obs_size, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, sum(nvec)),
        )

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def act(
        self, obs: torch.Tensor, mask: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-prob, entropy, value); masked logits are -inf-like, never sampled."""
        logits = self.actor(obs).masked_fill(mask == 0, -1e8)
        dists = [
            torch.distributions.Categorical(logits=part, validate_args=False)
            for part in torch.split(logits, self.nvec, dim=-1)
        ]
        if action is None:
            action = torch.stack([d.sample() for d in dists], dim=-1)
        logp = sum(d.log_prob(action[:, i]) for i, d in enumerate(dists))
        entropy = sum(d.entropy() for d in dists)
        return action, logp, entropy, self.value(obs)


def make_env(scenario: str) -> Callable[[], gym.Env]:
    return lambda: FlatObservation(gym.make(lsched.ENV_ID, scenario=scenario))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="tpch-streaming", type=scenario_argument)
    parser.add_argument("--steps", type=positive_int, default=100_000)
    parser.add_argument("--envs", type=positive_int, default=8)
    parser.add_argument(
        "--n-steps", type=positive_int, default=128, help="steps per env per update"
    )
    parser.add_argument("--lr", type=float, default=2.5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gamma, lam, clip, epochs, minibatches, ent_coef, vf_coef = 0.99, 0.95, 0.2, 4, 4, 0.01, 0.5

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    envs = gym.vector.SyncVectorEnv([make_env(args.scenario) for _ in range(args.envs)])
    obs_size = envs.single_observation_space["observations"].shape[0]
    nvec = [int(n) for n in envs.single_action_space.nvec]
    agent = Agent(obs_size, nvec)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)

    shape = (args.n_steps, args.envs)
    buf_obs = torch.zeros((*shape, obs_size))
    buf_mask = torch.zeros((*shape, sum(nvec)))
    buf_act = torch.zeros((*shape, 2), dtype=torch.long)
    buf_logp, buf_rew, buf_done, buf_val = (torch.zeros(shape) for _ in range(4))

    raw, _ = envs.reset(seed=args.seed + 1_000_000)  # training seeds, away from 0..
    obs, mask = torch.tensor(raw["observations"]), torch.tensor(raw["action_mask"])
    done = torch.zeros(args.envs)
    updates = max(1, args.steps // (args.n_steps * args.envs))
    episode_returns: list[float] = []
    running = np.zeros(args.envs)
    for _ in range(updates):
        for t in range(args.n_steps):
            buf_obs[t], buf_mask[t], buf_done[t] = obs, mask, done
            with torch.no_grad():
                action, logp, _, value = agent.act(obs, mask)
            buf_act[t], buf_logp[t], buf_val[t] = action, logp, value
            raw, reward, terminated, truncated, _ = envs.step(action.numpy())
            running += reward
            ended = terminated | truncated
            episode_returns += running[ended].tolist()
            running[ended] = 0.0
            buf_rew[t] = torch.tensor(reward, dtype=torch.float32)
            obs, mask = torch.tensor(raw["observations"]), torch.tensor(raw["action_mask"])
            done = torch.tensor(ended, dtype=torch.float32)
        with torch.no_grad():  # generalised advantage estimation
            advantages = torch.zeros(shape)
            next_value, last = agent.value(obs), torch.zeros(args.envs)
            for t in reversed(range(args.n_steps)):
                not_done = 1.0 - (done if t == args.n_steps - 1 else buf_done[t + 1])
                following = next_value if t == args.n_steps - 1 else buf_val[t + 1]
                delta = buf_rew[t] + gamma * following * not_done - buf_val[t]
                last = delta + gamma * lam * not_done * last
                advantages[t] = last
            returns = advantages + buf_val
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        b_obs, b_mask, b_act, b_logp = flat(buf_obs), flat(buf_mask), flat(buf_act), flat(buf_logp)
        b_adv, b_ret = flat(advantages), flat(returns)
        size = len(b_obs)
        for _ in range(epochs):
            for idx in torch.randperm(size).chunk(minibatches):
                _, logp, entropy, value = agent.act(b_obs[idx], b_mask[idx], b_act[idx])
                ratio = (logp - b_logp[idx]).exp()
                adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
                loss = policy_loss + vf_coef * ((value - b_ret[idx]) ** 2).mean()
                loss = loss - ent_coef * entropy.mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optimizer.step()
    envs.close()
    print(
        json.dumps(
            {
                "example": "cleanrl_ppo",
                "scenario": args.scenario,
                "steps": updates * args.n_steps * args.envs,
                "episodes_finished": len(episode_returns),
                "mean_episode_return": round(float(np.mean(episode_returns)), 3)
                if episode_returns
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()
