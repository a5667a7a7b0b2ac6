"""A graph view of the scheduling environment's observation, for graph (GNN) agents."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.features import PIPELINE_FEATURES, QUERY_FEATURES
from lsched.env.core import FEATURE_BOUND

NODE_FEATURES: tuple[str, ...] = (
    *PIPELINE_FEATURES,
    *(f"query_{name}" for name in QUERY_FEATURES),
    "operator",
)
"""Columns of a node: its pipeline's features, its query's features, then its operator id."""
EDGE_FEATURES: tuple[str, ...] = ("parent_finished",)
"""Columns of an edge parent -> child: 1 once the parent pipeline has finished."""


class GraphObservation(gym.ObservationWrapper):
    """Observation as `{"graph": GraphInstance, "global", "pipeline_mask", "action_mask"}`.

    Nodes are the pipelines in the system in slot order (node i is the i-th set entry of the
    flat `pipeline_mask`, which maps it back to its action slot); an edge (u, v) says pipeline
    u is a parent of v, i.e. u must finish before v can start. Actions are unchanged.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        inner = env.observation_space
        assert isinstance(inner, spaces.Dict)
        slots = int(np.prod(inner["pipeline_mask"].shape))
        unbounded = np.float32(FEATURE_BOUND)
        self.observation_space = spaces.Dict(
            {
                "graph": spaces.Graph(
                    node_space=spaces.Box(-unbounded, unbounded, (len(NODE_FEATURES),), np.float32),
                    edge_space=spaces.Box(0.0, 1.0, (len(EDGE_FEATURES),), np.float32),
                ),
                "global": inner["global"],
                "pipeline_mask": spaces.MultiBinary(slots),
                "action_mask": inner["action_mask"],
            }
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        mask = observation["pipeline_mask"].astype(bool)
        rows, columns = np.nonzero(mask)
        pipelines = observation["pipelines"][rows, columns]
        queries = observation["queries"][rows]
        operators = observation["operator"][rows, columns].astype(np.float32)[:, None]
        nodes = np.concatenate([pipelines, queries, operators], axis=1)
        node_of = np.cumsum(mask.reshape(-1)) - 1
        query, child, parent = np.nonzero(observation["adjacency"])
        width = mask.shape[1]
        links = np.stack([node_of[query * width + parent], node_of[query * width + child]], axis=1)
        finished = PIPELINE_FEATURES.index("finished")
        edges = observation["pipelines"][query, parent, finished][:, None].astype(np.float32)
        return {
            "graph": spaces.GraphInstance(nodes, edges, links.astype(np.int64)),
            "global": observation["global"],
            "pipeline_mask": mask.reshape(-1).astype(np.int8),
            "action_mask": observation["action_mask"],
        }
