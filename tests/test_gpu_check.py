"""benchmarks/gpu_check.py, the one-command GPU check: its dry run without a GPU (every step skipped, its
command checked on the CPU, the table written), and the machinery its GPU run uses, run for real on the
CPU (time limits, the Ctrl-C slice, the store and JUnit readers, the wheels)."""

import dataclasses
import os
import re
import subprocess
import sys
import zipfile

import pytest

from suite.speed import targets
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check


@pytest.mark.slow
def test_dry_run_skips_every_step_checks_its_command_and_writes_the_table(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU, whatever the machine has
    env.pop("TRITON_INTERPRET", None)
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    table = (tmp_path / "gpu-check.md").read_text()
    assert table == r.stdout
    names = [s.name for s in gpu_check.steps(tmp_path)]
    assert names == ["triton", "quick", "bf16", "speed", "slice-scornn", "slice-exprnn", "slice-lstm"]
    for name in names:
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert "**skipped**" in row and "no CUDA device" in row and "command checked on the CPU: ok" in row, row
    assert re.search(r"tests collected", table)  # the Triton tests, collected under the interpreter
    assert "= 14 runs" in table  # every mission model planned on quick-copying
    assert f"{len(targets('gpu')['models']) + 1} rows written and read back" in table  # and the baseline
    assert not (tmp_path / gpu_check.DB).exists()  # nothing was trained


def test_the_steps_fit_eight_minutes():
    limits = sum(s.limit for s in gpu_check.steps(ROOT))
    assert limits <= 7.5 * 60  # the rest is for starting processes and writing the table


def test_a_slice_is_stopped_with_ctrl_c_and_its_progress_read_from_the_store(tmp_path):
    step = gpu_check.Step("slice-rnn", "rnn, stopped", gpu_check.suite_run(tmp_path, "rnn", "quick-copying",
                                                                            "--steps", "100000"), 120,
                          interrupt_after=25)
    step = dataclasses.replace(step, argv=tuple("cpu" if a == "cuda" else a for a in step.argv))
    outcome = gpu_check.run_step(step, tmp_path, gpu_check.step_env(None))
    assert outcome.status == "passed", outcome.detail  # exit 130: interrupted on purpose
    (subject, status, text), = gpu_check.run_rows(tmp_path / gpu_check.DB, ("rnn",), "quick-copying")
    assert subject == "rnn" and status == "interrupted"
    assert re.match(r"step \d+/100000", text) and "orth" in text


def test_a_step_past_its_limit_is_killed(tmp_path):
    step = gpu_check.Step("sleep", "sleeps", ("-c", "import time; print('started', flush=True); time.sleep(60)"), 2)
    outcome = gpu_check.run_step(step, tmp_path, gpu_check.step_env(None))
    assert outcome.status == "timed out" and outcome.seconds < 10 and "started" in outcome.detail


def test_pytest_results_are_read_from_its_junit_file(tmp_path):
    (tmp_path / "test_probe.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    xml = tmp_path / "r.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                    f"--junitxml={xml}", str(tmp_path / "test_probe.py")], cwd=tmp_path, capture_output=True)
    rows = gpu_check.triton_rows(xml)
    assert rows[0][1] == "failed" and rows[0][2].startswith("1 passed, 1 failed, 0 skipped")
    assert rows[1][0] == "test_bad" and "assert 1 == 2" in rows[1][2]


def test_pure_wheels_are_used_unpacked_and_others_refused(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "probe_pkg-1.0-py3-none-any.whl", "w") as z:
        z.writestr("probe_pkg/__init__.py", "VALUE = 41 + 1\n")
        z.writestr("probe_pkg-1.0.dist-info/METADATA", "Name: probe-pkg\nVersion: 1.0\n")
    site = gpu_check.unpack_wheels(wheels, tmp_path / "out")
    r = subprocess.run([sys.executable, "-c", "import probe_pkg, suite; print(probe_pkg.VALUE)"],
                       env=gpu_check.step_env(site), cwd=tmp_path, capture_output=True, text=True)
    assert r.stdout.strip() == "42", r.stderr
    (wheels / "native-1.0-cp312-cp312-manylinux_2_17_x86_64.whl").write_bytes(b"")
    with pytest.raises(SystemExit, match="not pure-Python wheels"):
        gpu_check.unpack_wheels(wheels, tmp_path / "out2")


def test_a_missing_package_fails_every_step_with_what_to_carry(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(gpu_check.NEEDED, "probe_module_not_installed", "probe-dist")
    assert gpu_check.main(["--out", str(tmp_path), "--only", "quick,speed"]) == 1
    table = (tmp_path / "gpu-check.md").read_text()
    assert table.count("**failed**") == 2 and "carry the wheels of probe-dist" in table


def test_bad_step_names_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown step.*valid: triton, quick"):
        gpu_check.main(["--out", str(tmp_path), "--only", "triton,warp"])


def test_suite_speed_writes_its_rows_and_refuses_a_missing_device(tmp_path):
    import csv

    import torch

    from tests.helpers import cli

    r = cli("speed", "--device", "cpu", "--models", "rnn", "--n", "4", "--T", "24", "--B", "2", "--rounds", "1",
            "--out", str(tmp_path / "rows.csv"))
    assert r.returncode in (0, 1), r.stderr  # 1: the floor target, missed at this size
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert [row["model"] for row in rows] == ["nn.RNN(tanh)", "rnn"] and float(rows[1]["ms"]) > 0
    if not torch.cuda.is_available():
        r = cli("speed", "--device", "cuda")
        assert r.returncode == 2 and "invalid device='cuda'" in r.stderr and "valid here: auto, cpu" in r.stderr
        assert "Traceback" not in r.stderr
