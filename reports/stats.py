"""Statistics for a fair comparison, from scipy, statsmodels and scikit-posthocs (nothing hand-rolled
beyond gluing them together). Every function takes a long pandas DataFrame with one row per run:
``block`` (a protocol: task, options and budget), ``model``, ``seed``, ``value`` (the headline metric),
so it does not depend on how the report groups runs.

Per block:
- mean and a 95% confidence interval over seeds: ``scipy.stats.bootstrap`` (percentile method);
- the best model (by mean) against each other model: Welch's two-sided t-test
  (``scipy.stats.ttest_ind(equal_var=False)``), Holm-corrected over the comparisons of that block
  (``statsmodels.stats.multitest.multipletests(method="holm")``). Welch rather than Mann-Whitney U:
  with 3 seeds per model the smallest two-sided Mann-Whitney p-value is 0.1, so it could never
  separate anything; Welch does not assume equal variances across models.
Across blocks (Demšar, "Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7, 2006):
the Friedman test on per-block mean ranks (``scipy.stats.friedmanchisquare``), the Nemenyi post-hoc
test (``scikit_posthocs.posthoc_nemenyi_friedman``) and a critical-difference diagram
(``scikit_posthocs.critical_difference_diagram``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
TEST = "Welch's t-test (two-sided), Holm-corrected"


def _ci(x: np.ndarray, confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    if len(x) < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:  # every seed agrees: the interval is that value
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _welch(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no variance anywhere: the t statistic is undefined
        return 1.0 if a[0] == b[0] else math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def per_block(df: pd.DataFrame, higher: dict[str, bool] | bool = True, alpha: float = ALPHA,
              confidence: float = CONFIDENCE, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (block, model): n, mean, std, ci_low, ci_high, best, p_value (against the best
    model), p_holm, significant (True: worse than the best beyond seed noise; None: not testable)."""
    from statsmodels.stats.multitest import multipletests

    out = []
    for block, d in df.dropna(subset=["value"]).groupby("block", sort=True):
        hi = higher if isinstance(higher, bool) else higher.get(block, True)
        samples = {m: np.sort(g["value"].to_numpy(float)) for m, g in d.groupby("model", sort=True)}
        means = {m: float(np.mean(x)) for m, x in samples.items()}
        best = (max if hi else min)(means, key=means.get)  # ties: the first name
        rows = []
        for m, x in samples.items():
            low, high = _ci(x, confidence, n_resamples, seed)
            rows.append({"block": block, "model": m, "n": len(x), "mean": means[m],
                         "std": float(np.std(x, ddof=1)) if len(x) > 1 else math.nan,
                         "ci_low": low, "ci_high": high, "best": m == best,
                         "p_value": math.nan if m == best else _welch(samples[best], x)})
        tested = [r for r in rows if not r["best"] and not math.isnan(r["p_value"])]
        if tested:
            reject, p_holm, _, _ = multipletests([r["p_value"] for r in tested], alpha=alpha, method="holm")
            for r, rej, p in zip(tested, reject, p_holm):
                r["p_holm"], r["significant"] = float(p), bool(rej)
        for r in rows:
            r.setdefault("p_holm", math.nan)
            r.setdefault("significant", None)
        order = sorted(rows, key=lambda r: (-r["mean"] if hi else r["mean"], r["model"]))
        for rank, r in enumerate(order, 1):
            r["rank"] = rank
        out += order
    cols = ["block", "model", "n", "mean", "std", "ci_low", "ci_high", "rank", "best", "p_value", "p_holm",
            "significant"]
    return pd.DataFrame(out, columns=cols)


def _names(models: list[str]) -> str:
    return models[0] if len(models) == 1 else ", ".join(models[:-1]) + " and " + models[-1]


def sentence(block: pd.DataFrame, alpha: float = ALPHA) -> str:
    """One plain sentence on one block's ``per_block`` rows."""
    if block.empty:
        return "No finished runs."
    n = int(block["n"].min())
    best = block.loc[block["best"], "model"].iloc[0]
    if len(block) == 1:
        return f"Only {best} has finished runs here; there is nothing to compare."
    if n < 2:
        return (f"{best} has the best mean, but with one seed per model no ranking here is significant: "
                "run several seeds (e.g. --seeds 0-2) for confidence intervals and tests.")
    others = block[~block["best"]]
    tied = others[others["significant"] != True]["model"].tolist()  # noqa: E712 (None counts as tied)
    worse = others[others["significant"] == True]["model"].tolist()  # noqa: E712
    seeds = f"{n} seeds" if block["n"].nunique() == 1 else f"{n}-{int(block['n'].max())} seeds"
    how = f"{TEST}, alpha={alpha}"
    if not tied:
        return f"{best} is better than every other model at {seeds} ({how})."
    if not worse:
        return f"{best} has the best mean, but no model is distinguishable from it at {seeds} ({how})."
    return (f"{best} has the best mean; {_names(tied)} {'is' if len(tied) == 1 else 'are'} not distinguishable "
            f"from it at {seeds}, and the other {len(worse)} {'is' if len(worse) == 1 else 'are'} worse ({how}).")


@dataclass(frozen=True)
class RankTest:
    """Friedman test over blocks with the Nemenyi post-hoc test (Demšar 2006)."""

    ranks: pd.Series  # mean rank per model, 1 = best
    n_blocks: int
    statistic: float
    p_value: float
    nemenyi: pd.DataFrame  # pairwise p-values
    cd: float  # Nemenyi critical difference in mean rank at alpha
    alpha: float
    models_left_out: tuple[str, ...]

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def sentence(self) -> str:
        k = len(self.ranks)
        head = (f"Friedman test over {self.n_blocks} protocols and {k} models: chi2 = {self.statistic:.2f}, "
                f"p = {self.p_value:.3g}; Nemenyi critical difference {self.cd:.2f} mean ranks (alpha={self.alpha}).")
        if not self.significant:
            return head + " The models' ranks are not distinguishable across these protocols."
        return head + (f" {self.ranks.index[0]} ranks best (mean rank {self.ranks.iloc[0]:.2f}); "
                       "models joined by a bar in the diagram are not distinguishable.")


def rank_test(df: pd.DataFrame, higher: dict[str, bool] | bool = True, alpha: float = ALPHA) -> RankTest | None:
    """Friedman + Nemenyi on the per-block means; None when there are fewer than 2 blocks or 3 models
    with results in every block."""
    import scikit_posthocs as sp

    means = df.dropna(subset=["value"]).groupby(["block", "model"])["value"].mean().unstack("model")
    for block in means.index:  # rank 1 = best: flip blocks where lower is better
        if not (higher if isinstance(higher, bool) else higher.get(block, True)):
            means.loc[block] = -means.loc[block]
    complete = means.dropna(axis=1)
    left_out = tuple(sorted(set(means.columns) - set(complete.columns)))
    n, k = complete.shape
    if n < 2 or k < 3:
        return None
    stat, p = stats.friedmanchisquare(*[complete[m].to_numpy() for m in complete.columns])
    ranks = complete.rank(axis=1, ascending=False).mean().sort_values()
    nemenyi = sp.posthoc_nemenyi_friedman(complete.to_numpy())
    nemenyi.index = nemenyi.columns = complete.columns
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)  # Demšar 2006, section 3.2.2
    cd = q * math.sqrt(k * (k + 1) / (6 * n))
    return RankTest(ranks, n, float(stat), float(p), nemenyi, float(cd), alpha, left_out)


def cd_diagram(test: RankTest, path, title: str = "") -> None:
    """The critical-difference diagram (scikit-posthocs): mean ranks on an axis, bars joining models
    the Nemenyi test does not separate."""
    import matplotlib.pyplot as plt
    import scikit_posthocs as sp

    fig, ax = plt.subplots(figsize=(9, 0.28 * len(test.ranks) + 1.6))
    sp.critical_difference_diagram(test.ranks, test.nemenyi, ax=ax, alpha=test.alpha)
    ax.set_title(title or f"mean rank over {test.n_blocks} protocols (1 = best); Friedman p = {test.p_value:.3g}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
