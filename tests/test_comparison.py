"""The report's comparison on real tiny runs: intervals, tests and the aggregate with 3 seeds; the
"not significant" statement with one seed."""

import re

import pytest

from suite.reports.render import render_report
from suite.runner import execute
from suite.store import Store
from tests.helpers import tiny

MODELS = ("scornn", "lstm", "rnn")


@pytest.fixture(scope="module")
def store3(tmp_path_factory):
    db = tmp_path_factory.mktemp("cmp") / "s.db"
    store = Store(db)
    for task in ("copying", "adding"):
        for model in MODELS:
            for seed in range(3):
                execute(tiny(model, task, seed, steps=10, eval_every=5, hidden=8), store)
    store.close()
    return db


def test_three_seeds_show_intervals_tests_and_the_aggregate(store3, tmp_path):
    html = render_report(store3, tmp_path / "r").read_text()
    cells = re.findall(r'<td class="num">([^<]*\[[^<]*\] \(3\))</td>', html)
    assert len(cells) == 2 * len(MODELS)  # every model on both tasks: mean [low, high] (3)
    for c in cells:
        mean, low, high = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\] \(3\)", c).groups())
        assert low <= mean <= high
    assert html.count("best mean</td>") == 2 and len(re.findall(r"<td>p = [0-9.e-]+, (worse|not distinguishable)",
                                                                   html)) == 4
    assert len(re.findall(r'<p class="verdict">[^<]*at 3 seeds', html)) == 2
    assert "Friedman test over 2 protocols and 3 models" in html
    assert (tmp_path / "r" / "aggregate-cd.png").is_file() and 'src="aggregate-cd.png"' in html
    assert "±" not in html


def test_one_seed_says_rankings_are_not_significant(store3, tmp_path):
    one = tmp_path / "one.db"
    store = Store(one)
    for model in MODELS:
        execute(tiny(model, "copying", 0, steps=10, eval_every=5, hidden=8), store)
    store.close()
    html = render_report(one, tmp_path / "r").read_text()
    assert "no ranking here is significant" in html and "no ranking in this report is significant" in html
    assert "(1 seed)" in html and "±" not in html and "[" not in "".join(re.findall(r'<td class="num">[^<]*seed', html))
