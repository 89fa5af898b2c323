"""Presets and --set reach every parameter group by name; family data, not names, select presets."""

import hashlib
import json

import pytest

from suite.config import RunConfig, apply_values, parse_assignments
from suite.errors import ConfigError
from suite.presets import PRESETS, presets_for, resolve
from suite.registry import MODELS, TASKS, create_model
from suite.runner import group_settings, make_optimizers


@pytest.mark.parametrize("model", MODELS.names())
def test_every_matching_preset_applies_strictly(model):
    """No preset value is silently dropped: each key is valid for every (model, task) it matches."""
    for task in TASKS.names():
        for scale in ("quick", "paper"):
            config = RunConfig(model=model, task=task)
            for p in presets_for(model, task, scale):
                if p.task == "*" and p.models == "*":
                    continue
                config = apply_values(config, p.values, strict=True)


def test_family_selects_presets():
    assert [p.source for p in presets_for("scurnn", "copying", "paper")][-1].startswith("Maduranga")
    assert not presets_for("scurnn", "copying", "paper")[0].models.startswith("scurnn")
    # the expRNN conventions reach every model whose entry says so, and no other
    exp = {m for m in MODELS.names() if MODELS.entry(m).info.family == "expRNN"}
    got = {m for m in MODELS.names() if any(p.models == "family:expRNN" for p in presets_for(m, "mnist", "paper"))}
    assert got == exp and "scornn" not in got


def test_group_settings_from_presets_and_set():
    c = resolve("scurnn", "mnist", "paper")
    model = create_model("scurnn", d_in=1, d_out=10, hidden=6)
    assert group_settings(model, c, "phases") == {"optimizer": "adagrad", "lr": 1e-3, "weight_decay": 0.0}
    assert group_settings(model, c, "orthogonal") == {"optimizer": "rmsprop", "lr": 1e-4, "weight_decay": 0.0}
    assert group_settings(model, c, "default")["optimizer"] == "adam"
    c2 = resolve("scurnn", "mnist", "paper", overrides=parse_assignments(
        ["lr.phases=3e-3", "optimizer.phases=sgd", "lr.orthogonal=2e-4", "weight_decay.default=0.01"]))
    assert group_settings(model, c2, "phases") == {"optimizer": "sgd", "lr": 3e-3, "weight_decay": 0.0}
    assert c2.orth_lr == 2e-4 and group_settings(model, c2, "orthogonal")["lr"] == 2e-4  # lr.orthogonal is orth_lr
    assert group_settings(model, c2, "default")["weight_decay"] == 0.01
    assert [type(o).__name__ for o in make_optimizers(model, c2)] == ["Adam", "RMSprop", "SGD"]


def test_nnrnn_upper_group_has_its_own_rate_and_decay():
    model = create_model("nnrnn", d_in=1, d_out=10, hidden=6)
    c = resolve("nnrnn", "pmnist", "paper", overrides={"lr.upper": 1e-5})
    assert group_settings(model, c, "upper") == {"optimizer": "rmsprop", "lr": 1e-5, "weight_decay": 1e-4}
    assert group_settings(model, resolve("nnrnn", "copying", "paper"), "upper")["lr"] == 5e-4  # default's rate


def test_bad_group_settings_name_the_valid_choices():
    with pytest.raises(ConfigError, match=r"model 'scornn' has no parameter group 'phases' .*its groups: default, "
                                          r"orthogonal"):
        apply_values(RunConfig(model="scornn", task="copying"), {"lr.phases": 1e-3}, strict=True)
    with pytest.raises(ConfigError, match=r"invalid optimizer.phases='lbfgs'.*'rmsprop', 'adam'"):
        apply_values(RunConfig(model="scurnn", task="copying"), {"optimizer.phases": "lbfgs"}, strict=True)
    with pytest.raises(ConfigError, match=r"invalid lr.upper=-1"):
        apply_values(RunConfig(model="nnrnn", task="copying"), {"lr.upper": -1}, strict=True)


def test_config_identity_unchanged_without_group_settings():
    """Runs recorded before groups had settings keep their run ids."""
    c = RunConfig(model="scornn", task="copying")
    unhashed = ("seed", "checkpoint_every", "group_options", "precision")
    before = {k: v for k, v in c.to_dict().items() if k not in unhashed}
    assert c.config_hash == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert c == RunConfig.from_dict(c.to_dict())
    c2 = apply_values(RunConfig(model="scurnn", task="copying"), {"lr.phases": 1e-3}, strict=True)
    assert c2.config_hash != apply_values(RunConfig(model="scurnn", task="copying"), {}, strict=True).config_hash
    assert RunConfig.from_dict(c2.to_dict()) == c2
    assert any(p.models.startswith("family:") for p in PRESETS)


def test_published_numbers_match_through_the_registry_data():
    """The paper's model name comes from the registry entry (published_as), not from a name table."""
    from suite.reports.published import _EX_P, _SC_M, PUBLISHED, matching

    assert {p.model for p in matching(_SC_M, "scornn_autograd", 170, "cayley")} == {"scoRNN"}
    assert [p.value for p in matching(_EX_P, "dtriv", 170, "cayley")] == [0.951]  # "dtriv-100"
    assert matching(_EX_P, "geotorch_expm", 170, None) == []  # expRNN's conventions, not its numbers
    assert matching(_EX_P, "not_registered_here", 170, "cayley") == []
    # the comparison models' numbers are listed with their sources; no suite protocol reproduces them yet
    urnn = [p for p in PUBLISHED if p.model == "uRNN"]
    assert [(p.task, p.value) for p in urnn] == [("mnist", 0.951), ("pmnist", 0.914)]
    assert all(p.protocol is None and "arXiv:1511.06464" in p.source for p in urnn)


def test_run_order_cost_comes_from_the_registry():
    from suite.executors import cost as _cost

    c = {m: _cost(RunConfig(model=m, task="copying", steps=10)) for m in ("scornn", "eurnn", "urnn")}
    assert c["eurnn"] == 4 * c["scornn"] and c["urnn"] == MODELS.entry("urnn").info.cost * c["scornn"]
