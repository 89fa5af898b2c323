"""The speed floor: which products a model's training step cannot avoid (structure only; timings are
benchmarks, not tests)."""

import pytest

from suite.speed import SpeedCase, build, floor_fn, speed_table

CASE = SpeedCase(n=8, T=25, B=2)


@pytest.mark.parametrize("name, width, gates", [("scornn", 8, 1), ("exprnn", 8, 1), ("eurnn", 16, 1),
                                                ("lstm", 8, 4), ("gru", 8, 3), ("nn.RNN(tanh)", 8, 1)])
def test_floor_products_follow_the_state(name, width, gates):
    # a complex state of size n is a real 2n-wide one; LSTM/GRU multiply by 4n/3n gate rows
    assert build(name, CASE).step_product() == (width, gates)


def test_floor_runs_and_leaves_no_gradients():
    model = build("exprnn", CASE)
    floor_fn(model, CASE)()
    assert all(p.grad is None for p in model.parameters())


def test_speed_table_reports_floor_ratio():
    rows = speed_table(["scornn", "lstm"], CASE, rounds=1)
    for r in rows:
        assert r["floor_ms"] > 0
        assert r["floor_ratio"] == pytest.approx(r["ms"] / r["floor_ms"])
