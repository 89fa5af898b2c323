import subprocess
import sys

from suite.registry import list_models
from tests.helpers import ROOT


def test_noxfile_bench_sessions_equal_the_registry():
    out = subprocess.run([sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    benched = sorted(line.split("bench(", 1)[1].split(")")[0] for line in out.splitlines()
                     if line.startswith(("- bench(", "* bench(")))
    assert benched == list_models()
    for session in ("tests", "lint", "report", "speed", "triton36", "faults", "gpu"):
        assert session in out
