"""The report rendered from the checked-in fixture store (tests/fixtures/report.db)."""

import hashlib
import itertools
import json
import re
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest
from scipy import stats

from suite.errors import ConfigError
from suite.reports.render import render_report
from suite.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "report.db"
FIGURES = ("curves-step", "curves-time", "metric-vs-params", "time-per-step", "spectra", "eigen-angles",
           "orthogonality", "grad-profile")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.scripts, self.text = [], [], 0, []
        self._cell, self.rows = None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        if tag in ("a", "link") and "href" in a:
            self.links.append(a["href"])
        if tag == "script":
            self.scripts += 1
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "report.db"
    shutil.copy(FIXTURE, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    index = render_report(db, tmp / "out")
    after = hashlib.sha256(db.read_bytes()).hexdigest()
    html = index.read_text()
    page = _Page()
    page.feed(html)
    return {"index": index, "html": html, "page": page, "db_unchanged": before == after, "db": db}


def test_reports_never_write_to_the_store(rendered):
    assert rendered["db_unchanged"]


def test_every_protocol_has_its_table_baseline_and_figures(rendered):
    html, page, out = rendered["html"], rendered["page"], rendered["index"].parent
    sections = re.findall(r'<section id="task-([^"]+)"', html)
    # six protocols: copying at 30 steps and the unfinished exprnn run at 20, adding at 30 steps and the
    # diverging rnn run at 50, mnist, and the copied run under a hostile task name
    assert len(sections) == 6
    assert "mnist" in sections and sum(s.startswith("copying-") for s in sections) == 2
    assert sum(s.startswith("adding-") for s in sections) == 2
    for s in sections:
        for fig in FIGURES:
            assert (out / f"{s}-{fig}.png").is_file()
            assert f'src="{s}-{fig}.png"' in html
    srcs = [img["src"] for img in page.images]
    assert len(srcs) == 6 * len(FIGURES) == len(set(srcs))
    for src in srcs:
        data = (out / src).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    baselines = [r for r in page.rows if r and r[0] == "memoryless baseline"]
    assert len(baselines) == 6
    # copying T=8, K=3: K log 8 / (T + 2K) = 0.4456, recall baseline 1/8
    assert any(r[3] == "0.125" and r[-1] == "loss 0.4456" for r in baselines)
    assert any(r[3] == "0.1667" for r in baselines)  # adding: 1/6


def test_table_values_come_from_the_store(rendered):
    page = rendered["page"]
    store = Store(rendered["db"], read_only=True)
    runs = [r for r in store.runs(task="copying", model="scornn")]
    values = [r["summary"]["test_at_best_val"] for r in runs]
    mean = sum(values) / 2
    row = next(r for r in page.rows if r[:1] == ["scornn"] and "(n=2)" in r[3])
    # the Student-t 95% interval of two seeds: mean +- t(0.975, 1) * s / sqrt(2), with s / sqrt(2) = |a - b| / 2
    half = stats.t.ppf(0.975, 1) * abs(values[0] - values[1]) / 2
    shown = re.fullmatch(r"(\S+) \[(\S+), (\S+)\] \(n=2\)", row[3])
    assert shown and float(shown[1]) == pytest.approx(mean, rel=1e-3)
    assert float(shown[2]) == pytest.approx(mean - half, rel=1e-3, abs=1e-4)
    assert float(shown[3]) == pytest.approx(mean + half, rel=1e-3, abs=1e-4)
    assert row[4] == "2 / 0 / 0"  # finished / diverged / failed
    assert row[5] == "best mean" or row[5].startswith(("worse", "not distinguishable"))
    assert row[1] == f"{runs[0]['params_total']:,}"
    assert "finished 2" in row[10]
    statuses = " ".join(r[10] for r in page.rows if len(r) > 10)
    assert "diverged 1" in statuses and "running 1" in statuses


def test_a_diverged_seed_stays_in_its_row(rendered):
    # the fixture's rnn run on adding diverged: it is counted, scored at the floor (here the memoryless
    # baseline, 1/6: nothing finished under that protocol) and never called best
    page, html = rendered["page"], rendered["html"]
    row = next(r for r in page.rows if r[:1] == ["rnn"])
    assert row[3] == "—" and row[4] == "0 / 1 / 0" and row[5] == "no finished seed"
    assert "No seed finished here (every one diverged or failed): nothing to rank." in html
    assert 'class="best"><td class="name">rnn' not in html


def test_published_numbers_need_the_same_protocol(rendered, tmp_path):
    # the fixture's MNIST run has n=170 but 4 steps at batch 8: not the protocol of any published number
    page, html = rendered["page"], rendered["html"]
    mnist = next(r for r in page.rows if r[:1] == ["scornn"] and "0.972" not in r[-1] and r[1] == "16,415")
    assert mnist[-1] == "—"
    assert "arXiv:1707.09520v3" in html  # every published number still states its source
    # the same run recorded under the scoRNN paper's MNIST protocol is set beside its numbers
    from suite.protocols import protocol, resolve_protocol

    db = tmp_path / "report.db"
    shutil.copy(FIXTURE, db)
    paper = resolve_protocol(protocol("scornn-mnist"), "scornn").config.to_dict()
    con = sqlite3.connect(db)
    (run_id, raw), = con.execute("SELECT run_id, config FROM runs WHERE task = 'mnist'").fetchall()
    config = json.loads(raw)
    config.update({k: paper[k] for k in ("steps", "batch_size", "eval_every", "eval_batch_size")},
                  task_options={**config["task_options"], **paper["task_options"]})
    con.execute("UPDATE runs SET config = ? WHERE run_id = ?", (json.dumps(config), run_id))
    con.commit()
    con.close()
    html = render_report(db, tmp_path / "out").read_text()
    page = _Page()
    page.feed(html)
    row = next(r for r in page.rows if r[:1] == ["scornn"] and "0.972" in r[-1])
    assert "arXiv:1901.08428" in row[-1]
    assert re.search(r"<td>mnist</td><td>scornn-mnist</td><td>scornn</td><td class=\"num\">170</td>", html)


def test_strings_from_the_store_are_escaped(rendered):
    html, page = rendered["html"], rendered["page"]
    assert '<script>alert("model")' not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;model&#34;)&lt;/script&gt;&amp;" in html
    assert page.scripts == 0
    assert any(r and r[0] == '<script>alert("model")</script>&' for r in page.rows)  # shown as text
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+\.png", img["src"]) for img in page.images)


def test_page_works_offline(rendered):
    html, page = rendered["html"], rendered["page"]
    external = [u for u in page.links + [i["src"] for i in page.images] if "://" in u]
    assert external == []
    assert "@import" not in html and "<style>" in html


def test_environment_and_configuration(rendered):
    page = rendered["page"]
    import torch

    env_rows = [r for r in page.rows if len(r) == 8 and r[1] == torch.__version__]
    assert env_rows and env_rows[0][2] == "cpu"
    assert "Shared by every run" in rendered["html"] and "batch_size=8" in rendered["html"]


def test_empty_store_renders_a_hint(tmp_path):
    Store(tmp_path / "s.db").close()
    html = render_report(tmp_path / "s.db").read_text()
    assert "holds no runs yet" in html


def test_published_matching_includes_the_model_options_a_number_depends_on():
    # the dtriv-100 row is dtriv with K = 100 (its default): K = 10 and K = inf are other models
    from suite.reports.published import matching

    def dtriv(options):
        return [p.model for p in matching("exprnn-pmnist", "dtriv", 170, {"init": "cayley", **options})]

    assert dtriv({}) == ["dtriv-100"] and dtriv({"K": 100}) == ["dtriv-100"] and dtriv({"K": 100.0}) == ["dtriv-100"]
    assert dtriv({"K": 10}) == [] and dtriv({"K": float("inf")}) == [] and dtriv({"K": "inf"}) == []
    assert dtriv({"K": 100, "init": "cayley"}) == ["dtriv-100"]


def test_one_style_per_model_and_colours_that_can_be_told_apart():
    import colorsys

    from suite.reports.figures import styles

    few = styles({m: m for m in ("gru", "lstm", "rnn", "scornn", "exprnn", "eurnn")})
    colors = [s.color for s in few.values()]
    # ten distinct hues (tab20 paired gru/lstm in two blues and rnn/scornn in two oranges)
    for a, b in itertools.combinations(colors, 2):
        assert sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 > 0.25
    assert styles({m: m for m in ("gru", "lstm")}) == styles({m: m for m in ("gru", "lstm")})  # deterministic
    # beyond ten models: one hue per family (the registry's info.family), shade and line style per model
    names = ["dtriv", "exprnn", "exprnn_cayley", "geotorch_cayley", "torch_cayley", "eurnn", "eurnn_fft", "gru",
             "lstm", "rnn", "scornn", "scornn_autograd"]
    many = styles({m: m for m in names})
    assert len({(s.color, s.ls, s.marker) for s in many.values()}) == len(names)
    assert len({s.color for s in many.values()}) == len(names)
    hue = {m: round(colorsys.rgb_to_hls(*many[m].color)[0], 3) for m in names}
    assert len({hue[m] for m in ("dtriv", "exprnn", "exprnn_cayley", "geotorch_cayley", "torch_cayley")}) == 1
    assert hue["eurnn"] == hue["eurnn_fft"] != hue["exprnn"] and hue["scornn"] == hue["scornn_autograd"]
    assert hue["gru"] != hue["lstm"]


def test_a_file_of_the_users_named_like_the_aggregate_figure_is_never_overwritten(tmp_path):
    db = tmp_path / "report.db"
    shutil.copy(FIXTURE, db)
    out = tmp_path / "out"
    out.mkdir()
    (out / "aggregate-iqm.png").write_bytes(b"mine")
    with pytest.raises(ConfigError, match="aggregate-iqm.png"):
        render_report(db, out)
    assert (out / "aggregate-iqm.png").read_bytes() == b"mine"
