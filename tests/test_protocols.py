"""Protocols, strict scoping of settings, the dry-run plan, and the report's grouping by protocol."""

import math
import re
from html.parser import HTMLParser

import pytest
import torch

from suite.config import RunConfig, apply_values, canonical, scope_of
from suite.errors import ConfigError
from suite.presets import SCALES, listing, presets_for
from suite.protocols import (
    LOCATION_OPTIONS,
    PROTOCOL_FIELDS,
    PROTOCOLS,
    protocol,
    protocol_key,
    protocols_for,
    resolve_protocol,
)
from suite.registry import MODELS, TASKS
from suite.reports.data import protocol_of
from suite.reports.published import effective_options, matching, published_rows
from suite.reports.render import render_report
from suite.runner import execute
from suite.store import Store
from tests.helpers import cli, tiny


def _where(config: RunConfig, key: str):
    """The value ``config`` holds for a canonical key (``steps``, ``task.T``, ``model.K``)."""
    scope, _, name = key.rpartition(".")
    if scope == "task":
        return dict(config.task_options)[name]
    if scope == "model":
        return dict(config.model_options)[name]
    if scope:  # a parameter group's setting, lr.upper
        return config.group_setting(scope, name)
    return getattr(config, name)


def _all_pairs():
    for p in PROTOCOLS:
        for scale in p.scales:
            for model in MODELS.names():
                yield p, scale, model


def test_dtriv_on_copying_at_paper_scale_gets_ten_task_symbols_and_K_100():
    for p in protocols_for("paper", "copying"):
        c = resolve_protocol(p, "dtriv").config
        assert dict(c.task_options)["K"] == 10
        assert dict(c.model_options)["K"] == 100
        assert c.task == "copying" and dict(c.task_options)["T"] in (1000, 2000)


def test_a_bare_key_both_sides_take_is_refused():
    config = RunConfig(model="dtriv", task="copying")
    with pytest.raises(ConfigError, match=r"task\.K or model\.K"):
        apply_values(config, {"K": 1}, strict=True)
    with pytest.raises(ConfigError, match=r"task\.K or model\.K"):
        apply_values(config, {"K": 1}, strict=False)  # ambiguity is never skipped
    c = apply_values(config, {"task.K": 3, "model.K": 7}, strict=True)
    assert dict(c.task_options)["K"] == 3 and dict(c.model_options)["K"] == 7
    # a bare key that exactly one side takes still lands there
    assert scope_of(RunConfig(model="scornn", task="copying"), "K") == ("task", "K")
    assert scope_of(RunConfig(model="dtriv", task="adding"), "K") == ("model", "K")
    with pytest.raises(ConfigError, match="scope must be 'task' or 'model'"):
        scope_of(config, "optim.K")


def test_cli_refuses_set_K_naming_both_scopes():
    r = cli("run", "--scale", "paper", "--models", "dtriv", "--tasks", "copying", "--set", "K=1", "--dry-run",
            "--estimate", "none")
    assert r.returncode == 2
    assert "task.K" in r.stderr and "model.K" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("protocol_obj, scale, model", list(_all_pairs()), ids=lambda v: getattr(v, "name", v))
def test_every_preset_and_protocol_value_lands_where_intended(protocol_obj, scale, model):
    """Walk every preset that matches (model, task) at the scale, then the protocol: each value must
    sit at its scoped place in the config unless a later one sets the same key."""
    r = resolve_protocol(protocol_obj, model, scale=scale)
    config = r.config
    expected = {}
    for preset in presets_for(model, protocol_obj.task, scale):
        for key, value in preset.values.items():
            scope, name = scope_of(config, key)
            assert scope != "task" and name not in PROTOCOL_FIELDS, f"{key} is a protocol setting"
            expected[canonical(scope, name)] = (value, preset.source)
    for key, value in protocol_obj.values.items():
        assert key in PROTOCOL_FIELDS or key.startswith("task."), f"{key} is a model-side setting"
        expected[key] = (value, protocol_obj.source)
    for key, (value, source) in expected.items():
        assert _where(config, key) == value, (key, source)
        assert source in r.sources[key]
    # every source printed by the plan names where the value came from
    settings = r.settings()
    assert {k for k, _, _ in settings} >= set(expected)
    assert all(s for _, _, s in settings)


def test_presets_name_their_scope_and_hold_no_protocol_settings():
    for _, preset in listing():
        assert preset.scale in SCALES
        for key in preset.values:
            assert not key.startswith("task.") and key not in PROTOCOL_FIELDS, (preset, key)
            if "." not in key:
                assert key in RunConfig.__dataclass_fields__, f"{key!r} must be written model.{key}"


def test_a_paper_scale_plan_never_mixes_protocols():
    keys = {}
    for p in PROTOCOLS:
        if "paper" not in p.scales:
            continue
        per_model = {protocol_key(resolve_protocol(p, m).config.to_dict()) for m in MODELS.names(mission=True)}
        assert len(per_model) == 1, f"{p.name}: models disagree on shared settings"
        key = per_model.pop()
        assert key not in keys, f"{p.name} and {keys.get(key)} are one protocol"
        keys[key] = p.name
        # the report names each run's protocol from its config alone
        config = resolve_protocol(p, "scornn", seed=3).config.to_dict()
        assert protocol_of(config).name == p.name
    # a --set that changes a shared setting leaves the protocol: its runs are an unnamed one
    r = resolve_protocol(protocol("exprnn-copying-T1000"), "dtriv", overrides={"steps": 10})
    assert r.modified == ("steps",) and protocol_of(r.config.to_dict()).name is None
    # where data live is not part of a protocol
    a = resolve_protocol(protocol("exprnn-mnist"), "lstm", overrides={"data_dir": "/x"}).config.to_dict()
    assert protocol_of(a).name == "exprnn-mnist" and "data_dir" in LOCATION_OPTIONS


def test_dry_run_prints_the_source_of_every_setting():
    r = cli("run", "--scale", "paper", "--models", "dtriv,lstm", "--tasks", "copying", "--dry-run",
            "--estimate", "none")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "3 protocol(s) x 2 model(s)" in out
    for name in ("scornn-copying-T1000", "scornn-copying-T2000", "exprnn-copying-T1000"):
        assert f"protocol {name}" in out
    setting = re.compile(r"^    (\S+?)=(.*?)\s{2,}(\S.*)$")
    lines = [m for m in map(setting.match, out.splitlines()) if m]
    assert len(lines) > 40 and all(m.group(3) for m in lines)
    assert any(m.group(1) == "model.K" and m.group(2) == "100" and "preset" in m.group(3) for m in lines)
    assert any(m.group(1) == "task.K" and m.group(2) == "10" and "protocol" in m.group(3) for m in lines)
    assert "arXiv:1909.09501v2" in out and "arXiv:1707.09520v3" in out  # the numbered sources
    # a changed shared setting is flagged
    r = cli("run", "--scale", "paper", "--models", "dtriv", "--tasks", "copying", "--protocols", "exprnn-*",
            "--set", "task.T=50", "--dry-run", "--estimate", "none")
    assert r.returncode == 0 and "LEAVES THE PROTOCOL (--set task.T)" in r.stdout
    assert "task.T=50" in r.stdout and "1 protocol(s)" in r.stdout


def test_dry_run_measures_steps_when_asked(tmp_path):
    r = cli("run", "--models", "scornn", "--tasks", "copying", "--set", "steps=50", "--dry-run", "--measure",
            "--db", str(tmp_path / "none.db"))
    assert r.returncode == 0, r.stderr
    m = re.search(r"~([\d.]+) ms/step x 50 steps = .* \(measured now on cpu, 2 steps\)", r.stdout)
    assert m and float(m.group(1)) > 0
    assert not (tmp_path / "none.db").exists()  # a dry run writes nothing


def test_published_numbers_match_protocol_model_hidden_and_init():
    exprnn = resolve_protocol(protocol("exprnn-mnist"), "exprnn").config
    options = dict(exprnn.model_options)
    assert effective_options("exprnn", options)["init"] == "cayley"  # the MNIST script's, not the Henaff default
    assert [p.value for p in matching("exprnn-mnist", "exprnn", exprnn.hidden, options)] == [0.980]
    assert matching("exprnn-mnist", "exprnn", 170, {"init": "henaff"}) == []
    assert matching("scornn-mnist", "exprnn", 170, {"init": "cayley"}) == []  # another protocol
    assert matching(None, "scornn", 170, {}) == []  # an unnamed protocol matches nothing
    assert [p.value for p in matching("exprnn-mnist", "exprnn_cayley", 170, {})] == [0.980]
    dtriv = resolve_protocol(protocol("exprnn-pmnist"), "dtriv").config
    assert dict(dtriv.model_options)["init"] == "cayley"
    lstm = resolve_protocol(protocol("exprnn-mnist"), "lstm").config
    assert lstm.rmsprop_alpha == 0.99 and lstm.hidden == 128  # torch RMSprop, as the expRNN code
    names = {p.name for p in PROTOCOLS}
    assert all(p.protocol is None or p.protocol in names for p in published_rows())


def test_every_protocol_runs_every_mission_model():
    for p in PROTOCOLS:
        for model in MODELS.names(mission=True):
            c = resolve_protocol(p, model).config
            for k in dict(c.task_options):
                assert k in TASKS.options(p.task)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.rows, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append({"id": a.get("id"), "rows": []})
        if tag == "tr" and self.sections:
            self.sections[-1]["rows"].append({"class": a.get("class"), "cells": []})
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.sections and self.sections[-1]["rows"]:
            self.sections[-1]["rows"][-1]["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_two_protocols_of_one_task_render_two_tables_with_two_baselines(tmp_path):
    torch.set_num_threads(1)
    store = Store(tmp_path / "s.db")
    for model in ("scornn", "lstm"):
        execute(tiny(model, steps=10, task_options={"T": 8, "K": 3}), store)
    execute(tiny("scornn", steps=10, task_options={"T": 12, "K": 3}), store)
    store.close()
    html = render_report(tmp_path / "s.db", tmp_path / "out").read_text()
    page = _Page()
    page.feed(html)
    tables = [s for s in page.sections if (s["id"] or "").startswith("task-copying")]
    assert len(tables) == 2
    baselines, models = [], []
    for s in tables:
        rows = [r for r in s["rows"] if r["cells"] and r["cells"][0] != "model"]
        base = [r for r in rows if r["cells"][0] == "memoryless baseline"]
        assert len(base) == 1
        baselines.append(base[0]["cells"][-1])
        models.append(sorted(r["cells"][0] for r in rows if r["cells"][0] != "memoryless baseline"))
        assert sum(r["class"] == "best" for r in rows) == 1  # best mark only inside the protocol
    # K log 8 / (T + 2K): T=8 -> 0.4456, T=12 -> 0.3466
    assert sorted(baselines) == sorted([f"loss {3 * math.log(8) / 14:.4g}", f"loss {3 * math.log(8) / 18:.4g}"])
    assert sorted(models) == [["lstm", "scornn"], ["scornn"]]
    # the page says what differs, in each table
    assert html.count("<code>task.T=8</code>") >= 1 and html.count("<code>task.T=12</code>") >= 1
    assert html.count("protocols on this page") == 2


def test_degrees_of_freedom_are_recorded_beside_the_stored_count(tmp_path):
    store = Store(tmp_path / "s.db")
    out = execute(tiny("torch_cayley", steps=3, eval_every=3), store)
    run = store.run(out.run_id)
    n = 12
    assert run["params_recurrent"] == n * n
    assert run["summary"]["params_dof"] == run["params_total"] - n * n + n * (n - 1) // 2
    out = execute(tiny("scornn", steps=3, eval_every=3), store)
    run = store.run(out.run_id)
    assert run["summary"]["params_dof"] == run["params_total"]


def test_every_preset_applies_somewhere():
    rows = listing()
    used = set()
    for p, scale, model in _all_pairs():
        applied = presets_for(model, p.task, scale)
        used |= {i for i, (scope, preset) in enumerate(rows)
                 if preset in applied and scope in (model, preset.models)}
    assert [rows[i] for i in range(len(rows)) if i not in used] == []


def test_plan_total_is_ms_per_step_times_steps_summed_over_runs():
    from suite.plan import format_plan

    resolved = [resolve_protocol(protocol("quick-copying"), m, seed) for m in ("scornn", "lstm") for seed in (0, 1)]
    estimates = {r.config.config_hash: (250.0, "given") for r in resolved}  # 250 ms x 300 steps = 75 s a run
    head = format_plan(resolved, estimates, "quick", "cpu").splitlines()[0]
    assert "= 4 runs; estimated training time 5 min run one after another" in head  # 4 x 75 s
