"""Views of the scheduling environment's observation for agents that want another shape.

- `GraphObservation`: pipelines as graph nodes and dependencies as edges, for GNN agents.
- `FlatObservation`: one float vector plus the action mask, `{"observations", "action_mask"}`,
  the layout RLlib's action-masking RLModule and CleanRL-style loops read.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

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


class GraphObservation(gym.ObservationWrapper, RecordConstructorArgs):
    """Observation as a graph of the pipelines in the system, plus `global`, `waiting`,
    `pipeline_mask` and `action_mask`.

    Nodes are the pipelines in slot order (node i is the i-th set entry of the flat
    `pipeline_mask`, which maps it back to its action slot); an edge (u, v) says pipeline u is
    a parent of v, i.e. u must finish before v can start. Actions are unchanged.

    `padded=True` (the default) gives fixed-size arrays — `nodes` [N, F], `edge_links` [E, 2],
    `edges` [E, 1], with `node_count` and `edge_count` saying how many rows are real — so
    vector envs batch it (AsyncVectorEnv with its shared memory too); `graph_instance(obs)`
    cuts the real part out. `padded=False` gives gymnasium's `Graph` space (a GraphInstance
    of variable size), which AsyncVectorEnv only takes with `shared_memory=False`.
    """

    def __init__(self, env: gym.Env, padded: bool = True) -> None:
        RecordConstructorArgs.__init__(self, padded=padded)
        gym.ObservationWrapper.__init__(self, env)
        inner = env.observation_space
        assert isinstance(inner, spaces.Dict)
        base = env.unwrapped
        self._unflatten = base.unflatten  # type: ignore[attr-defined]
        self.padded = padded
        queries, pipelines = base.observation_shapes["pipeline_mask"]  # type: ignore[attr-defined]
        self.max_nodes = nodes = queries * pipelines
        self.max_edges = edges = queries * pipelines * (pipelines - 1) // 2
        bound = np.float32(FEATURE_BOUND)
        node_space = spaces.Box(-bound, bound, (len(NODE_FEATURES),), np.float32)
        edge_space = spaces.Box(0.0, 1.0, (len(EDGE_FEATURES),), np.float32)
        common = {
            "global": inner["global"],
            "waiting": inner["waiting"],
            "pipeline_mask": inner["pipeline_mask"],
            "action_mask": inner["action_mask"],
        }
        if not padded:
            graph = spaces.Graph(node_space=node_space, edge_space=edge_space)
            self.observation_space = spaces.Dict({"graph": graph, **common})
            return
        self.observation_space = spaces.Dict(
            {
                "nodes": spaces.Box(-bound, bound, (nodes, len(NODE_FEATURES)), np.float32),
                "node_count": spaces.Box(0, nodes, (1,), np.int64),
                "edge_links": spaces.Box(0, max(nodes - 1, 0), (edges, 2), np.int64),
                "edges": spaces.Box(0.0, 1.0, (edges, len(EDGE_FEATURES)), np.float32),
                "edge_count": spaces.Box(0, edges, (1,), np.int64),
                **common,
            }
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        arrays = self._unflatten(observation)
        mask = arrays["pipeline_mask"].astype(bool)
        rows, columns = np.nonzero(mask)
        pipelines = arrays["pipelines"][rows, columns]
        queries = arrays["queries"][rows]
        operators = arrays["operator"][rows, columns].astype(np.float32)[:, None]
        nodes = np.concatenate([pipelines, queries, operators], axis=1)
        node_of = np.cumsum(mask.reshape(-1)) - 1
        query, child, parent = np.nonzero(arrays["adjacency"])
        width = mask.shape[1]
        links = np.stack([node_of[query * width + parent], node_of[query * width + child]], axis=1)
        finished = PIPELINE_FEATURES.index("finished")
        edges = arrays["pipelines"][query, parent, finished][:, None].astype(np.float32)
        common = {
            "global": observation["global"],
            "waiting": observation["waiting"],
            "pipeline_mask": observation["pipeline_mask"],
            "action_mask": observation["action_mask"],
        }
        if not self.padded:
            graph = spaces.GraphInstance(nodes, edges, links.astype(np.int64))
            return {"graph": graph, **common}
        padded_nodes = np.zeros((self.max_nodes, len(NODE_FEATURES)), np.float32)
        padded_nodes[: len(nodes)] = nodes
        padded_links = np.zeros((self.max_edges, 2), np.int64)
        padded_links[: len(links)] = links
        padded_edges = np.zeros((self.max_edges, len(EDGE_FEATURES)), np.float32)
        padded_edges[: len(edges)] = edges
        return {
            "nodes": padded_nodes,
            "node_count": np.array([len(nodes)], np.int64),
            "edge_links": padded_links,
            "edges": padded_edges,
            "edge_count": np.array([len(links)], np.int64),
            **common,
        }


def graph_instance(observation: dict[str, Any]) -> spaces.GraphInstance:
    """The real (unpadded) graph of a padded `GraphObservation` observation."""
    nodes = int(np.asarray(observation["node_count"]).reshape(-1)[0])
    edges = int(np.asarray(observation["edge_count"]).reshape(-1)[0])
    links = observation["edge_links"][:edges]
    return spaces.GraphInstance(observation["nodes"][:nodes], observation["edges"][:edges], links)


class FlatObservation(gym.ObservationWrapper, RecordConstructorArgs):
    """`{"observations": every feature and mask as one float32 vector, "action_mask"}`.

    RLlib's action-masking RLModule (and most hand-written masked PPO loops) expect exactly
    these two keys; the vector is the env's keys in `observation_space` order, masks as 0/1.
    """

    def __init__(self, env: gym.Env) -> None:
        RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        inner = env.observation_space
        assert isinstance(inner, spaces.Dict)
        self._keys = [key for key in inner.spaces if key != "action_mask"]
        size = sum(int(np.prod(inner[key].shape)) for key in self._keys)
        bound = np.float32(FEATURE_BOUND)
        self.observation_space = spaces.Dict(
            {
                "observations": spaces.Box(-bound, bound, (size,), np.float32),
                "action_mask": spaces.Box(0.0, 1.0, inner["action_mask"].shape, np.float32),
            }
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        flat = np.concatenate([observation[key].astype(np.float32) for key in self._keys])
        return {"observations": flat, "action_mask": observation["action_mask"].astype(np.float32)}
