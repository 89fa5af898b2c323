"""The first GPU run as one command: what the suite runs on CUDA, checked and measured in under 8 minutes.

    python benchmarks/gpu_check.py [--out DIR] [--wheels DIR] [--only STEP,...]      # or: nox -s gpu
    python benchmarks/gpu_check.py --fetch-wheels wheels       # where there is a network: the wheels to carry

It needs no install: run it from the repository root of a copy of the working tree (the source tree imports
as ``suite`` as it is); the pure-Python packages the target may lack come as wheels in ``--wheels`` (default
``wheels/`` if present), which are unpacked into the output folder and put on PYTHONPATH, not installed.

Steps, each in its own process under its own time limit (seconds; 7.2 minutes in all, with a margin for
starting the processes):

1. ``triton`` (120): tests/test_triton.py with the kernels compiled on the GPU (TRITON_INTERPRET unset):
   values and every gradient against the reference loop, the bf16 mode, whole models on the Triton
   engines, torch.autograd.gradcheck in float64.
2. ``quick`` (90): ``suite run --device cuda``, every mission model on quick-copying, seed 0, 40 steps
   with evaluations (orthogonality, spectrum, gradient profile) at steps 0, 20 and 40.
3. ``bf16`` (25): the same for scornn, exprnn and lstm with ``--set precision=bf16`` (orthogonality is
   recorded under it).
4. ``speed`` (75): ``suite speed --device cuda --rounds 3``: the GPU target rows against cuDNN's
   nn.RNN(relu), the rows written to speed.json.
5. ``slice`` (3 x 40): scornn, exprnn and lstm on scornn-copying-T1000 (paper scale), each stopped
   after 33 s with Ctrl-C (the runner checkpoints and stops): steps reached, ms/step, loss, orthogonality.

Then one markdown table of everything measured, ``<out>/gpu-check.md`` (its path is printed; logs of
every step beside it); the exit code is 1 if any step failed or timed out, else 0.

Without a CUDA device every step is skipped, with the reason, and its command is checked on the CPU
instead (``suite run --dry-run`` for the runs, the Triton tests collected under Triton's interpreter,
``suite speed`` on a tiny case with the Triton rows interpreted, its rows read back), and the table is
still written: tests/test_gpu_check.py runs that in CI, so the script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB = "gpu-check.db"
SLICE_MODELS = ("scornn", "exprnn", "lstm")
BF16_MODELS = ("scornn", "exprnn", "lstm")
QUICK_STEPS = 40
SLICE_SECONDS = 33.0  # each model's run is interrupted after this; the rest of its 40 s is for the checkpoint
# what the steps import beyond what the GPU machine has (torch, Triton, numpy, pandas, scipy, seaborn):
# module -> distribution; all pure Python
NEEDED = {"geotorch": "geotorch", "tqdm": "tqdm", "pytest": "pytest", "pluggy": "pluggy", "iniconfig": "iniconfig",
          "pygments": "pygments", "packaging": "packaging"}


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    argv: tuple[str, ...]  # after ``python``, run in the repository root
    limit: float  # seconds for the whole process
    interrupt_after: float | None = None  # Ctrl-C after this many seconds (a time slice)
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    step: Step
    status: str  # passed | failed | timed out | skipped
    seconds: float = 0.0
    detail: str = ""
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (subject, status, measured)


# ---- the steps ----------------------------------------------------------------------------------------
def suite_run(out: Path, models: str, protocol: str, *more: str, scale: str = "quick") -> tuple[str, ...]:
    return ("-m", "suite", "run", "--models", models, "--tasks", "copying", "--protocols", protocol,
            "--scale", scale, "--seeds", "0", "--db", str(out / DB), "--no-report", "--device", "cuda", *more)


def steps(out: Path) -> list[Step]:
    quick = ("--steps", str(QUICK_STEPS), "--set", f"eval_every={QUICK_STEPS // 2}")
    return [
        Step("triton", "tests/test_triton.py compiled on the GPU (values, gradients, float64 gradcheck)",
             ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", f"--junitxml={out / 'triton.xml'}",
              "tests/test_triton.py"), 120),
        Step("quick", f"suite run: every mission model on quick-copying, {QUICK_STEPS} steps, --device cuda",
             suite_run(out, "mission", "quick-copying", *quick), 90),
        Step("bf16", f"suite run --set precision=bf16: {', '.join(BF16_MODELS)} on quick-copying",
             suite_run(out, ",".join(BF16_MODELS), "quick-copying", *quick, "--set", "precision=bf16"), 25),
        Step("speed", "suite speed --device cuda: the GPU target rows against cuDNN nn.RNN(relu)",
             ("-m", "suite", "speed", "--device", "cuda", "--rounds", "3", "--check", "--out", str(out / "speed.json")),
             75),
        *(Step(f"slice-{m}", f"{m} on scornn-copying-T1000, stopped after {SLICE_SECONDS:.0f} s",
               suite_run(out, m, "scornn-copying-T1000", scale="paper"), 40, interrupt_after=SLICE_SECONDS)
          for m in SLICE_MODELS),
    ]


def cpu_check(step: Step, out: Path) -> Step:
    """The step's command as it can run without a GPU: it proves the command is still valid."""
    argv = list(step.argv)
    if step.name == "triton":  # collected under Triton's interpreter
        argv = [a for a in argv if not a.startswith("--junitxml")]
        return Step(step.name, step.what, (*argv[:-1], "--collect-only", argv[-1]), 120,
                    env=(("TRITON_INTERPRET", "1"),))
    if step.name == "speed":  # every target row on a tiny case, the Triton rows interpreted, rows read back
        from suite.speed import targets

        return Step(step.name, step.what, ("-m", "suite", "speed", "--device", "cpu", "--models",
                                           ",".join(targets("gpu")["models"]), "--baseline", "nn.RNN(relu)",
                                           "--n", "6", "--T", "24", "--B", "2", "--rounds", "1", "--out",
                                           str(out / "speed.json")), 300, env=(("TRITON_INTERPRET", "1"),))
    argv[argv.index("--device") + 1] = "cpu"  # suite run: the plan, validated, nothing trained
    return Step(step.name, step.what, (*argv, "--dry-run", "--estimate", "none"), 120)


# ---- running a step -----------------------------------------------------------------------------------
def step_env(site: Path | None, extra=()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    paths = [str(ROOT)] + ([str(site)] if site else []) + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", **dict(extra))
    return env


def execute(step: Step, env: dict[str, str], log: Path) -> tuple[int | None, float, bool]:
    """(exit code, seconds, timed out): the process gets ``step.limit`` seconds in all; a slice is sent
    Ctrl-C after ``interrupt_after``; past the limit its process group is killed."""
    t0 = time.monotonic()
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, *step.argv], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            if step.interrupt_after is not None:
                try:
                    proc.wait(timeout=step.interrupt_after)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGINT)
            proc.wait(timeout=max(0.0, step.limit - (time.monotonic() - t0)))
            return proc.returncode, time.monotonic() - t0, False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return proc.returncode, time.monotonic() - t0, True


def _tail(log: Path, n: int = 1) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " / ".join(lines[-n:])[:300] if lines else "(no output)"


# ---- what each step measured ----------------------------------------------------------------------------
def triton_rows(xml: Path) -> list[tuple[str, str, str]]:
    """From pytest's JUnit XML: the counts, then every test that failed."""
    suite = ElementTree.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    n, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped, seconds = int(suite.get("skipped", 0)), float(suite.get("time", 0))
    rows = [("tests/test_triton.py", "passed" if not failed else "failed",
             f"{n - failed - skipped} passed, {failed} failed, {skipped} skipped in {seconds:.1f} s")]
    for case in suite.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            rows.append((case.get("name", "?"), "failed", (bad.get("message") or "").splitlines()[0][:200]))
    return rows


def run_rows(db: Path, models, protocol: str, precision: str = "fp32") -> list[tuple[str, str, str]]:
    """One row per run of ``models`` on ``protocol`` in the store: status, steps, ms/step, the task's
    metric, orthogonality and peak memory, computed from what the run committed (an interrupted run too)."""
    from suite.protocols import protocol as named
    from suite.store import Store

    if not db.is_file():
        return []
    store = Store(db, read_only=True)
    try:
        proto = named(protocol)
        rows = []
        for run in store.runs():
            config = run["config"] or {}
            if (run["model"] not in models or config.get("precision", "fp32") != precision
                    or dict(config.get("task_options") or {}).get("T") != proto.values.get("task.T")
                    or config.get("batch_size") != proto.values.get("batch_size")):
                continue
            rid, summary = run["run_id"], run["summary"] or {}
            _, times = store.series(rid, "train/time")
            _, losses = store.series(rid, "train/loss")
            metric = summary.get("metric") or (run["task_info"] or {}).get("metric", "recall_accuracy")
            _, val = store.series(rid, f"val/{metric}")
            _, orth = store.series(rid, "orth_error")
            parts = [f"step {run['step']}/{run['total_steps']}"]
            if len(times) > 1:
                parts.append(f"{1e3 * statistics.median(b - a for a, b in zip(times, times[1:])):.2f} ms/step")
            if losses:
                parts.append(f"train loss {statistics.fmean(losses[-10:]):.4g}")
            if val:
                parts.append(f"val {metric} {val[-1]:.3g}")
            if summary.get("test_at_best_val") is not None:
                parts.append(f"test at best val {summary['test_at_best_val']:.3g}")
            if orth:
                parts.append(f"orth {orth[-1]:.1e}")
            if summary.get("peak_memory"):
                parts.append(f"peak {summary['peak_memory'] / 2**20:.0f} MiB")
            if run.get("error"):
                parts.append("error: " + run["error"].strip().splitlines()[-1][:200])
            label = run["model"] + ("" if precision == "fp32" else f" ({precision})")
            rows.append((label, run["status"], "; ".join(parts)))
        return sorted(rows)
    finally:
        store.close()


def speed_rows(path: Path) -> list[tuple[str, str, str]]:
    data = json.loads(path.read_text())
    case, base = data["case"], data["baseline"]
    rows = []
    for r in data["rows"]:
        limit = data["limits"].get(r["model"])
        status = "measured" if limit is None else ("target met" if r["ratio"] <= limit else "target MISSED")
        floor = "" if r["floor_ratio"] is None else f"; {r['floor_ratio']:.2f}x its floor ({r['floor_ms']:.2f} ms)"
        target = "" if limit is None else f" (target <= {limit}x)"
        rows.append((r["model"], status, f"{r['ms']:.2f} ms; {r['ratio']:.2f}x {base}{target}{floor}; "
                                         f"n={case['n']}, T={case['T']}, B={case['B']}"))
    return rows


def measured(step: Step, out: Path) -> list[tuple[str, str, str]]:
    db = out / DB
    if step.name == "triton":
        xml = out / "triton.xml"
        return triton_rows(xml) if xml.is_file() else []
    if step.name == "quick":
        from suite.registry import MODELS

        return run_rows(db, MODELS.names(mission=True), "quick-copying")
    if step.name == "bf16":
        return run_rows(db, BF16_MODELS, "quick-copying", precision="bf16")
    if step.name == "speed":
        path = out / "speed.json"
        return speed_rows(path) if path.is_file() else []
    return run_rows(db, (step.name.partition("-")[2],), "scornn-copying-T1000")


def run_step(step: Step, out: Path, env: dict[str, str]) -> Outcome:
    log = out / f"{step.name}.log"
    code, seconds, timed_out = execute(step, env, log)
    rows = measured(step, out)
    if timed_out:
        return Outcome(step, "timed out", seconds, f"killed after its {step.limit:.0f} s; last output: {_tail(log)}",
                       rows)
    expected = (0, 130) if step.interrupt_after is not None else (0,)  # 130: the slice's Ctrl-C, on purpose
    if code in expected:
        return Outcome(step, "passed", seconds, f"log: {log.name}", rows)
    why = "a speed target missed" if step.name == "speed" and code == 1 and rows else f"exit {code}"
    return Outcome(step, "failed", seconds, f"{why}; last output: {_tail(log, 3)}", rows)


def check_step(step: Step, out: Path, site: Path | None, reason: str) -> Outcome:
    """No GPU: the step is skipped, and its command checked on the CPU."""
    check = cpu_check(step, out)
    log = out / f"{step.name}.cpu-check.log"
    code, seconds, timed_out = execute(check, step_env(site, check.env), log)
    rows = measured(step, out) if step.name == "speed" else []
    if step.name == "speed":  # the floor target is missed at this tiny size (exit 1); the rows must be there
        from suite.speed import targets

        ok = not timed_out and code in (0, 1) and len(rows) == len(targets("gpu")["models"]) + 1
    else:
        ok = not timed_out and code == 0
    if step.name == "speed":
        what = f"suite speed on a tiny case: {len(rows)} rows written and read back"
    else:  # pytest's "N tests collected", or the plan's "... = N runs" line
        text = log.read_text(errors="replace")
        what = next((line.strip() for line in text.splitlines() if line.startswith("plan,") or " collected" in line),
                    _tail(log))
    verdict = f"command checked on the CPU: {'ok' if ok else 'FAILED: ' + _tail(log, 3)} ({what})"
    return Outcome(step, "skipped" if ok else "failed", seconds, f"skipped: {reason}; {verdict}")


# ---- wheels ---------------------------------------------------------------------------------------------
def unpack_wheels(wheels: Path | None, out: Path) -> Path | None:
    """Pure-Python wheels unpacked into ``<out>/site`` (a wheel is a zip of its import tree): importable
    from PYTHONPATH without installing anything."""
    if wheels is None:
        return None
    found = sorted(wheels.glob("*.whl"))
    platform_bound = [w.name for w in found if not w.name.endswith("-none-any.whl")]
    if platform_bound:
        raise SystemExit(f"gpu_check: {', '.join(platform_bound)} in {wheels} are not pure-Python wheels "
                         "(*-none-any.whl); only those can be used without installing")
    site = out / "site"
    for w in found:
        with zipfile.ZipFile(w) as z:
            z.extractall(site)
    return site


def missing_modules(site: Path | None) -> list[str]:
    code = "import importlib.util as u, sys; print(','.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
    r = subprocess.run([sys.executable, "-c", code, *NEEDED], env=step_env(site), cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    return [m for m in r.stdout.strip().split(",") if m]


def fetch_wheels(folder: Path) -> int:
    """Download the wheels of NEEDED at the versions installed here (where the suite's tests pass)."""
    from importlib.metadata import PackageNotFoundError, version

    specs = []
    for dist in dict.fromkeys(NEEDED.values()):
        try:
            specs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            specs.append(dist)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder), *specs]
    print(" ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd).returncode


# ---- the report -------------------------------------------------------------------------------------------
def environment() -> list[str]:
    import torch

    lines = [f"python {platform.python_version()}, torch {torch.__version__}"]
    try:
        import triton

        lines[0] += f", triton {triton.__version__}"
    except ImportError:
        lines[0] += ", no triton"
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        cap, memory = torch.cuda.get_device_capability(dev), torch.cuda.get_device_properties(dev).total_memory
        lines.append(f"device: {torch.cuda.get_device_name(dev)} (compute capability {cap[0]}.{cap[1]}, "
                     f"{memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}")
    else:
        lines.append(f"device: none (torch {torch.__version__} sees no CUDA device): a dry run")
    from suite.runner import git_revision

    lines.append(f"git {git_revision() or 'unknown'}, host {platform.node()}, "
                 f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    return lines


def markdown(outcomes: list[Outcome], header: list[str], total: float) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["# GPU check", "", *[f"- {h}" for h in header], f"- total {total:.0f} s", "",
             "| step | subject | status | measured |", "|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.step.name} | {cell(o.step.what)} | **{o.status}** ({o.seconds:.0f} s of "
                     f"{o.step.limit:.0f}) | {cell(o.detail)} |")
        for subject, status, text in o.rows:
            lines.append(f"| {o.step.name} | {cell(subject)} | {cell(status)} | {cell(text)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the table, the logs and the store (default results/gpu-check/<UTC time>)")
    p.add_argument("--wheels", type=Path, default=ROOT / "wheels" if (ROOT / "wheels").is_dir() else None,
                   help="folder of pure-Python wheels to use without installing (default wheels/ if present)")
    p.add_argument("--only", default=None, help="comma-separated steps (default: all): " +
                   ", ".join(s.name for s in steps(Path("."))))
    p.add_argument("--fetch-wheels", type=Path, metavar="DIR",
                   help="download the wheels the steps need (versions installed here) into DIR, and stop")
    args = p.parse_args(argv)
    if args.fetch_wheels:
        return fetch_wheels(args.fetch_wheels)
    import torch

    out = (args.out or ROOT / "results" / "gpu-check" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if (out / DB).exists():
        raise SystemExit(f"gpu_check: {out / DB} exists: pass a fresh --out (a store's finished runs are not rerun)")
    chosen = steps(out)
    if args.only:
        names = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = sorted(set(names) - {s.name for s in chosen})
        if unknown:
            raise SystemExit(f"gpu_check: unknown step(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(s.name for s in chosen)}")
        chosen = [s for s in chosen if s.name in names]
    t0 = time.monotonic()
    site = unpack_wheels(args.wheels, out)
    header = environment()
    missing = missing_modules(site)
    gpu = torch.cuda.is_available()
    outcomes = []
    if missing:
        wanted = ", ".join(dict.fromkeys(NEEDED[m] for m in missing))
        reason = (f"{', '.join(missing)} cannot be imported: carry the wheels of {wanted} "
                  "(python benchmarks/gpu_check.py --fetch-wheels wheels, where there is a network) and pass "
                  "--wheels wheels")
        outcomes = [Outcome(s, "failed", detail=reason) for s in chosen]
    else:
        reason = f"no CUDA device (torch {torch.__version__} sees none)"
        for s in chosen:
            o = run_step(s, out, step_env(site)) if gpu else check_step(s, out, site, reason)
            outcomes.append(o)
            print(f"gpu_check: {s.name}: {o.status} ({o.seconds:.0f} s)", file=sys.stderr, flush=True)
    table = markdown(outcomes, header, time.monotonic() - t0)
    (out / "gpu-check.md").write_text(table)
    print(table, end="")
    print(f"gpu_check: table in {out / 'gpu-check.md'}", file=sys.stderr)
    return 1 if any(o.status in ("failed", "timed out") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
