"""The command line as a researcher meets it: help and version, progress on a terminal and in a log,
-q/-v, `suite show`'s formats and filters, value sweeps, one report folder per store, the dry run's
estimate and its sources, and install hints that work. Every test runs the real CLI in a subprocess."""

import csv
import fcntl
import io
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading

import pytest

import suite
from suite.cli import sweep
from suite.config import parse_assignments
from suite.store import Store
from tests.helpers import ROOT, cli, wait_running

TINY = ["--tasks", "copying", "--seeds", "0", "--set", "task.T=8", "--set", "task.eval_size=64",
        "--set", "batch_size=8", "--set", "eval_every=10", "--steps", "30", "--threads", "1"]


# ---- help and version ---------------------------------------------------------------------------------
def test_bare_suite_prints_the_help_and_trains_nothing(tmp_path):
    res = cli(cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "usage: suite" in res.stderr and "suite run" in res.stderr and "{list,run,tune," in res.stderr
    assert "no command given; the main job is `suite run`" in res.stderr
    assert list(tmp_path.iterdir()) == []  # no results/ folder: nothing started
    res = cli("-q", cwd=tmp_path)  # global options alone are no command either
    assert res.returncode == 2 and list(tmp_path.iterdir()) == []


def test_version():
    res = cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"suite {suite.__version__}"


def test_an_argument_error_shows_the_commands_own_usage(tmp_path):
    res = cli("show", "--bogus")
    assert res.returncode == 2
    assert res.stderr.startswith("usage: suite show") and "suite show: error: unrecognized arguments: --bogus" \
        in res.stderr
    res = cli("run", "--steps", "many")
    assert res.returncode == 2 and res.stderr.startswith("usage: suite run") and "Traceback" not in res.stderr


def test_install_hints_name_what_can_be_installed():
    """The distribution is installed from its clone; no hint may name a package index entry that does not
    exist."""
    res = cli("run", "--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "pip install '.[ray]'" in text and "ortho-rnn-suite[" not in text
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("suite/*.py")]:
        assert "install 'ortho-rnn-suite[" not in path.read_text(), path


# ---- a small sweep: progress in a log, show, report folders ------------------------------------------
@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """scornn and rnn, each at hidden 8 and 12 (a sweep: four runs), two workers, -v, stderr a pipe."""
    folder = tmp_path_factory.mktemp("swept")
    db = folder / "a.db"
    res = cli("run", "-v", "--models", "scornn,rnn", "--set", "hidden=8,12", "--workers", "2", *TINY,
              "--db", str(db))
    assert res.returncode == 0, res.stderr
    return db, res


def test_a_sweep_runs_every_value_as_its_own_run(swept):
    db, res = swept
    store = Store(db, read_only=True)
    runs = store.runs()
    store.close()
    got = sorted((r["model"], r["config"]["hidden"], r["status"]) for r in runs)
    assert got == [("rnn", 8, "finished"), ("rnn", 12, "finished"), ("scornn", 8, "finished"),
                   ("scornn", 12, "finished")]
    assert len({r["run_id"] for r in runs}) == 4
    # a point of the sweep is the very run a single value names: same config hash, so nothing to do
    again = cli("run", "--models", "scornn,rnn", "--set", "hidden=8", *TINY, "--db", str(db), "--no-report")
    assert again.returncode == 0 and "outcomes: skipped 2" in again.stderr, again.stderr


def test_a_log_gets_lines_not_frames(swept):
    """stderr is a pipe: no carriage returns, no cursor codes; a line per finished run with its time and
    test score, a line per evaluation, and with -v a line per step, from both workers."""
    _, res = swept
    err = res.stderr
    assert "\r" not in err and "\x1b[" not in err
    finished = re.findall(r"^\[(\d)/4\] (\S+) finished in \d+s, test recall_accuracy [\d.]+$", err, re.M)
    assert sorted(int(k) for k, _ in finished) == [1, 2, 3, 4] and len({r for _, r in finished}) == 4
    for model in ("scornn", "rnn"):
        assert re.search(rf"^{model}-copying-\S+ step 20/30 loss [\d.]+, val loss [\d.]+, .*ETA", err, re.M)
        # per-step lines: the workers send every step to the parent with -v
        steps = re.findall(rf"^{model}-copying-\S+ step (\d+)/30 loss [\d.]+$", err, re.M)
        assert len(steps) >= 2 * 25, err[-2000:]
    assert err.rstrip().splitlines()[-2] == "outcomes: finished 4"


def test_quiet_prints_only_the_summary_and_each_store_gets_its_own_report(swept):
    db, res = swept
    assert (db.parent / "a-report" / "index.html").is_file()
    assert f"report: {db.parent / 'a-report' / 'index.html'}" in res.stderr
    other = db.parent / "p.db"
    q = cli("run", "-q", "--models", "rnn", *TINY, "--db", str(other))
    assert q.returncode == 0, q.stderr
    assert q.stderr.splitlines() == ["outcomes: finished 1", f"report: {db.parent / 'p-report' / 'index.html'}"]
    assert "p.db" not in (db.parent / "a-report" / "index.html").read_text()
    assert not (db.parent / "report").exists()  # the folder two stores used to share


def test_show_table_json_csv_and_filters(swept):
    db, _ = swept
    table = cli("show", "--db", str(db))
    assert table.returncode == 0, table.stderr
    head, *rows = table.stdout.splitlines()
    assert head.split()[:8] == ["task", "protocol", "model", "seed", "status", "step", "lr", "metric"]
    assert len(rows) == 5 and rows[-1] == f"4 runs in {db}"
    assert all(" copying-" in r and " 30/30 " in r and " 0.01 " in r for r in rows[:4])

    js = cli("show", "--db", str(db), "--format", "json")
    data = json.loads(js.stdout)  # stdout is JSON and nothing else
    assert len(data) == 4 and {d["config"]["hidden"] for d in data} == {8, 12}
    assert all(d["status"] == "finished" and d["summary"]["metric"] == "recall_accuracy" and d["protocol"]
               and d["env"]["torch"] for d in data)

    out = cli("show", "--db", str(db), "--format", "csv", "--models", "scornn")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 2 and {r["model"] for r in rows} == {"scornn"}
    by_id = {d["run_id"]: d for d in data}
    for r in rows:
        d = by_id[r["run_id"]]
        assert float(r["config.lr"]) == d["config"]["lr"] and r["protocol"] == d["protocol"]
        assert float(r["summary.test_at_best_val"]) == d["summary"]["test_at_best_val"]
        assert json.loads(r["config.task_options"]) == d["config"]["task_options"]

    assert len(json.loads(cli("show", "--db", str(db), "--format", "json", "--status", "failed,diverged")
                          .stdout)) == 0
    proto = data[0]["protocol"]
    picked = json.loads(cli("show", "--db", str(db), "--format", "json", "--protocol", proto, "--tasks", "copy*",
                            "--models", "rnn").stdout)
    assert {d["model"] for d in picked} == {"rnn"} and len(picked) == 2


@pytest.mark.parametrize("option, value, valid", [("--status", "done", "finished, diverged"),
                                                   ("--models", "scorn", "scornn"),
                                                   ("--protocol", "nope", "scornn-copying-T1000")])
def test_a_bad_show_filter_names_the_valid_choices_under_shows_usage(swept, option, value, valid):
    db, _ = swept
    res = cli("show", "--db", str(db), option, value)
    assert res.returncode == 2
    assert res.stderr.startswith("usage: suite show") and f"invalid {option} {value!r}" in res.stderr
    assert valid in res.stderr and "Traceback" not in res.stderr


# ---- sweeps: the rules ------------------------------------------------------------------------------
def test_sweep_values_products_and_the_comma_rule():
    assert sweep(["hidden=64"]) == [parse_assignments(["hidden=64"])]  # one value: exactly as before
    assert sweep(["hidden=64,128", "lr=1e-3,1e-2"]) == [
        {"hidden": 64, "lr": 1e-3}, {"hidden": 64, "lr": 1e-2}, {"hidden": 128, "lr": 1e-3},
        {"hidden": 128, "lr": 1e-2}]
    assert sweep(["model.sizes=[64,128]"]) == [{"model.sizes": [64, 128]}]  # brackets: one list value
    assert sweep(["model.pair=(1,2)", "task.data_dir='a,b'"]) == [{"model.pair": (1, 2), "task.data_dir": "a,b"}]
    assert sweep(["optimizer=adam,rmsprop"]) == [{"optimizer": "adam"}, {"optimizer": "rmsprop"}]


def test_a_repeated_set_key_is_refused_with_the_comma_syntax(tmp_path):
    res = cli("run", "--models", "rnn", *TINY, "--set", "hidden=8", "--set", "hidden=16", "--db",
              str(tmp_path / "s.db"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--set hidden is given twice" in res.stderr and "--set hidden=8,16" in res.stderr
    assert not (tmp_path / "s.db").exists()
    res = cli("run", "--models", "rnn", *TINY, "--set", "hidden=8,", "--db", str(tmp_path / "s.db"))
    assert res.returncode == 2 and "an empty value in the comma list" in res.stderr


def test_tune_refuses_a_sweep(tmp_path):
    """A search's study is named by model and protocol: two points of a sweep would share one budget."""
    res = cli("tune", "--models", "rnn", "--tasks", "adding", "--set", "hidden=8,16", "--db", str(tmp_path / "s.db"))
    assert res.returncode == 2 and "suite tune takes one value per --set key" in res.stderr
    assert "hidden=8,16" in res.stderr and not (tmp_path / "s.db").exists()


def test_a_sweep_in_the_dry_run_shows_one_block_per_value():
    res = cli("run", "--models", "rnn", "--tasks", "adding", "--set", "hidden=8,16", "--dry-run", "--estimate",
              "none")
    assert res.returncode == 0, res.stderr
    assert "1 protocol(s) x 1 model(s) x 3 seed(s) = 6 runs" in res.stdout
    assert res.stdout.count("  rnn x 3 seed(s)") == 2
    assert re.search(r"^    hidden=8\s+--set$", res.stdout, re.M) and re.search(r"^    hidden=16\s+--set$",
                                                                                   res.stdout, re.M)


# ---- the dry run -------------------------------------------------------------------------------------
def test_the_dry_run_estimates_from_the_cost_model_without_training(tmp_path):
    res = cli("run", "--scale", "paper", "--tasks", "copying", "--models", "scornn,eurnn", "--dry-run",
              "--db", str(tmp_path / "none.db"))
    assert res.returncode == 0, res.stderr
    assert "measuring" not in res.stderr
    ms = {}
    for block in res.stdout.split("\nprotocol ")[1:]:
        for model, value in re.findall(r"^  (\w+) x 3 seed\(s\): ~([\d.]+) ms/step x \d+ steps = .* "
                                       r"\(cost model, rough\)$", block, re.M):
            ms[block.split()[0], model] = float(value)
    assert len(ms) == 6  # 3 protocols x 2 models, each estimated
    # the cost model is linear in the sequence length: T=2000 costs (2000 + 20) / (1000 + 20) times T=1000
    for model in ("scornn", "eurnn"):
        ratio = ms["scornn-copying-T2000", model] / ms["scornn-copying-T1000", model]
        assert ratio == pytest.approx(2020 / 1020, rel=0.01)
    assert not (tmp_path / "none.db").exists()


def test_the_dry_runs_source_column_is_never_cut():
    from suite.plan import format_plan
    from suite.protocols import protocol, resolve_protocol

    r = resolve_protocol(protocol("scornn-copying-T1000"), "eurnn", scale="paper")
    source = "preset (paper copying family:EURNN): Jing et al., EURNN, ICML 2017, arXiv:1612.05231v3"
    r = type(r)(r.config, r.protocol, {**r.sources, "hidden": source}, r.modified)
    text = format_plan([r], {}, "paper", "cpu")
    line = next(x for x in text.splitlines() if x.strip().startswith("hidden="))
    assert re.search(r"^    hidden=\d+\s+preset \(paper copying family:EURNN\) \[\d+\]$", line), line
    assert "arXiv:1612.05231v3" in text


# ---- a terminal: live lines, and Ctrl-C ---------------------------------------------------------------
def _terminal():
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    return master, slave


def test_a_terminal_gets_a_live_line_per_run_and_ctrl_c_counts_what_finished(tmp_path):
    db = tmp_path / "s.db"
    master, slave = _terminal()
    proc = subprocess.Popen([sys.executable, "-m", "suite", "run", "--models", "scornn", "--tasks", "copying",
                             "--seeds", "0-3", "--steps", "5000", "--set", "task.T=20", "--set", "hidden=16",
                             "--set", "eval_every=50", "--workers", "2", "--threads", "1", "--no-report",
                             "--db", str(db)], cwd=ROOT, process_group=0, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    os.close(slave)
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_running(db, proc, 2, 60)
        import time

        time.sleep(1.5)  # a few frames of both live lines
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=10)
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 130, out[-3000:]
    store = Store(db, read_only=True)
    running = {r["run_id"] for r in store.runs() if r["status"] == "interrupted"}
    store.close()
    assert len(running) == 2
    for run_id in running:  # a live line per running run: its id, step/total and loss
        assert re.search(re.escape(run_id) + r":\s+\d+%\|.*\| \d+/5000 \[.*loss [\d.]+", out), out[-3000:]
    totals = re.findall(r"runs:\s+\d+%\|[^|]*\| (\d+)/4", out)
    assert totals and set(totals) == {"0"}  # never N/N: nothing finished
    assert "outcomes: interrupted 2, not started 2" in out
    assert "run the same command to resume" in out
