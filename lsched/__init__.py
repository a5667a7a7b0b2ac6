"""lsched: workloads, scenarios, the Gymnasium environment, the runner, the CLI and plots.

Composes the simulator (`sim`) and the schedulers (`agents`); imports point that way only.
Start with `lsched run tpch-streaming` or `lsched.scenario.load_scenario`.
"""

ENV_ID = "lsched/QueryScheduling-v0"


def register_env() -> None:
    """`import lsched` makes the environment known to gymnasium.make, without importing it yet."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="lsched.env.core:QuerySchedulingEnv")


register_env()
