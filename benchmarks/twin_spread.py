"""The seed-spread comparison the twin checks share: training-loss checkpoints of the reference code
and of the suite, each over several seeds, compared by mean and standard deviation."""

from __future__ import annotations

import statistics


def checkpoints(steps: int, every: int) -> list[int]:
    """0-based steps whose loss is kept: the first, every ``every``-th, and the last."""
    return sorted({0, *range(every - 1, steps, every), steps - 1})


def spread_rows(marks: list[int], reference: list[list[float]], suite: list[list[float]], name: str) -> list[dict]:
    """Per checkpoint, the mean and standard deviation over seeds of each side's loss (``reference`` and
    ``suite``: one list of losses at ``marks`` per seed), keyed ``{name}_mean`` / ``{name}_std`` for the
    reference, and whether the means lie within the larger of the two standard deviations."""
    rows = []
    for i, m in enumerate(marks):
        a = [c[i] for c in reference]
        s = [c[i] for c in suite]
        ma, sa, ms, ss = statistics.fmean(a), statistics.stdev(a), statistics.fmean(s), statistics.stdev(s)
        rows.append({"step": m + 1, f"{name}_mean": ma, f"{name}_std": sa, "suite_mean": ms, "suite_std": ss,
                     "within_spread": abs(ma - ms) <= max(sa, ss)})
    return rows
