"""Statistics for a fair comparison, from scipy, statsmodels and scikit-posthocs. Every function takes a
long pandas DataFrame with one row per run: ``block`` (a protocol: task, options and budget), ``model``,
``seed``, ``value`` (the headline metric) and, optionally, ``status`` (``finished``, ``diverged``,
``failed``; missing means finished), so it does not depend on how the report groups runs.

Failure is data. A seed that diverged or failed keeps its place in its model's sample: its value is
the protocol's *floor*, the worse of the task's memoryless baseline (chance level for a classifier)
and the worst value any seed of any model finished with under that protocol. The floor is never
better than a finished seed, so a failure can only rank its model down. A finished run without a
finite headline value counts as diverged.

Per block:
- mean over seeds and a Student-t 95% confidence interval for it (exact for normal data at any
  n >= 2; a percentile bootstrap of 3 seeds returns their min-max and covers about 75%);
- the best model (by mean; ties go to the model with fewer failed seeds, then the name) against each
  other model: Welch's two-sided t-test (``scipy.stats.ttest_ind(equal_var=False)``); a pair in which
  neither model varies over its seeds has no t statistic, and gets the exact permutation test of the
  difference in means instead (``permutation_p``); every p-value is Holm-corrected over the
  comparisons of the block (``statsmodels.stats.multitest.multipletests(method="holm")``). Welch
  rather than Mann-Whitney U: with 3 seeds per model the smallest two-sided Mann-Whitney p is 0.1.
- one verdict per comparison (``VERDICTS``), from which both the table cell (``versus``) and the
  sentence under the table (``sentence``) are written.

Across blocks (Demšar, "Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7,
2006): the Friedman test on per-block mean ranks with the Iman-Davenport F (Iman & Davenport, 1980)
and, for fewer than 10 blocks, a within-block permutation p-value; the Nemenyi post-hoc test
(``scikit_posthocs.posthoc_nemenyi_friedman``) and a critical-difference diagram. Then the aggregate
of Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS
2021, arXiv:2108.13264v4): the interquartile mean of baseline-normalized scores with a stratified
bootstrap interval, and performance profiles (``iqm_profiles``).
"""

from __future__ import annotations

import gc
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
TEST = "Welch's t-test (two-sided), Holm-corrected"
PERMUTATION = "exact permutation test"
SCORED = ("finished", "diverged", "failed")  # statuses that count as seeds of a model; others are pending
FAILED = ("diverged", "failed")
POLICY = ("a diverged or failed seed is scored at the protocol's floor: the worse of the memoryless "
          "baseline and the worst value any model finished with")
PERMUTATIONS = 20000  # Monte-Carlo shuffles for the Friedman permutation p (standard error <= 0.0016 at p = 0.05)
PROFILE_REPS = 2000  # bootstrap samples for the performance profiles' bands (rliable's default)
SMALL_N = 10  # Demšar 2006: the Friedman chi-square approximation wants more than 10 blocks
# verdict of a model against the block's best, the one source of the table's cell and the sentence
VERDICTS = ("best", "worse", "apart", "not distinguishable", "identical", "not testable")


def t_interval(x, confidence: float = CONFIDENCE, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval for the mean along ``axis``, NaN-free input; NaN where n < 2; the value itself
    where every seed agrees."""
    x = np.asarray(x, float)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean - half, mean + half


def permutation_p(n_a: int, n_b: int, equal: bool) -> float:
    """Exact two-sided permutation p-value of the difference in means of two samples that do not vary
    (every value of a is c_a, every value of b is c_b), as ``scipy.stats.permutation_test`` defines it
    (twice the smaller one-sided p). Of the C(n_a + n_b, n_a) relabellings only the observed one puts
    every c_a in a, the most extreme difference: the one-sided p is 1 / C, so p = min(1, 2 / C); p = 1
    when c_a = c_b. Closed form, so any n costs nothing."""
    if equal:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def compare(best: np.ndarray, other: np.ndarray) -> tuple[str | None, float]:
    """(test, p) of ``other`` against ``best``: ("welch", p), ("permutation", p) for two samples without
    variance, ("identical", 1.0) for two equal constant samples, (None, nan) when either has one seed."""
    if len(best) < 2 or len(other) < 2:
        return None, math.nan
    if np.ptp(best) == 0 and np.ptp(other) == 0:
        same = best[0] == other[0]
        return ("identical" if same else "permutation"), permutation_p(len(best), len(other), same)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(best, other, equal_var=False).pvalue)
    if math.isnan(p):  # variances that underflow (differences near 1e-308): the exact test needs none
        return _permutation(best, other)
    return "welch", p


def _permutation(a: np.ndarray, b: np.ndarray) -> tuple[str | None, float]:
    """Exact two-sided permutation test of the difference in means (every relabelling enumerated; None
    past 100,000 of them)."""
    if math.comb(len(a) + len(b), len(a)) > 100_000:
        return None, math.nan
    res = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                 permutation_type="independent", vectorized=True, n_resamples=np.inf)
    return "permutation", float(min(1.0, res.pvalue))


def _higher(higher: dict[str, bool] | bool, block) -> bool:
    return higher if isinstance(higher, bool) else higher.get(block, True)


def floor(finished: np.ndarray, baseline: float | None, higher: bool) -> float:
    """The value a diverged or failed seed is scored at (see the module's docstring); NaN when the
    protocol has neither a baseline nor a finished value."""
    candidates = [float(v) for v in (*np.asarray(finished, float), baseline) if v is not None and np.isfinite(v)]
    if not candidates:
        return math.nan
    return min(candidates) if higher else max(candidates)


def score(df: pd.DataFrame, higher: dict[str, bool] | bool = True,
          baseline: dict[str, float | None] | None = None) -> pd.DataFrame:
    """The runs that count as seeds (status finished, diverged or failed), each with a ``value`` to rank
    by: its own when it finished with a finite value, the block's floor otherwise (``imputed``)."""
    df = df.copy()
    if "status" not in df:
        df["status"] = "finished"
    df = df[df["status"].isin(SCORED)].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    lost = (df["status"] == "finished") & ~np.isfinite(df["value"])
    df.loc[lost, "status"] = "diverged"  # a finished run without a finite value did not train
    df["imputed"] = df["status"] != "finished"
    df["floor"] = math.nan
    for block, d in df.groupby("block", sort=False):
        done = d.loc[~d["imputed"], "value"].to_numpy()
        f = floor(done, (baseline or {}).get(block), _higher(higher, block))
        df.loc[d.index, "floor"] = f
        df.loc[d.index[d["imputed"].to_numpy()], "value"] = f
    return df


def _row(block, model: str, d: pd.DataFrame, confidence: float) -> dict:
    x = np.sort(d["value"].to_numpy(float))
    counts = d["status"].value_counts()
    low, high = t_interval(x, confidence) if len(x) else (math.nan, math.nan)
    return {"block": block, "model": model, "n": len(x), "finished": int(counts.get("finished", 0)),
            "diverged": int(counts.get("diverged", 0)), "failed": int(counts.get("failed", 0)),
            "mean": float(np.mean(x)) if len(x) else math.nan,
            "std": float(np.std(x, ddof=1)) if len(x) > 1 else math.nan,
            "ci_low": float(low), "ci_high": float(high), "floor": float(d["floor"].iloc[0]), "_x": x}


def _every_seed(r: dict, best: dict, hi: bool) -> bool:
    """Whether every seed of ``r`` is worse than every seed of ``best``."""
    return bool(r["_x"].max() < best["_x"].min()) if hi else bool(r["_x"].min() > best["_x"].max())


def per_block(df: pd.DataFrame, higher: dict[str, bool] | bool = True, alpha: float = ALPHA,
              confidence: float = CONFIDENCE, baseline: dict[str, float | None] | None = None) -> pd.DataFrame:
    """One row per (block, model): n (seeds scored), finished / diverged / failed counts, mean, std,
    ci_low, ci_high (Student-t), rank, best, test, p_value (against the best model), p_holm,
    significant, verdict (one of ``VERDICTS``), every_seed (every seed worse than every seed of the
    best) and floor (the value a failed seed is scored at)."""
    out = []
    scored = score(df, higher, baseline)
    for block, d in scored.groupby("block", sort=True):
        hi = _higher(higher, block)
        rows = [_row(block, m, g, confidence) for m, g in d.groupby("model", sort=True)]
        if not sum(r["finished"] for r in rows):  # every seed diverged or failed: nothing to rank
            for r in rows:
                r.update(rank=math.nan, best=False, test=None, p_value=math.nan, p_holm=math.nan,
                         significant=None, verdict="not testable", every_seed=False)
            out += rows
            continue
        rows.sort(key=lambda r: (-r["mean"] if hi else r["mean"], r["diverged"] + r["failed"], r["model"]))
        best = rows[0]
        for rank, r in enumerate(rows, 1):
            r["rank"], r["best"] = rank, r is best
            r["test"], r["p_value"] = (None, math.nan) if r is best else compare(best["_x"], r["_x"])
            r["every_seed"] = r is not best and _every_seed(r, best, hi)
            r["p_holm"], r["significant"] = math.nan, None
        tested = [r for r in rows if r["test"] is not None]
        if tested:
            reject, p_holm = _holm([r["p_value"] for r in tested], alpha)
            for r, rej, p in zip(tested, reject, p_holm):
                r["p_holm"], r["significant"] = float(p), bool(rej)
        for r in rows:
            r["verdict"] = _classify(r)
        out += rows
    cols = ["block", "model", "n", "finished", "diverged", "failed", "mean", "std", "ci_low", "ci_high", "rank",
            "best", "test", "p_value", "p_holm", "significant", "verdict", "every_seed", "floor"]
    return pd.DataFrame(out, columns=cols)


def _holm(p_values: list[float], alpha: float):
    """Holm's step-down correction (statsmodels). Its Holm branch ends in gc.collect(), 0.15 s of CPU
    in a process holding torch and matplotlib; with the heap frozen the collection has nothing to scan."""
    from statsmodels.stats.multitest import multipletests

    gc.freeze()
    try:
        reject, p_holm, _, _ = multipletests(p_values, alpha=alpha, method="holm")
    finally:
        gc.unfreeze()
    return reject, p_holm


def _classify(r: dict) -> str:
    if r["best"]:
        return "best"
    if r["test"] is None:
        return "not testable"
    if r["significant"]:
        return "worse"
    if r["test"] == "identical":
        return "identical"
    return "apart" if r["every_seed"] else "not distinguishable"


# ---- words: the table's cell and the sentence, both from a row's verdict and numbers -------------------

def fmt_p(p: float) -> str:
    return f"{p:.2g}"


def failures(row) -> str:
    """'1 diverged', '2 diverged, 1 failed' or ''."""
    parts = [f"{int(row[k])} {k}" for k in FAILED if row[k]]
    return ", ".join(parts)


def versus(row) -> str:
    """The table's 'vs best model' cell."""
    v, lost = row["verdict"], failures(row)
    exact = f" ({PERMUTATION})" if row["test"] == "permutation" else ""
    p = f"p = {fmt_p(row['p_holm'])}{exact}" if not math.isnan(row["p_holm"]) else ""
    if v == "best":
        return "best mean" + (f" (with {lost} seed{'s' if row['n'] - row['finished'] > 1 else ''}, scored "
                              "at the floor)" if lost else "")
    if v == "not testable":
        return f"not testable (n={int(row['n'])})" if ranked(row) else "no finished seed"
    return {"worse": f"worse, {p}", "apart": f"worse in every seed, {p}: not significant",
            "not distinguishable": f"not distinguishable, {p}", "identical": f"identical in every seed, {p}"}[v]


_CLAUSE = {"worse": "{is} worse", "apart": "{is} worse in every seed but not significantly",
           "not distinguishable": "{is} not distinguishable from it", "identical": "{is} identical to it in every seed",
           "not testable": "cannot be tested against it (a test needs two seeds of each)"}


def ranked(row) -> bool:
    """Whether the row's protocol has a ranking (some seed of it finished)."""
    return not (isinstance(row["rank"], float) and math.isnan(row["rank"]))


def _item(row) -> str:
    parts = [f"n={int(row['n'])}"]
    if failures(row):
        parts.append(failures(row))
    if not math.isnan(row["p_holm"]):
        parts.append(f"p = {fmt_p(row['p_holm'])}")
    return f"{row['model']} ({', '.join(parts)})"


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sentence(block: pd.DataFrame, alpha: float = ALPHA) -> str:
    """The sentence under one block's table, written from the same rows (``per_block``) the table shows:
    the best model with its n and failures, then the other models grouped by verdict, each with its n,
    failures and Holm p; then the test, the size of the Holm family and alpha."""
    if block.empty:
        return "No finished runs."
    rows = block.to_dict("records")
    best = [r for r in rows if r["verdict"] == "best"]
    if not best:
        return "No seed finished here (every one diverged or failed): nothing to rank."
    best = best[0]
    head = f"{_item(best)} has the best mean"
    if len(rows) == 1:
        return f"Only {_item(best)} has runs here; there is nothing to compare."
    clauses = [head]
    for v in VERDICTS[1:]:
        items = [_item(r) for r in rows if r["verdict"] == v]
        if items:
            clauses.append(f"{_names(items)} " + _CLAUSE[v].format(**{"is": "is" if len(items) == 1 else "are"}))
    family = sum(not math.isnan(r["p_holm"]) for r in rows)
    text = "; ".join(clauses) + "."
    if family:
        exact = f"; pairs without any variance: {PERMUTATION}" if any(r["test"] == "permutation" for r in rows) \
            else ""
        text += f" {TEST} over {family} comparison{'s' if family > 1 else ''}{exact}, alpha={alpha}."
    if any(r["diverged"] or r["failed"] for r in rows):
        text += f" Failed seeds count: {POLICY} ({best['floor']:.4g})."
    return text


# ---- across blocks --------------------------------------------------------------------------------------

def block_means(df: pd.DataFrame, higher: dict[str, bool] | bool = True,
                baseline: dict[str, float | None] | None = None) -> pd.DataFrame:
    """Block x model table of means over scored seeds, signed so that larger is better."""
    scored = score(df, higher, baseline)
    means = scored.groupby(["block", "model"])["value"].mean().unstack("model")
    for block in means.index:
        if not _higher(higher, block):
            means.loc[block] = -means.loc[block]
    return means


def friedman_permutation_p(ranks: np.ndarray, n_resamples: int = PERMUTATIONS, seed: int = 0) -> float:
    """Monte-Carlo permutation p-value of the Friedman statistic: the ranks are shuffled within every
    block (the null hypothesis: the models are exchangeable in each block). ``ranks``: blocks x models."""
    n, k = ranks.shape
    rng = np.random.default_rng(seed)
    observed = ((ranks.mean(0) - (k + 1) / 2) ** 2).sum()
    order = rng.random((n_resamples, n, k)).argsort(axis=2)
    shuffled = np.take_along_axis(np.broadcast_to(ranks, (n_resamples, n, k)), order, axis=2)
    null = ((shuffled.mean(1) - (k + 1) / 2) ** 2).sum(1)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_resamples))


@dataclass(frozen=True)
class RankTest:
    """Friedman test over blocks with the Nemenyi post-hoc test (Demšar 2006)."""

    ranks: pd.Series  # mean rank per model, 1 = best
    n_blocks: int
    statistic: float  # Friedman chi-square
    p_chi2: float
    f: float  # Iman-Davenport F
    df1: int
    df2: int
    p_f: float
    p_perm: float | None  # within-block permutation p (fewer than SMALL_N blocks)
    nemenyi: pd.DataFrame  # pairwise p-values
    cd: float  # Nemenyi critical difference in mean rank at alpha
    alpha: float
    models_left_out: tuple[str, ...]
    shared_tasks: tuple[tuple[str, int], ...] = ()  # (task, blocks of it) where a task gives several blocks

    @property
    def k(self) -> int:
        return len(self.ranks)

    @property
    def p_value(self) -> float:
        """The p-value the verdict uses: the permutation p for few blocks, the Iman-Davenport p otherwise."""
        return self.p_perm if self.p_perm is not None else self.p_f

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def warnings(self) -> list[str]:
        out = []
        if self.n_blocks < SMALL_N:
            reach = ("no pair can ever be separated" if self.cd >= self.k - 1 else
                     f"only models at least {self.cd:.2f} mean ranks apart can be separated")
            out.append(f"Only N = {self.n_blocks} protocols: the chi-square approximation of the Friedman test "
                       f"needs more than {SMALL_N} (Demšar 2006), so p comes from permutations within each "
                       f"protocol, and with a critical difference of {self.cd:.2f} mean ranks (the largest "
                       f"possible gap is {self.k - 1}) {reach}.")
        if self.shared_tasks:
            shared = ", ".join(f"{n} of {task}" for task, n in self.shared_tasks)
            out.append(f"Several protocols are of one task ({shared}): they are not independent, and the "
                       "test treats them as if they were, so its p-value is optimistic.")
        return out

    def sentence(self) -> str:
        n, k = self.n_blocks, self.k
        perm = (f"; permutation p = {self.p_perm:.3g} ({PERMUTATIONS:,} within-protocol shuffles; the verdict "
                "uses it)" if self.p_perm is not None else "")
        head = (f"Friedman test over N = {n} protocols and k = {k} models: chi2 = {self.statistic:.2f} "
                f"(p = {self.p_chi2:.3g}), Iman-Davenport F({self.df1}, {self.df2}) = {self.f:.3g} "
                f"(p = {self.p_f:.3g}){perm}; Nemenyi critical difference {self.cd:.2f} mean ranks "
                f"(alpha={self.alpha}).")
        if not self.significant:
            return head + " The models' ranks are not distinguishable across these protocols."
        return head + (f" The ranks differ: {self.ranks.index[0]} ranks best (mean rank {self.ranks.iloc[0]:.2f}); "
                       "models joined by a bar in the diagram are not distinguishable.")


def rank_test(df: pd.DataFrame, higher: dict[str, bool] | bool = True, alpha: float = ALPHA,
              baseline: dict[str, float | None] | None = None, tasks: dict[str, str] | None = None
              ) -> RankTest | None:
    """Friedman + Nemenyi on the per-block means of the scored seeds (failed seeds at the floor); None
    when there are fewer than 2 blocks or 3 models with seeds in every block. ``tasks``: block -> task,
    to say which blocks share a task."""
    import scikit_posthocs as sp

    means = block_means(df, higher, baseline)
    complete = means.dropna(axis=1)
    left_out = tuple(sorted(set(means.columns) - set(complete.columns)))
    n, k = complete.shape
    if n < 2 or k < 3:
        return None
    stat, p = stats.friedmanchisquare(*[complete[m].to_numpy() for m in complete.columns])
    ranked = complete.rank(axis=1, ascending=False)
    ranks = ranked.mean().sort_values()
    with np.errstate(divide="ignore"):
        f = (n - 1) * stat / (n * (k - 1) - stat) if n * (k - 1) > stat else math.inf
    df1, df2 = k - 1, (k - 1) * (n - 1)
    p_f = float(stats.f.sf(f, df1, df2)) if math.isfinite(f) else 0.0
    p_perm = friedman_permutation_p(ranked.to_numpy()) if n < SMALL_N else None
    nemenyi = sp.posthoc_nemenyi_friedman(complete.to_numpy())
    nemenyi.index = nemenyi.columns = complete.columns
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)  # Demšar 2006, section 3.2.2
    cd = q * math.sqrt(k * (k + 1) / (6 * n))
    counts = pd.Series([(tasks or {}).get(b, b) for b in complete.index]).value_counts()
    shared = tuple(sorted((str(t), int(c)) for t, c in counts.items() if c > 1))
    return RankTest(ranks, n, float(stat), float(p), float(f), df1, df2, p_f, p_perm, nemenyi, float(cd), alpha,
                    left_out, shared)


# ---- interquartile mean and performance profiles (Agarwal et al. 2021) -----------------------------------

def normalize(value: np.ndarray, baseline: float, higher: bool) -> np.ndarray:
    """Baseline-normalized score: 0 at the memoryless baseline, 1 at a perfect score (1 for a metric where
    higher is better, such as accuracy; 0 for an error)."""
    return (value - baseline) / (1 - baseline) if higher else 1 - value / baseline


def normalizable(values: np.ndarray, baseline: float | None, higher: bool) -> bool:
    """Whether ``normalize`` means something here: a baseline between the perfect score and the values'
    side of it (accuracy-like metrics in [0, 1]; errors >= 0)."""
    if baseline is None or not np.isfinite(baseline):
        return False
    if higher:
        return baseline < 1 and bool(np.all(values <= 1))
    return baseline > 0 and bool(np.all(values >= 0))


def iqm(x: np.ndarray, axis=None) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean`` cutting 25% each side)."""
    return stats.trim_mean(x, 0.25, axis=axis)


def stratified_resamples(per_block: list[np.ndarray], reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` stratified bootstrap samples (Agarwal et al. 2021): each block's seeds are resampled with
    replacement within that block, and the blocks' samples are pooled: an array reps x (total seeds)."""
    parts = [x[rng.integers(0, len(x), size=(reps, len(x)))] for x in per_block]
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class Aggregate:
    """IQM and performance profile per model over the normalized blocks."""

    iqm: pd.DataFrame  # per model: iqm, ci_low, ci_high (NaN with one seed in a block), n_runs; best first
    taus: np.ndarray
    profiles: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # model -> (fraction > tau, low, high)
    blocks: tuple[str, ...]
    blocks_left_out: tuple[str, ...]  # no baseline, or a metric normalize() cannot place
    models_left_out: tuple[str, ...]  # not run on every normalized block
    reps: int
    confidence: float


def iqm_profiles(df: pd.DataFrame, higher: dict[str, bool] | bool, baseline: dict[str, float | None],
                 confidence: float = CONFIDENCE, reps: int = 10000, seed: int = 0, taus: int | np.ndarray = 101
                 ) -> Aggregate | None:
    """IQM of the normalized scores of every scored seed over the blocks, with a stratified-bootstrap
    percentile interval, and the performance profile (the fraction of runs scoring above tau) with its
    band from the same resamples, as rliable computes them. Failed seeds count at the floor. ``taus``:
    the thresholds, or how many to spread over the scores' range. None when no block can be normalized."""
    scored = score(df, higher, baseline)
    blocks, left = [], []
    for block, d in scored.groupby("block", sort=True):
        ok = normalizable(d["value"].to_numpy(), baseline.get(block), _higher(higher, block))
        (blocks if ok else left).append(block)
    if not blocks:
        return None
    d = scored[scored["block"].isin(blocks)].copy()
    d["score"] = [normalize(v, baseline[b], _higher(higher, b)) for v, b in zip(d["value"], d["block"])]
    present = d.groupby("model")["block"].nunique()
    models = sorted(present.index[present == len(blocks)])
    models_left = tuple(sorted(set(present.index) - set(models)))
    if not models:
        return None
    grid = np.asarray(taus, float) if np.ndim(taus) else np.linspace(min(0.0, d["score"].min()),
                                                                      max(1.0, d["score"].max()), int(taus))
    rng = np.random.default_rng(seed)
    lo_q, hi_q = 50 * (1 - confidence), 50 * (1 + confidence)
    rows, profiles = [], {}
    for m in models:
        per = [g["score"].to_numpy(float) for _, g in d[d["model"] == m].groupby("block", sort=True)]
        pooled = np.concatenate(per)
        boot = stratified_resamples(per, reps, rng)
        stat = iqm(boot, axis=1)
        spread = min(len(x) for x in per) > 1  # a block with one seed has nothing to resample
        rows.append({"model": m, "iqm": float(iqm(pooled)),
                     "ci_low": float(np.percentile(stat, lo_q)) if spread else math.nan,
                     "ci_high": float(np.percentile(stat, hi_q)) if spread else math.nan,
                     "n_runs": len(pooled)})
        curve = (pooled[:, None] > grid).mean(0)
        band = (boot[:PROFILE_REPS, :, None] > grid).mean(1)
        profiles[m] = (curve, *(np.percentile(band, (lo_q, hi_q), axis=0) if spread else (curve, curve)))
    table = pd.DataFrame(rows).sort_values(["iqm", "model"], ascending=[False, True], ignore_index=True)
    return Aggregate(table, grid, profiles, tuple(blocks), tuple(left), models_left, reps, confidence)
