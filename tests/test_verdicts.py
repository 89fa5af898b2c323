"""Property test: every claim of the sentence under a protocol's table equals the table's flags, on
random tables with ties, zero variance, one seed, NaN values, failed seeds and mixed n."""

import math
import re

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suite.reports.stats import ALPHA, VERDICTS, per_block, score, sentence, versus

# the sentence's verb phrase of each verdict (stats._CLAUSE), read back from the words
PHRASES = {"worse in every seed but not significantly": "apart", "not distinguishable from it": "not distinguishable",
           "identical to it in every seed": "identical", "cannot be tested against it": "not testable",
           "worse": "worse"}
ITEM = re.compile(r"(m\d) \(([^()]*)\)")


def parse(text: str) -> dict[str, dict]:
    """model -> {verdict, n, failures, p} as the sentence states them."""
    claims = {}
    body = text.split(". ")[0].rstrip(".")
    for clause in body.split("; "):
        items = ITEM.findall(clause)
        rest = re.sub(r"^(and |, )*", "", ITEM.sub("", clause).replace(" and ", ", ").strip(", "))
        rest = re.sub(r"^(is|are) ", "", rest.lstrip(", "))
        verdict = "best" if rest == "has the best mean" else next(
            (v for phrase, v in PHRASES.items() if rest.startswith(phrase)), None)
        assert verdict is not None, (clause, rest)
        for model, inner in items:
            parts = [p.strip() for p in inner.split(",")]
            claim = {"verdict": verdict, "n": None, "failures": [], "p": None}
            for p in parts:
                if p.startswith("n="):
                    claim["n"] = int(p[2:])
                elif p.startswith("p = "):
                    claim["p"] = p[4:]
                else:
                    claim["failures"].append(p)
            assert model not in claims, f"{model} named twice: {text}"
            claims[model] = claim
    return claims


values = st.one_of(st.sampled_from([0.0, 0.125, 0.5, 1.0]), st.floats(0, 1, allow_nan=False),
                   st.just(math.nan))
seeds = st.lists(st.tuples(values, st.sampled_from(["finished"] * 4 + ["diverged", "failed"])), min_size=1,
                 max_size=5)


@st.composite
def tables(draw):
    models = draw(st.lists(seeds, min_size=1, max_size=5))
    rows = [{"block": "b", "model": f"m{i}", "seed": s, "value": v, "status": status}
            for i, runs in enumerate(models) for s, (v, status) in enumerate(runs)]
    higher = draw(st.booleans())
    baseline = draw(st.one_of(st.none(), st.sampled_from([0.1, 0.125, 1 / 6])))
    return pd.DataFrame(rows), higher, baseline


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_every_claim_of_the_sentence_equals_the_table(case):
    df, higher, baseline = case
    table = per_block(df, higher, baseline={"b": baseline})
    text = sentence(table)
    rows = {r["model"]: r for r in table.to_dict("records")}
    scored = score(df, higher, {"b": baseline})
    if not any(r["verdict"] == "best" for r in rows.values()):  # no seed finished
        assert text.startswith("No seed finished") and scored["imputed"].all()
        assert all(versus(r) == "no finished seed" for r in rows.values())
        return
    if len(rows) == 1:
        assert text.startswith("Only m")
        return
    claims = parse(text)
    assert set(claims) == set(rows), text  # every model of the table, once
    for m, c in claims.items():
        r = rows[m]
        assert c["verdict"] == r["verdict"], (m, text)
        assert c["n"] == r["n"] == len(scored[scored["model"] == m])
        lost = [f"{r[k]} {k}" for k in ("diverged", "failed") if r[k]]
        assert c["failures"] == lost
        assert c["p"] == (None if math.isnan(r["p_holm"]) else f"{r['p_holm']:.2g}")
        # the table's cell says the same
        cell = versus(r)
        assert cell.startswith({"best": "best mean", "worse": "worse, p", "apart": "worse in every seed",
                                "not distinguishable": "not distinguishable", "identical": "identical in every seed",
                                "not testable": "not testable"}[r["verdict"]])
    # ... and the flags are what the numbers say
    best = next(r for r in rows.values() if r["verdict"] == "best")
    x = {m: np.sort(scored.loc[scored["model"] == m, "value"].to_numpy()) for m in rows}
    means = {m: v.mean() for m, v in x.items()}
    assert means[best["model"]] == (max if higher else min)(means.values())
    family = [r for r in rows.values() if not math.isnan(r["p_holm"])]
    if family:
        assert f"over {len(family)} comparison" in text and f"alpha={ALPHA}" in text
    for m, r in rows.items():
        if r["verdict"] == "best":
            continue
        worse = (x[m].max() < x[best["model"]].min()) if higher else (x[m].min() > x[best["model"]].max())
        assert r["verdict"] in VERDICTS
        if r["verdict"] == "not testable":
            assert min(len(x[m]), len(x[best["model"]])) < 2
        else:
            assert min(len(x[m]), len(x[best["model"]])) >= 2
        if r["verdict"] == "worse":
            assert r["p_holm"] < ALPHA
        if r["verdict"] in ("apart", "not distinguishable", "identical"):
            assert r["p_holm"] >= ALPHA
        if r["verdict"] == "apart":
            assert worse
        if r["verdict"] == "identical":
            assert np.ptp(x[m]) == 0 == np.ptp(x[best["model"]]) and x[m][0] == x[best["model"]][0]
        if r["verdict"] == "not distinguishable":
            assert not worse
        if np.ptp(x[m]) == 0 and np.ptp(x[best["model"]]) == 0 and min(len(x[m]), len(x[best["model"]])) >= 2:
            assert r["verdict"] != "not distinguishable"  # zero variance: an exact answer, never the default
