"""What a finished training run ships, in a few lines: `lsched train` prints them, so that a
policy that would lose to the best baseline is not handed over with only its file name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUGGESTED_MARGINS = "[0.5,1,2,4,8,16]"
"""The margin grid the shipped policy's margins were chosen from (pretrained/README.md)."""


def training_summary(metrics_path: Path) -> list[str]:
    """The shipped policy's validation against the best baseline per scenario (its margin's,
    when `margin_grid` chose one; else the best-validated iteration's), and a warning naming
    the scenarios where it is above that baseline."""
    records = _records(metrics_path)
    evaluated = [r for r in records if isinstance(r.get("eval"), dict) and "eval_score" in r]
    margins = [r["margin"] for r in records if isinstance(r.get("margin"), dict)]
    if margins:
        report = margins[-1]
        chosen = report["chosen"]
        # keys are the margins as text: 16.0 from the command line, 16 from a config in code
        rows = {float(key): row for key, row in report["margins"].items()}
        row = rows.get(float(chosen), {})
        vs_best = dict(row.get("vs_best", {}))
        where = f"deviation margin {chosen:g}, chosen on {report['seeds']} validation workloads"
    elif evaluated:
        best = min(evaluated, key=lambda r: r["eval_score"])
        vs_best = {name: e["vs_best"] for name, e in best["eval"].items() if "vs_best" in e}
        where = f"iteration {best['iteration']}, the best validated"
    else:
        return ["no validation in this run (eval_every=0): nothing to compare it with"]
    figures = ", ".join(f"{name} {100 * ratio:+.2f}%" for name, ratio in vs_best.items())
    lines = [f"validation against the best baseline ({where}): {figures}"]
    losing = [name for name, ratio in vs_best.items() if ratio > 0]
    if losing:
        lines.append(
            f"warning: above the best baseline on {', '.join(losing)}; "
            + (
                "no margin in the grid was surely better"
                if margins
                else f"--set 'margin_grid={SUGGESTED_MARGINS}' lets it follow its guide "
                "where deviating is not surely better (the shipped policy's rule)"
            )
        )
    return lines


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
