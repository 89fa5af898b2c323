"""The comparison statistics on synthetic results whose answer is known."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from suite.reports.figures import cd_diagram
from suite.reports.stats import (
    PERMUTATIONS,
    TEST,
    floor,
    friedman_permutation_p,
    iqm,
    iqm_profiles,
    per_block,
    permutation_p,
    rank_test,
    sentence,
    stratified_resamples,
    t_interval,
    versus,
)


def long(values: dict[str, dict[str, list[float]]], statuses: dict | None = None) -> pd.DataFrame:
    """{block: {model: [value per seed]}} -> the long frame the statistics take; ``statuses``:
    {(block, model): [status per seed]} (default: finished)."""
    rows = []
    for b, models in values.items():
        for m, vs in models.items():
            st = (statuses or {}).get((b, m), ["finished"] * len(vs))
            rows += [{"block": b, "model": m, "seed": s, "value": v, "status": st[s]} for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_identical_distributions_are_not_significant():
    rng = np.random.default_rng(0)
    # 20 blocks of two models drawn from one distribution: the Holm-corrected test must (almost) never fire
    blocks = {f"b{i}": {"a": list(rng.normal(0.5, 0.05, 5)), "b": list(rng.normal(0.5, 0.05, 5))}
              for i in range(20)}
    out = per_block(long(blocks))
    tested = out[~out["best"]]
    assert len(tested) == 20
    assert tested["significant"].sum() <= 2  # alpha = 0.05 over 20 independent blocks
    row = out[out["block"] == "b0"]
    assert (row["ci_low"] <= row["mean"]).all() and (row["mean"] <= row["ci_high"]).all()


def test_clearly_separated_models_are_significant_and_ranked():
    rng = np.random.default_rng(1)
    data = {"copying": {"good": list(0.9 + rng.normal(0, 0.01, 3)), "mid": list(0.6 + rng.normal(0, 0.01, 3)),
                        "bad": list(0.2 + rng.normal(0, 0.01, 3))}}
    out = per_block(long(data)).set_index("model")
    assert out.loc["good", "best"] and out.loc["good", "rank"] == 1 and out.loc["bad", "rank"] == 3
    assert out.loc["mid", "verdict"] == "worse" and out.loc["bad", "verdict"] == "worse"
    assert out.loc["bad", "p_holm"] >= out.loc["bad", "p_value"]  # Holm only inflates
    assert out.loc["good", "ci_low"] > out.loc["mid", "ci_high"]
    s = sentence(per_block(long(data)))
    assert s.startswith("good (n=3) has the best mean; mid (n=3, p = ") and "are worse." in s and TEST in s


def test_lower_is_better_blocks_pick_the_smallest_mean():
    data = {"adding": {"a": [0.01, 0.011, 0.012], "b": [0.16, 0.17, 0.165]}}
    out = per_block(long(data), higher={"adding": False}).set_index("model")
    assert out.loc["a", "best"] and out.loc["b", "verdict"] == "worse"


def test_noisy_overlap_is_reported_as_not_distinguishable():
    data = {"t": {"x": [0.80, 0.90, 0.70], "y": [0.78, 0.88, 0.72], "z": [0.10, 0.11, 0.12]}}
    s = sentence(per_block(long(data)))
    assert s.startswith("x (n=3) has the best mean; z (n=3, p = ")
    assert "is worse; y (n=3, p = 0.9" in s and "is not distinguishable from it." in s


def test_the_interval_is_students_t():
    x = np.array([0.2, 0.5, 0.6])
    low, high = t_interval(x)
    ref = sps.t.interval(0.95, 2, loc=x.mean(), scale=sps.sem(x))
    assert (low, high) == pytest.approx(ref, rel=1e-12)
    assert t_interval(np.array([0.3, 0.3, 0.3])) == (0.3, 0.3)  # every seed agrees
    assert all(math.isnan(v) for v in t_interval(np.array([0.3])))


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_the_interval_holds_its_coverage(n):
    # normal data, 20,000 draws: the Student-t interval covers the true mean 95% of the time at every n
    # (a percentile bootstrap of 3 values is their min-max: about 75%)
    rng = np.random.default_rng(n)
    draws = rng.normal(0.3, 0.05, size=(20000, n))
    low, high = t_interval(draws, axis=1)
    coverage = np.mean((low <= 0.3) & (high >= 0.3))
    assert 0.93 <= coverage <= 0.97, coverage


def test_exact_permutation_p_for_samples_without_variance():
    for n_a, n_b in [(2, 2), (3, 3), (3, 2), (2, 4), (5, 5)]:
        a, b = np.full(n_a, 1.0), np.full(n_b, 0.125)
        ref = sps.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
                                   n_resamples=np.inf, alternative="two-sided").pvalue
        assert permutation_p(n_a, n_b, equal=False) == pytest.approx(ref, abs=1e-12)
    assert permutation_p(3, 3, equal=True) == 1.0


def test_zero_variance_pairs_get_an_exact_answer():
    # a = [1, 1, 1], b = [0.125] * 3: no t statistic, but b is below a in every seed
    out = per_block(long({"t": {"a": [1.0] * 3, "b": [0.125] * 3}})).set_index("model")
    assert out.loc["b", "test"] == "permutation" and out.loc["b", "p_holm"] == pytest.approx(0.1)
    assert out.loc["b", "verdict"] == "apart" and out.loc["b", "every_seed"]
    s = sentence(out.reset_index())
    assert "b (n=3, p = 0.1) is worse in every seed but not significantly" in s and "distinguishable" not in s
    assert "exact permutation test" in s and "worse in every seed" in versus(out.reset_index().iloc[1])
    # five seeds each: the exact p is 2 / C(10, 5) = 0.0079, significant, and in the Holm family
    five = per_block(long({"t": {"a": [1.0] * 5, "b": [0.125] * 5, "c": [0.9, 0.95, 1.0, 0.85, 0.9]}}))
    five = five.set_index("model")
    assert five.loc["b", "verdict"] == "worse" and five.loc["b", "p_value"] == pytest.approx(2 / 252)
    assert five.loc["b", "p_holm"] == pytest.approx(min(1, 2 * 2 / 252))  # the smaller of two p-values: x2
    same = per_block(long({"t": {"a": [1.0, 1.0], "b": [1.0, 1.0]}})).set_index("model")
    assert same.loc["b", "verdict"] == "identical" and same.loc["b", "p_holm"] == 1.0


def test_one_seed_of_one_model_does_not_silence_the_others():
    # the sentence used to take the smallest n of the table: one single-seed model made every
    # comparison "not significant" while the table marked another model worse
    data = {"t": {"a": [0.90, 0.91, 0.92], "b": [0.10, 0.11, 0.12], "c": [0.5]}}
    out = per_block(long(data)).set_index("model")
    assert out.loc["b", "verdict"] == "worse" and out.loc["c", "verdict"] == "not testable"
    s = sentence(out.reset_index())
    assert "b (n=3, p = " in s and ") is worse" in s
    assert "c (n=1) cannot be tested against it" in s and "over 1 comparison," in s
    one = per_block(long({"t": {"x": [0.9], "y": [0.1]}}))
    assert one["ci_low"].isna().all() and one["significant"].isna().all()
    assert sentence(one) == ("x (n=1) has the best mean; y (n=1) cannot be tested against it (a test needs "
                             "two seeds of each).")


def test_a_failed_seed_is_scored_at_the_floor_and_ranks_its_model_down():
    # the rnn/scornn case: rnn's two finished seeds beat scornn's mean, its third seed diverged
    data = {"adding": {"scornn": [0.1651, 0.1907, 0.1858], "rnn": [0.1833, math.nan, 0.1772],
                       "lstm": [1.341, 0.7288, 1.03]}}
    statuses = {("adding", "rnn"): ["finished", "diverged", "finished"]}
    out = per_block(long(data, statuses), higher=False, baseline={"adding": 1 / 6}).set_index("model")
    assert out.loc["scornn", "best"] and not out.loc["rnn", "best"]
    assert out.loc["rnn", "floor"] == 1.341  # the worse of the baseline (0.1667) and the worst finished value
    assert out.loc["rnn", "mean"] == pytest.approx((0.1833 + 0.1772 + 1.341) / 3)
    assert (out.loc["rnn", "n"], out.loc["rnn", "finished"], out.loc["rnn", "diverged"]) == (3, 2, 1)
    s = sentence(out.reset_index())
    assert "rnn (n=3, 1 diverged, p = " in s and "scored at the protocol's floor" in s and "(1.341)" in s
    # the floor never beats a finished seed: with a good baseline it is the worst finished value,
    # with finished values all better than the baseline it is the baseline
    assert floor(np.array([0.5, 0.7]), 0.1, higher=True) == 0.1
    assert floor(np.array([0.05, 0.7]), 0.1, higher=True) == 0.05
    assert floor(np.array([0.2, 0.3]), None, higher=False) == 0.3
    assert math.isnan(floor(np.array([]), None, higher=True))


def test_a_model_with_a_failed_seed_that_stays_best_says_so():
    data = {"t": {"a": [0.95, 0.96, math.nan], "b": [0.2, 0.21, 0.22]}}
    out = per_block(long(data, {("t", "a"): ["finished", "finished", "failed"]}), baseline={"t": 0.1})
    row = out.set_index("model").loc["a"]
    assert row["best"] and row["mean"] == pytest.approx((0.95 + 0.96 + 0.1) / 3)
    assert versus(row) == "best mean (with 1 failed seed, scored at the floor)"
    assert sentence(out).startswith("a (n=3, 1 failed) has the best mean;")


def test_a_model_whose_seeds_all_diverged_stays_in_the_table_and_the_ranks():
    data = {f"b{i}": {"a": [0.9, 0.91], "b": [0.5, 0.52], "c": [math.nan, math.nan]} for i in range(3)}
    statuses = {(f"b{i}", "c"): ["diverged", "diverged"] for i in range(3)}
    out = per_block(long(data, statuses), baseline={f"b{i}": 0.1 for i in range(3)})
    c = out[out["model"] == "c"]
    assert (c["n"] == 2).all() and (c["diverged"] == 2).all() and (c["rank"] == 3).all()
    test = rank_test(long(data, statuses), baseline={f"b{i}": 0.1 for i in range(3)})
    assert test.models_left_out == () and test.ranks.index[-1] == "c"


def test_friedman_matches_the_published_pulse_rate_example(tmp_path):
    # Sprent & Smeeton, Applied Nonparametric Statistical Methods (3rd ed.), section 6.3.2, as worked in
    # scipy's friedmanchisquare documentation: chi2 = 10.5714, p = 0.005063 (7 students = blocks, 3 occasions)
    before = [72, 96, 88, 92, 74, 76, 82]
    after = [120, 120, 132, 120, 101, 96, 112]
    five = [76, 95, 104, 96, 84, 72, 76]
    data = {f"s{i}": {"before": [before[i]], "after": [after[i]], "five": [five[i]]} for i in range(7)}
    test = rank_test(long(data))
    assert test.statistic == pytest.approx(10.5714286, abs=1e-6)
    assert test.p_chi2 == pytest.approx(0.0050634142, abs=1e-8)
    # Iman & Davenport (1980): F = (N - 1) chi2 / (N (k - 1) - chi2) on (k - 1, (k - 1)(N - 1)) degrees of freedom
    assert (test.df1, test.df2) == (2, 12) and test.f == pytest.approx(6 * 10.5714286 / (14 - 10.5714286))
    assert test.p_f == pytest.approx(sps.f.sf(test.f, 2, 12))
    assert test.significant and test.ranks.index[0] == "after"
    # Nemenyi's critical difference, Demšar (JMLR 2006) section 3.2.2: k = 4 models, N = 14 data sets,
    # alpha = 0.05 gives q = 2.569 and CD = 1.25
    rng = np.random.default_rng(0)
    data = {f"d{i}": {m: [rng.random()] for m in "abcd"} for i in range(14)}
    assert rank_test(long(data)).cd == pytest.approx(1.25, abs=0.005)
    labels = cd_diagram(test, tmp_path / "cd.png")
    assert (tmp_path / "cd.png").read_bytes()[:4] == b"\x89PNG"
    assert len(labels) == 3 and "after (1.00)" in labels  # left or right of the axis, two decimals each way
    assert {f"({test.ranks['five']:.2f}) five", f"five ({test.ranks['five']:.2f})"} & set(labels)


def test_iman_davenport_is_the_anova_f_on_ranks():
    # without ties, Iman-Davenport's F equals the repeated-measures ANOVA F computed on the ranks
    from statsmodels.stats.anova import AnovaRM

    rng = np.random.default_rng(5)
    data = {f"d{i}": {m: [v] for m, v in zip("abcde", rng.random(5) + np.arange(5) * 0.1)} for i in range(8)}
    test = rank_test(long(data))
    ranks = long(data).assign(rank=lambda d: d.groupby("block")["value"].rank())
    anova = AnovaRM(ranks, "rank", "block", within=["model"]).fit().anova_table
    assert test.f == pytest.approx(anova["F Value"].iloc[0], rel=1e-10)
    assert test.p_f == pytest.approx(anova["Pr > F"].iloc[0], rel=1e-8)


def test_friedman_permutation_p_against_full_enumeration():
    # N = 2 blocks of k = 3: all 3!^2 = 36 within-block arrangements enumerated
    ranks = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])
    stat = lambda r: ((r.mean(0) - 2) ** 2).sum()  # noqa: E731
    perms = list(itertools.permutations([1.0, 2.0, 3.0]))
    exact = np.mean([stat(np.array([p, q])) >= stat(ranks) - 1e-12 for p in perms for q in perms])
    assert friedman_permutation_p(ranks) == pytest.approx(exact, abs=0.01)


def test_the_small_n_friedman_p_keeps_its_size():
    # N = 3 protocols, k = 14 models, no difference: the permutation p rejects about 5%, where the
    # chi-square approximation is conservative (Demšar 2006: it wants N > 10)
    rng = np.random.default_rng(11)
    rejected_perm = rejected_chi2 = 0
    trials = 300
    for _ in range(trials):
        ranks = np.argsort(rng.random((3, 14)), axis=1).argsort(axis=1) + 1.0
        rejected_perm += friedman_permutation_p(ranks, n_resamples=1000, seed=int(rng.integers(1 << 30))) < 0.05
        rejected_chi2 += sps.friedmanchisquare(*ranks.T).pvalue < 0.05
    assert 0.025 <= rejected_perm / trials <= 0.085
    assert rejected_chi2 < rejected_perm


def test_small_n_and_shared_tasks_are_warned_about():
    rng = np.random.default_rng(3)
    data = {f"d{i}": {m: [rng.random()] for m in "abcde"} for i in range(3)}
    test = rank_test(long(data), tasks={"d0": "copying", "d1": "copying", "d2": "adding"})
    assert test.p_perm is not None and test.p_value == test.p_perm
    text = test.sentence()
    assert "N = 3 protocols and k = 5 models" in text and "Iman-Davenport F(4, 8)" in text
    assert f"{PERMUTATIONS:,} within-protocol shuffles" in text
    warned = " ".join(test.warnings())
    assert "Only N = 3 protocols" in warned and "more than 10" in warned
    assert "2 of copying" in warned and "not independent" in warned
    many = rank_test(long({f"d{i}": {m: [rng.random()] for m in "abcde"} for i in range(12)}))
    assert many.p_perm is None and many.p_value == many.p_f and many.warnings() == []


def test_friedman_on_identical_models_is_not_significant():
    rng = np.random.default_rng(3)
    data = {f"d{i}": {m: [rng.random()] for m in "abcde"} for i in range(12)}
    test = rank_test(long(data))
    assert not test.significant and "not distinguishable" in test.sentence()
    # a model missing in some block is left out of the ranking rather than imputed
    data["d0"].pop("e")
    assert rank_test(long(data)).models_left_out == ("e",)
    assert rank_test(long({"only": {"a": [1.0], "b": [2.0], "c": [3.0]}})) is None


def test_cd_labels_have_two_decimals(tmp_path):
    # 12.67 and 13.0 both printed "13" with two significant digits
    models = [f"m{i:02d}" for i in range(14)]
    rng = np.random.default_rng(0)
    data = {f"d{i}": {m: [v] for m, v in zip(models, rng.permutation(14))} for i in range(3)}
    test = rank_test(long(data))
    labels = cd_diagram(test, tmp_path / "cd.png")
    assert len(labels) == 14
    for m, r in test.ranks.items():
        assert any(label in (f"{m} ({r:.2f})", f"({r:.2f}) {m}") for label in labels)


def test_iqm_and_stratified_bootstrap_against_independent_numbers():
    x = np.arange(1.0, 13.0)
    assert iqm(x) == pytest.approx(sps.trim_mean(x, 0.25)) == pytest.approx(np.mean(x[3:9]))
    # strata stay apart: block 0's columns only ever hold block 0's seeds
    a, b = np.array([0.0, 1.0, 2.0]), np.array([10.0, 11.0])
    boot = stratified_resamples([a, b], 500, np.random.default_rng(0))
    assert boot.shape == (500, 5) and np.isin(boot[:, :3], a).all() and np.isin(boot[:, 3:], b).all()
    # the interval against a plain loop over resamples (numpy's choice, its own stream)
    rng = np.random.default_rng(7)
    per = [rng.normal(0.5, 0.1, 3), rng.normal(0.2, 0.1, 4), rng.normal(0.8, 0.1, 3)]
    df = pd.DataFrame([{"block": f"b{j}", "model": "m", "seed": i, "value": v}
                       for j, x in enumerate(per) for i, v in enumerate(x)])
    agg = iqm_profiles(df, True, {f"b{j}": 0.0 for j in range(3)}, reps=20000)
    loop = np.random.RandomState(3)
    stat = [sps.trim_mean(np.concatenate([loop.choice(x, len(x)) for x in per]), 0.25) for _ in range(4000)]
    row = agg.iqm.iloc[0]
    assert row["iqm"] == pytest.approx(sps.trim_mean(np.concatenate(per), 0.25))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.percentile(stat, [2.5, 97.5])), abs=0.02)


def test_iqm_profiles_match_rliable():
    # rliable 1.2.0 (Agarwal et al. 2021), run with arch 7.2 and pandas 2.3 on this input (3 runs x 3 tasks):
    # get_interval_estimates(..., lambda s: np.array([metrics.aggregate_iqm(s)]), reps=50000) gave IQM 0.52,
    # interval [0.44, 0.59] (the same under np.random.seed 0, 1 and 2); create_performance_profile(...,
    # [0.25, 0.5, 0.75], reps=20000) gave 7/9, 5/9, 2/9 with bands [6/9, 1], [3/9, 6/9], [0, 3/9]
    scores = np.array([[0.10, 0.40, 0.90], [0.30, 0.55, 0.70], [0.20, 0.65, 0.80]])
    df = pd.DataFrame([{"block": f"t{j}", "model": "m", "seed": i, "value": scores[i, j]}
                       for i in range(3) for j in range(3)])
    agg = iqm_profiles(df, True, {f"t{j}": 0.0 for j in range(3)}, reps=50000, taus=np.array([0.25, 0.5, 0.75]))
    row = agg.iqm.iloc[0]
    assert row["iqm"] == pytest.approx(0.52) == pytest.approx(sps.trim_mean(scores, 0.25, axis=None))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.44, 0.59))
    curve, low, high = agg.profiles["m"]
    assert curve == pytest.approx([7 / 9, 5 / 9, 2 / 9])
    assert low == pytest.approx([6 / 9, 3 / 9, 0]) and high == pytest.approx([1, 6 / 9, 3 / 9])


def test_scores_are_normalized_to_the_baseline():
    # accuracy with chance 0.1: 0.1 -> 0, 1.0 -> 1; an error with baseline 1/6: 1/6 -> 0, 0 -> 1
    df = pd.DataFrame([{"block": "acc", "model": "m", "seed": s, "value": v} for s, v in enumerate([0.1, 1.0])]
                      + [{"block": "mse", "model": "m", "seed": s, "value": v} for s, v in enumerate([1 / 6, 0.0])]
                      + [{"block": "timit", "model": "m", "seed": 0, "value": 9.0}])
    agg = iqm_profiles(df, {"acc": True, "mse": False, "timit": False}, {"acc": 0.1, "mse": 1 / 6, "timit": None})
    assert agg.blocks == ("acc", "mse") and agg.blocks_left_out == ("timit",)
    assert agg.iqm.iloc[0]["iqm"] == pytest.approx(0.5)  # middle two of (0, 0, 1, 1)
