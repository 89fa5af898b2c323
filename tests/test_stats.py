"""The comparison statistics on synthetic results whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from suite.reports.stats import TEST, cd_diagram, per_block, rank_test, sentence


def long(values: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """{block: {model: [value per seed]}} -> the long frame the statistics take."""
    return pd.DataFrame([{"block": b, "model": m, "seed": s, "value": v}
                         for b, models in values.items() for m, vs in models.items() for s, v in enumerate(vs)])


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
    assert out.loc["mid", "significant"] and out.loc["bad", "significant"]
    assert out.loc["bad", "p_holm"] >= out.loc["bad", "p_value"]  # Holm only inflates
    # the 95% interval of each model lies inside its seeds' range and excludes the others
    assert out.loc["good", "ci_low"] > out.loc["mid", "ci_high"]
    s = sentence(per_block(long(data)))
    assert "good is better than every other model at 3 seeds" in s and TEST in s


def test_lower_is_better_blocks_pick_the_smallest_mean():
    data = {"adding": {"a": [0.01, 0.011, 0.012], "b": [0.16, 0.17, 0.165]}}
    out = per_block(long(data), higher={"adding": False}).set_index("model")
    assert out.loc["a", "best"] and bool(out.loc["b", "significant"])


def test_noisy_overlap_is_reported_as_not_distinguishable():
    data = {"t": {"x": [0.80, 0.90, 0.70], "y": [0.78, 0.88, 0.72], "z": [0.10, 0.11, 0.12]}}
    s = sentence(per_block(long(data)))
    assert s.startswith("x has the best mean; y is not distinguishable from it at 3 seeds")
    assert "the other 1 is worse" in s


def test_one_seed_says_no_ranking_is_significant():
    data = {"t": {"x": [0.9], "y": [0.1]}}
    out = per_block(long(data))
    assert out["ci_low"].isna().all() and out["significant"].isna().all()
    assert "no ranking here is significant" in sentence(out)


def test_friedman_matches_the_published_pulse_rate_example(tmp_path):
    # Sprent & Smeeton, Applied Nonparametric Statistical Methods (3rd ed.), section 6.3.2, as worked in
    # scipy's friedmanchisquare documentation: chi2 = 10.5714, p = 0.005063 (7 students = blocks, 3 occasions)
    before = [72, 96, 88, 92, 74, 76, 82]
    after = [120, 120, 132, 120, 101, 96, 112]
    five = [76, 95, 104, 96, 84, 72, 76]
    data = {f"s{i}": {"before": [before[i]], "after": [after[i]], "five": [five[i]]} for i in range(7)}
    test = rank_test(long(data))
    assert test.statistic == pytest.approx(10.5714286, abs=1e-6)
    assert test.p_value == pytest.approx(0.0050634142, abs=1e-8)
    assert test.significant and test.ranks.index[0] == "after"
    # Nemenyi's critical difference, Demšar (JMLR 2006) section 3.2.2: k = 4 models, N = 14 data sets,
    # alpha = 0.05 gives q = 2.569 and CD = 1.25
    rng = np.random.default_rng(0)
    data = {f"d{i}": {m: [rng.random()] for m in "abcd"} for i in range(14)}
    assert rank_test(long(data)).cd == pytest.approx(1.25, abs=0.005)
    cd_diagram(test, tmp_path / "cd.png")
    assert (tmp_path / "cd.png").read_bytes()[:4] == b"\x89PNG"


def test_friedman_on_identical_models_is_not_significant():
    rng = np.random.default_rng(3)
    data = {f"d{i}": {m: [rng.random()] for m in "abcde"} for i in range(12)}
    test = rank_test(long(data))
    assert not test.significant and "not distinguishable" in test.sentence()
    # a model missing in some block is left out of the ranking rather than imputed
    data["d0"].pop("e")
    assert rank_test(long(data)).models_left_out == ("e",)
    assert rank_test(long({"only": {"a": [1.0], "b": [2.0], "c": [3.0]}})) is None
    # seeds without any variance: equal values are not different; unequal ones cannot be t-tested
    same = per_block(long({"t": {"a": [1.0, 1.0], "b": [1.0, 1.0]}})).set_index("model")
    assert same.loc["b", "p_holm"] == 1.0 and not same.loc["b", "significant"]
    apart = per_block(long({"t": {"a": [1.0, 1.0], "b": [0.5, 0.5]}})).set_index("model")
    assert math.isnan(apart.loc["b", "p_value"]) and apart.loc["b", "significant"] is None
