"""``suite``: list, run, tune, show, export, report, speed.

``suite run`` with no arguments is the main job: every mission model on the offline tasks
(copying, adding, mnist1d) at the quick scale, three seeds, ending in the HTML report
(results/suite-report/index.html). ``suite`` alone prints this help and trains nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sqlite3
import sys
from pathlib import Path

from suite.config import OFFLINE_TASKS, apply_values, parse_assignments
from suite.errors import ConfigError, SuiteError, UnknownNameError
from suite.executors import add_arguments as add_executor_arguments
from suite.executors import run_all
from suite.registry import MODELS, TASKS

DEFAULT_DB = "results/suite.db"
DEFAULT_SEEDS = "0-2"  # three seeds: the report's confidence intervals and tests need more than one


def _expand(registry, spec: str | None, default: list[str]) -> list[str]:
    if spec is None:
        return default
    patterns = [s.strip() for s in spec.split(",") if s.strip()]
    if not patterns:  # '' or ',' would otherwise mean everything, or nothing
        raise ConfigError(f"invalid --{registry.kind}s {spec!r}: it names no {registry.kind}; give names or "
                          f"patterns (see `suite list {registry.kind}s`), or leave --{registry.kind}s out for the "
                          "default")
    names, valid = [], registry.names()
    for pattern in patterns:
        if pattern == "mission":
            hits = registry.names(mission=True)
        else:
            hits = [n for n in valid if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise UnknownNameError(registry.kind, pattern, valid)
        names += [h for h in hits if h not in names]
    return names


def _seeds(spec: str) -> list[int]:
    usage = f"invalid --seeds {spec!r}: use e.g. 0 or 0,1,2 or 0-4"
    try:
        out = []
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            if hi and int(hi) < int(lo):
                raise ConfigError(f"{usage} (a range runs upwards: {hi}-{lo}, not {part.strip()})")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise ConfigError(usage) from None
    return list(dict.fromkeys(out))


def _split_values(text: str) -> list[str]:
    """``64,128`` -> ["64", "128"]: commas split values, except inside brackets or quotes, so a list or
    tuple value stays one value (``[64,128]``, ``(1,2)``) and so does a quoted string (``'a,b'``)."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def sweep(items: list[str]) -> list[dict[str, object]]:
    """The overrides of each point of a sweep: ``--set hidden=64,128 --set lr=1e-3,1e-2`` is four points
    (the cartesian product, in the order given). A key given twice is refused: its values would
    otherwise silently replace each other."""
    seen: dict[str, str] = {}
    axes: list[tuple[str, list]] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if key in seen:
            raise ConfigError(f"--set {key} is given twice ({seen[key]!r} and {item!r}): to run several values, "
                              f"give them in one --set, comma-separated, e.g. --set {key}="
                              f"{seen[key].partition('=')[2].strip()},{value.strip()}")
        seen[key] = item
        pieces = _split_values(value) if sep else [value]
        if len(pieces) == 1:  # one value: exactly as before sweeps existed (same parse, same config hash)
            axes.append((key, [parse_assignments([item])[key]]))
            continue
        if any(not p.strip() for p in pieces):
            raise ConfigError(f"invalid --set {item!r}: an empty value in the comma list; give e.g. "
                              f"--set {key}=64,128 (a list value goes in brackets: {key}=[64,128])")
        values = [parse_assignments([f"{key}={p.strip()}"])[key] for p in pieces]
        values = [v for i, v in enumerate(values) if v not in values[:i]]
        axes.append((key, values))
    import itertools

    return [dict(zip([k for k, _ in axes], point)) for point in itertools.product(*[v for _, v in axes])]


def plan(args) -> list:
    """Every config of the sweep, validated before any work starts."""
    return [r.config for r in plan_resolved(args)]


def plan_resolved(args) -> list:
    """protocol x model x seed: every run of the sweep with the source of each setting, validated
    before any work starts."""
    from suite.protocols import protocols_for, resolve_protocol
    from suite.runner import validate

    models = _expand(MODELS, args.models, MODELS.names(mission=True))
    tasks = _expand(TASKS, args.tasks, list(OFFLINE_TASKS))
    points = sweep(args.set or [])
    for overrides in points:
        if args.steps is not None:
            if "steps" in overrides and overrides["steps"] != args.steps:
                raise ConfigError(f"--steps {args.steps} and --set steps={overrides['steps']!r} disagree; give one "
                                  "of them")
            overrides["steps"] = args.steps
    pattern = getattr(args, "protocols", None)
    if pattern is not None and not pattern.replace(",", "").strip():
        raise ConfigError(f"invalid --protocols {pattern!r}: it names no protocol; give names or patterns (see "
                          "`suite list protocols`), or leave --protocols out for every protocol of the tasks")
    protocols = [p for task in tasks for p in protocols_for(args.scale, task, pattern)]
    if not protocols:
        from suite.protocols import PROTOCOLS

        valid = [p.name for p in PROTOCOLS if args.scale in p.scales and p.task in tasks]
        raise UnknownNameError("protocol", pattern, valid)
    resolved, errors, ids = [], [], set()
    for proto in protocols:
        for model in models:
            for overrides in points:
                for seed in _seeds(args.seeds):
                    try:
                        r = resolve_protocol(proto, model, seed, overrides, strict=False, scale=args.scale)
                    except SuiteError as e:
                        errors.append(f"{model} on {proto.name}: {e}")
                        continue
                    if r.config.run_id not in ids:  # a swept model.rho leaves the other models' runs alike
                        ids.add(r.config.run_id)
                        resolved.append(r)
    # a --set key must apply somewhere in the sweep (model.rho applies to scornn only, and that is fine)
    if resolved and not errors:
        for overrides in points:
            for key in overrides:
                if not any(_accepts(r.config, key, overrides[key]) for r in resolved):
                    apply_values(resolved[0].config, {key: overrides[key]}, strict=True)  # raises, naming the keys
    device = _plan_device(args)
    errors += _precision_errors([r.config for r in resolved], getattr(args, "device", "auto"))
    seen = set()
    for r in resolved:
        c = r.config
        if (c.model, c.task, c.task_options) in seen:
            continue
        seen.add((c.model, c.task, c.task_options))
        try:
            validate(c, device)
        except SuiteError as e:
            errors.append(f"{c.model} on {r.protocol.name}: {e}")
        except (MemoryError, RuntimeError) as e:  # the model cannot even be built here
            if not _out_of_memory(e):
                raise
            errors.append(f"{c.model} on {r.protocol.name}: hidden={c.hidden} does not fit in this machine's "
                          f"memory ({_allocation(e)}); choose a smaller --set hidden")
    if errors:
        raise ConfigError("nothing was run; fix these first:\n  " + "\n  ".join(dict.fromkeys(errors)))
    return resolved


def _out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()


def _allocation(e: BaseException) -> str:
    import re

    m = re.search(r"tried to allocate (\d+) bytes", str(e))
    if m:
        return f"building the model needs one block of {int(m[1]) / 2**30:.1f} GiB, which cannot be allocated"
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'out of memory'}"


def _plan_device(args):
    """The device the runs will use, to ask each model whether it can run there; None with Ray,
    where each run resolves its device on the worker that runs it."""
    from suite.runner import resolve_device

    if getattr(args, "executor", "local") == "ray":
        return None
    return resolve_device(getattr(args, "device", "auto"))


def _precision_errors(configs, device: str) -> list[str]:
    """A precision the device cannot run (bf16 on a GPU older than compute capability 8.0): at plan time."""
    from suite.runner import check_precision, resolve_device

    wanted = sorted({c.precision for c in configs} - {"fp32"})
    if not wanted:
        return []
    try:
        dev = resolve_device(device)
    except SuiteError:  # with Ray the device is the remote worker's: each run checks it where it runs
        return []
    errors = []
    for precision in wanted:
        try:
            check_precision(precision, dev)
        except ConfigError as e:
            errors.append(str(e))
    return errors


def _accepts(config, key, value) -> bool:
    try:
        return apply_values(config, {key: value}, strict=True) is not None
    except ConfigError:
        return False


# ---- commands -------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    what = args.what
    if what in ("models", "all"):
        print("models (name: description; * = mission model, part of the main job)")
        for n in MODELS.names(args.pattern):
            e = MODELS.entry(n)
            opts = {k: v for k, v in MODELS.options(n).items() if k not in ("d_in", "d_out", "output")}
            print(f"  {n}{'*' if e.mission else ''}: {e.doc}")
            print(f"      options: {', '.join(f'{k}={v!r}' for k, v in opts.items())}")
            print(f"      family: {e.info.family or '-'}; constraint: {e.info.constraint or '-'}; "
                  f"parameter groups: {', '.join(e.groups)}" + (f"; paper: {e.info.paper}" if e.info.paper else ""))
    if what in ("tasks", "all"):
        print("tasks (name: description; * = offline, part of the main job)")
        for n in TASKS.names(args.pattern):
            opts = TASKS.options(n)
            print(f"  {n}{'*' if n in OFFLINE_TASKS else ''}: {TASKS.entry(n).doc}")
            print(f"      options: {', '.join(f'{k}={v!r}' for k, v in opts.items())}")
    if what in ("protocols", "all"):
        from suite.protocols import PROTOCOLS

        print("protocols (name, scales, task: shared settings  [source])")
        for p in PROTOCOLS:
            if fnmatch.fnmatchcase(p.name, args.pattern) or fnmatch.fnmatchcase(p.task, args.pattern):
                vals = ", ".join(f"{k}={v!r}" for k, v in p.values.items())
                print(f"  {p.name:<22} {','.join(p.scales):<11} {p.task:<8} {vals}\n         [{p.source}]")
    if what in ("presets", "all"):
        from suite.presets import listing

        print("presets: model-side settings (scale, task pattern, models: values  [source]); the suite's "
              "rows apply first, then the model's own")
        for scope, p in listing():
            if fnmatch.fnmatchcase(p.task, args.pattern) or any(
                    fnmatch.fnmatchcase(m, args.pattern) for m in scope.split("|")) or args.pattern == "*":
                vals = ", ".join(f"{k}={v!r}" for k, v in p.values.items())
                print(f"  {p.scale:<6} {p.task:<8} {scope:<28} {vals}\n         [{p.source}]")
    return 0


def cmd_run(args) -> int:
    from suite.executors import from_args
    from suite.runner import resolve_device

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"invalid --workers {args.workers}: must be 1 or more (default: "
                          f"{min(2, os.cpu_count() or 1)} here)")
    if args.executor == "local" or args.dry_run:  # with Ray, each run resolves its device where it runs
        device = resolve_device(args.device)  # a device that is not there stops before any work
    if args.dry_run:
        from suite.plan import estimate, format_plan

        resolved = plan_resolved(args)
        estimates = estimate(resolved, args.estimate, args.db, str(device),
                             log=lambda m: print(m, file=sys.stderr))
        print(format_plan(resolved, estimates, args.scale, str(device)))
        return 0
    if Path(args.db).exists():  # a damaged or foreign store is refused before any work
        _open_store(args.db).close()
    tracking = _tracking(args)  # a tracker that is not installed is refused before any work
    configs = plan(args)
    if args.tuned:
        configs = _tuned(configs, args.db)
    if tracking is not None:
        tracking.prepare()
    if args.force:
        _refuse_held(configs, args.db)
    from suite.progress import QUIET, Progress, verbosity

    executor = from_args(args, len(configs))
    if verbosity() > QUIET:
        points = len(sweep(args.set or []))
        print(f"{len(configs)} runs ({len({c.model for c in configs})} models x "
              f"{len({c.task for c in configs})} tasks x {len({c.seed for c in configs})} seeds"
              f"{f' x {points} points of the sweep' if points > 1 else ''}), scale {args.scale}, "
              f"{executor.describe()}, store {args.db}", file=sys.stderr)
    progress = Progress(configs)
    try:
        outcomes = run_all(configs, args.db, args.device, args.force, executor=executor, tracking=tracking,
                           progress=progress)
    except KeyboardInterrupt:
        print(f"\n{progress.summary()}", file=sys.stderr)
        return _stopped("every committed metric is in the store; run the same command to resume")
    counts = progress.counts()
    print(progress.summary(), file=sys.stderr)
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED {o.run_id}: {o.error}", file=sys.stderr)
        elif o.status == "busy":
            print(f"  BUSY {o.run_id}: {o.error}", file=sys.stderr)
    code = 1 if counts.get("failed") else 0
    if args.force and counts.get("busy"):
        print("suite: error: --force never takes a run from a live process; the BUSY runs above were left to "
              "their holders", file=sys.stderr)
        return 2
    if not args.no_report:  # the runs are in the store whatever happens to their report
        from suite.reports.render import render_report

        try:
            index = render_report(args.db, args.report_dir)
        except SuiteError as e:
            print(f"suite: error: report not written: {e}", file=sys.stderr)
            return 2
        except Exception as e:
            print(f"suite: error: report not written ({type(e).__name__}: {e}); every run is in {args.db}: "
                  f"retry with `suite report --db {args.db}`", file=sys.stderr)
            return 1
        print(f"report: {index}", file=sys.stderr)
    return code


def _tracking(args):
    """--log/--log-dir as a Tracking (None without --log); its packages are checked here."""
    from suite.tracking import Tracking

    if args.log is None:
        if args.log_dir is not None:
            raise ConfigError("--log-dir needs --log tensorboard and/or mlflow")
        return None
    return Tracking.parse(args.log, args.log_dir or str(Path(args.db).parent / "tracking"))


def _refuse_held(configs, db: str) -> None:
    """--force restarts runs from scratch, but never one that a live process is training."""
    from suite.store import Store, stop_hint

    if not Path(db).is_file():
        return
    store = Store(db, read_only=True)
    try:
        held = [(c.run_id, store.holder(c.run_id)) for c in configs]
    finally:
        store.close()
    held = [(r, h) for r, h in held if h]
    if held:
        lines = "\n  ".join(f"{r} is held by {h}: {stop_hint(h)}" for r, h in held)
        raise ConfigError(f"--force restarts runs from scratch, but {len(held)} of them are being trained by a "
                          f"live process; nothing was run:\n  {lines}")


def _stopped(what: str) -> int:
    """The exit of a command stopped by Ctrl-C (130) or SIGTERM (143)."""
    import signal

    from suite.runner import stop_exit_code

    code = stop_exit_code()
    how = "stopped by SIGTERM" if code == 128 + signal.SIGTERM else "interrupted"
    print(f"\n{how}: {what}", file=sys.stderr)
    return code


def _tuned(configs, db: str) -> list:
    from suite.store import Store
    from suite.tune import TUNE_SEED, apply_tuned

    if TUNE_SEED in {c.seed for c in configs}:
        raise ConfigError(f"--tuned needs fresh seeds: seed {TUNE_SEED} is the one the search trained on")
    if not Path(db).is_file():
        raise ConfigError(f"--tuned: no store at {db}; run `suite tune` first")
    store = Store(db)
    try:
        return apply_tuned(store, configs)
    finally:
        store.close()


def cmd_tune(args) -> int:
    from suite.runner import resolve_device
    from suite.tune import TUNE_SEED, Space, parse_range, study_name, tune

    resolve_device(args.device)
    swept = [item for item in args.set or [] if len(_split_values(item.partition("=")[2])) > 1]
    if swept:  # the points would share one study (named by model and protocol) and so one budget
        raise ConfigError(f"suite tune takes one value per --set key, not a sweep ({', '.join(swept)}): run one "
                          "`suite tune` per value, then `suite run --tuned` per value")
    args.seeds = str(TUNE_SEED)
    bases = plan(args)
    space = Space(lr=parse_range("lr", args.lr), orth_lr=parse_range("orth-lr", args.orth_lr))
    workers = args.workers
    if workers is None:
        workers = 1 if args.device.startswith("cuda") else min(2, os.cpu_count() or 1)
    steps = "/".join(str(s) for s in dict.fromkeys(b.steps for b in bases))
    from suite.progress import QUIET, verbosity

    if verbosity() > QUIET:
        print(f"{args.search} search: {len(bases)} (model, protocol) pairs x {args.trials} trials x "
              f"{steps} steps, seed {TUNE_SEED}, {workers} worker(s), store {args.db}", file=sys.stderr)
    try:
        best = tune(bases, args.db, args.search, args.trials, space, args.device, workers)
    except KeyboardInterrupt:
        return _stopped("every finished trial is in the store; run the same command to resume")
    print(f"{'task':<9}{'model':<18}{'optimizer':<10}{'lr':>10}{'orth_lr':>10}  study")
    for b in bases:
        c = best.get(study_name(b, args.search))
        if c is None:
            print(f"{b.task:<9}{b.model:<18}no finished trial")
        else:
            print(f"{c.task:<9}{c.model:<18}{c.optimizer:<10}{c.lr:>10.3g}{c.orth_lr:>10.3g}  "
                  f"{study_name(b, args.search)}")
    return 0 if all(best.values()) else 1


def _fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _open_store(db: str, read_only: bool = False):
    from suite.store import Store

    if read_only and not Path(db).exists():
        raise ConfigError(f"no store at {db}; run `suite run` first or pass --db")
    return Store(db, read_only=read_only)


def _pick(option: str, spec: str | None, valid: list[str], of) -> list | None:
    """The values of ``valid`` that a comma list of names or fnmatch patterns names (None: no filter);
    a part that names none is a usage error that lists the valid choices."""
    if spec is None:
        return None
    parts = [s.strip() for s in spec.split(",") if s.strip()]
    if not parts:
        raise UsageError(f"invalid {option} {spec!r}: it names nothing; valid: {', '.join(valid)}")
    out = []
    for part in parts:
        hits = [v for v in valid if fnmatch.fnmatchcase(v, part)]
        if not hits:
            raise UsageError(f"invalid {option} {part!r}: valid {of}: {', '.join(valid) or '(none)'}")
        out += [h for h in hits if h not in out]
    return out


def _show_rows(store, args) -> list[dict]:
    """The store's runs (or trials), each with its protocol, filtered by --models/--tasks/--protocol/--status."""
    from suite.protocols import protocol_of
    from suite.store import STATUSES

    rows = store.runs(kind="trial" if args.trials else "run")
    for r in rows:
        r["protocol"] = protocol_of(r["config"] or {"task": r["task"]}).label
    models = _pick("--models", args.models, sorted(set(MODELS.names()) | {r["model"] for r in rows}), "models")
    tasks = _pick("--tasks", args.tasks, sorted(set(TASKS.names()) | {r["task"] for r in rows}), "tasks")
    from suite.protocols import PROTOCOLS

    protocols = _pick("--protocol", args.protocol, sorted({p.name for p in PROTOCOLS} | {r["protocol"] for r in rows}),
                      "protocols (the suite's and this store's)")
    statuses = _pick("--status", args.status, list(STATUSES), "statuses")
    return [r for r in rows if (models is None or r["model"] in models) and (tasks is None or r["task"] in tasks)
            and (protocols is None or r["protocol"] in protocols) and (statuses is None or r["status"] in statuses)]


# the store's columns in the order `suite show --format json|csv` writes them (then config, summary, ...)
_SHOW_COLUMNS = ("run_id", "kind", "study", "task", "protocol", "model", "seed", "status", "step", "total_steps",
                 "config_hash", "params_total", "params_recurrent", "owner", "heartbeat", "created", "updated",
                 "error", "damaged")
_SHOW_NESTED = ("config", "summary", "env", "task_info")


def _flat(row: dict) -> dict:
    """One CSV row: nested fields as dotted columns (config.lr, summary.test_at_best_val, ...); a value
    that is itself a list or a mapping (task options, eigenvalues) as JSON."""
    out = {k: row.get(k) for k in _SHOW_COLUMNS}
    for field in _SHOW_NESTED:
        for k, v in (row.get(field) or {}).items():
            out[f"{field}.{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v
    if isinstance(out["damaged"], list):
        out["damaged"] = "; ".join(out["damaged"])
    return out


def cmd_show(args) -> int:
    store = _open_store(args.db, read_only=True)  # works on read-only media; never migrates or writes
    if args.run_id:
        run = store.run(args.run_id)
        if run is None:
            raise UnknownNameError("run", args.run_id, [r["run_id"] for r in store.runs()])
        print(json.dumps(run, indent=2, sort_keys=True, default=str))
        return 0
    rows = _show_rows(store, args)
    if args.format == "json":
        print(json.dumps([{**{k: r.get(k) for k in _SHOW_COLUMNS}, **{k: r.get(k) for k in _SHOW_NESTED}}
                          for r in rows], indent=1, default=str))
        return 0
    if args.format == "csv":
        import csv

        flat = [_flat(r) for r in rows]
        columns = list(dict.fromkeys(k for f in flat for k in f)) or list(_SHOW_COLUMNS)
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return 0
    width = max([len(r["protocol"]) for r in rows] + [8])
    print(f"{'task':<9}{'protocol':<{width + 1}}{'model':<18}{'seed':>5} {'status':<12}{'step':>12}{'lr':>9}  "
          f"{'metric':<16}{'test@best':>10}{'ms/step':>9}  run_id")
    for r in rows:
        s, c = r["summary"] or {}, r["config"] or {}
        ms = s.get("time_per_step")
        print(f"{r['task']:<9}{r['protocol']:<{width + 1}}{r['model']:<18}{r['seed']:>5} {r['status']:<12}"
              f"{str(r['step']) + '/' + str(r['total_steps']):>12}{_fmt(c.get('lr'), 3):>9}  "
              f"{s.get('metric', '-'):<16}{_fmt(s.get('test_at_best_val')):>10}{_fmt(ms * 1e3 if ms else None, 3):>9}  "
              f"{r['run_id']}")
    print(f"{len(rows)} {'tuning trials' if args.trials else 'runs'} in {args.db}"
          + (" (filtered)" if any(getattr(args, k) for k in ("models", "tasks", "protocol", "status")) else ""))
    return 0


def cmd_export(args) -> int:
    store = _open_store(args.db, read_only=True)
    try:
        paths = store.export(args.out, args.format)
        if args.weights:
            paths += _export_weights(store, args.weights)
    except OSError as e:
        raise ConfigError(f"cannot write the export to {args.out} ({e.strerror or e}); pass --out with a "
                          "writable folder") from None
    finally:
        store.close()
    for p in paths:
        print(p)
    return 0


def _export_weights(store, folder: str) -> list[Path]:
    """``export --weights``: each finished run's weights at its best validation step; a finished run
    without them (a store written before the suite kept that checkpoint) is named on stderr."""
    from suite.weights import export_weights

    try:
        paths, missing = export_weights(store, folder)
    except OSError as e:
        raise ConfigError(f"cannot write the weights to {folder} ({e.strerror or e}); pass --weights with a "
                          "writable folder") from None
    for run_id, why in missing:
        print(f"suite: run {run_id}: no weights exported: {why}", file=sys.stderr)
    return paths


def cmd_report(args) -> int:
    from suite.reports.render import render_report

    _open_store(args.db, read_only=True).close()  # a clear error for a missing, foreign or damaged store
    print(render_report(args.db, args.out))
    return 0


def cmd_speed(args) -> int:
    from suite.runner import resolve_device
    from suite.speed import FLOOR_LIMIT, SpeedCase, format_table, speed_table, targets, write_rows

    device = str(resolve_device(args.device))  # a device that is not there: a clear error, not a traceback
    target = targets("gpu" if device.startswith("cuda") else "cpu")
    case = SpeedCase(**{**target["case"], **{k: v for k, v in (("n", args.n), ("T", args.T), ("B", args.B))
                                              if v is not None}}, device=device)
    baseline = args.baseline or target["baseline"]
    if args.models:
        models = []
        for spec in (s for s in args.models.split(",") if s.strip()):
            name, at, engine = spec.strip().partition("@")
            models += [m + at + engine for m in _expand(MODELS, name, [])]
    else:
        models = target["models"]
    rows = speed_table(models + [m for m in args.baselines.split(",") if m], case, baseline, rounds=args.rounds)
    print(format_table(rows, case, baseline))
    limits = target["limit"] if not args.models else {}
    missed = {r["model"] for r in rows if r["model"] in limits and r["ratio"] > limits[r["model"]]}
    if args.out:
        print(f"rows: {write_rows(args.out, rows, case, baseline, limits)}")
    for m, limit in limits.items():
        print(f"target: {m} <= {limit}x {baseline}: {'MISSED' if m in missed else 'met'}")
    # the floor target is for the steps a run takes: the reference loop is the readable fallback
    # and for the mission models (the comparison models' rows are for reference)
    floored = [r for r in rows if r["floor_ratio"] is not None and r["model"] != baseline
               and not r["model"].endswith("@reference") and _is_mission(r["model"])]
    over = [f"{r['model']} {r['floor_ratio']:.2f}x" for r in floored if r["floor_ratio"] > FLOOR_LIMIT]
    if floored:
        worst = max(floored, key=lambda r: r["floor_ratio"])
        verdict = f"MISSED by {', '.join(over)}" if over else \
            f"met (worst {worst['model']} {worst['floor_ratio']:.2f}x)"
        print(f"target: every model <= {FLOOR_LIMIT}x its floor: {verdict}")
    return 1 if args.check and (missed or over) else 0


def _is_mission(row: str) -> bool:
    name = row.partition("@")[0]
    return name in MODELS.names() and MODELS.entry(name).mission


def _add_verbosity(p: argparse.ArgumentParser, default) -> None:
    """-q/-v, before or after the command (``suite -q run`` = ``suite run -q``): a subcommand's own
    default is SUPPRESS so that it never overwrites the value given before the command."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=default,
                   help="print only errors and the final summary")
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=default,
                   help="also print every training step's loss")


def parser() -> argparse.ArgumentParser:
    from suite import __version__

    p = argparse.ArgumentParser(prog="suite", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"suite {__version__}")
    _add_verbosity(p, 0)
    sub = p.add_subparsers(dest="command")

    ls = sub.add_parser("list", help="list models, tasks or presets")
    ls.add_argument("what", nargs="?", default="all", choices=["models", "tasks", "protocols", "presets", "all"])
    ls.add_argument("--pattern", default="*", help="fnmatch pattern, e.g. 'exp*'")
    ls.set_defaults(fn=cmd_list)

    run = sub.add_parser("run", help="train models x tasks x seeds into the store (no arguments: the main job)")
    run.add_argument("--models", help="comma-separated names or patterns (default: every mission model)")
    run.add_argument("--tasks", help=f"comma-separated names or patterns (default: {','.join(OFFLINE_TASKS)})")
    run.add_argument("--seeds", default=DEFAULT_SEEDS, help=f"e.g. 0 or 0,1,2 or 0-4 (default {DEFAULT_SEEDS})")
    run.add_argument("--scale", default="quick", choices=["quick", "paper"], help="preset scale")
    run.add_argument("--protocols", help="comma-separated protocol names or patterns (default: every "
                     "protocol of the tasks at the scale; `suite list protocols`)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a run setting (lr=1e-3), task option (task.T=200) or model option "
                     "(model.K=10); a bare option name both task and model take is refused. Repeatable, once "
                     "per key. Comma-separated values sweep: hidden=64,128 runs both (several swept keys: "
                     "every combination); a list value goes in brackets ([64,128]), a string with a comma in "
                     "quotes")
    run.add_argument("--steps", type=int, help="shorthand for --set steps=N")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    run.add_argument("--db", default=DEFAULT_DB, help=f"results store (default {DEFAULT_DB})")
    run.add_argument("--force", action="store_true", help="rerun finished runs from scratch")
    run.add_argument("--workers", type=int, help="parallel processes (default: 2 on a multi-core CPU)")
    add_executor_arguments(run)
    run.add_argument("--log", metavar="TRACKERS", help="also stream every run's metrics to tensorboard, mlflow or "
                     "both (tensorboard,mlflow), tagged with run id, model, task, protocol and seed; needs the "
                     "extra of the same name, e.g. pip install '.[tensorboard]'")
    run.add_argument("--log-dir", help="where the trackers write (default: tracking/ next to the store; MLflow: "
                     "$MLFLOW_TRACKING_URI when set)")
    run.add_argument("--no-report", action="store_true", help="skip writing the HTML report")
    run.add_argument("--report-dir", default=None, help="report folder (default: <store name>-report next to "
                     "the store: results/suite-report for the default store)")
    run.add_argument("--dry-run", action="store_true", help="print the plan (protocol x model, the source of "
                     "every setting, estimated time) and stop")
    run.add_argument("--estimate", default="model", choices=["model", "store", "measure", "none"],
                     help="--dry-run time estimate: ms/step of finished runs in the store, else the registry's "
                     "cost model (model; default: instant, rough, CPU only); the store only; the store, else "
                     "2 real steps per model and protocol (measure: minutes at the paper scale); or none")
    run.add_argument("--measure", dest="estimate", action="store_const", const="measure",
                     help="shorthand for --estimate measure")
    run.add_argument("--tuned", action="store_true",
                     help="use the settings `suite tune` chose for each (model, protocol)")
    run.set_defaults(fn=cmd_run)

    tu = sub.add_parser("tune", help="search lr/orth_lr/optimizer per (model, protocol), same budget for all")
    tu.add_argument("--models", help="comma-separated names or patterns (default: every mission model)")
    tu.add_argument("--tasks", help=f"comma-separated names or patterns (default: {','.join(OFFLINE_TASKS)})")
    tu.add_argument("--scale", default="quick", choices=["quick", "paper"], help="preset scale")
    tu.add_argument("--protocols", help="comma-separated protocol names or patterns (default: every "
                    "protocol of the tasks at the scale; `suite list protocols`)")
    tu.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable, once "
                    "per key, one value each: a search's study is named by model and protocol, so tune one "
                    "point of a sweep at a time)")
    tu.add_argument("--steps", type=int, help="steps per trial (shorthand for --set steps=N)")
    tu.add_argument("--search", default="grid", choices=["grid", "optuna"],
                    help="grid: deterministic lr x orth_lr grid; optuna: TPE with a median pruner")
    tu.add_argument("--trials", type=int, default=6, help="trials per (model, protocol) (default 6)")
    tu.add_argument("--lr", default="1e-4:1e-2", help="lr range LOW:HIGH, log scale (default 1e-4:1e-2)")
    tu.add_argument("--orth-lr", default="1e-5:1e-2", help="orth_lr range LOW:HIGH (default 1e-5:1e-2)")
    tu.add_argument("--device", default="auto")
    tu.add_argument("--db", default=DEFAULT_DB, help=f"results store (default {DEFAULT_DB})")
    tu.add_argument("--workers", type=int, help="parallel processes (default: 2 on a multi-core CPU)")
    tu.set_defaults(fn=cmd_tune)

    show = sub.add_parser("show", help="the runs in the store (a table, JSON or CSV), or one run in full")
    show.add_argument("run_id", nargs="?", help="one run, in full, as JSON")
    show.add_argument("--db", default=DEFAULT_DB)
    show.add_argument("--trials", action="store_true", help="list the tuning trials instead of the runs")
    show.add_argument("--format", default="table", choices=["table", "json", "csv"],
                      help="table (default, for reading), or every column of every run to stdout: json (one "
                      "object per run, config and summary nested) or csv (nested fields as config.lr, "
                      "summary.test_at_best_val, ...)")
    show.add_argument("--models", help="only these models: comma-separated names or patterns")
    show.add_argument("--tasks", help="only these tasks: comma-separated names or patterns")
    show.add_argument("--protocol", help="only these protocols (the table's protocol column): comma-separated "
                      "names or patterns")
    show.add_argument("--status", help="only runs with these statuses, e.g. failed,diverged")
    show.set_defaults(fn=cmd_show)

    ex = sub.add_parser("export", help="runs, metrics, spectra and gradient profiles to CSV or Parquet "
                        "(docs/results.md lists every column)")
    ex.add_argument("--format", default="csv", choices=["csv", "parquet"],
                    help="csv (default), or parquet (needs pyarrow: pip install '.[parquet]')")
    ex.add_argument("--out", default="results/export")
    ex.add_argument("--db", default=DEFAULT_DB)
    ex.add_argument("--weights", metavar="DIR", help="also write each finished run's model weights at its best "
                    "validation step into DIR: <run_id>.pt (the state_dict) and <run_id>.json (what rebuilds "
                    "the model with suite.create_model)")
    ex.set_defaults(fn=cmd_export)

    rep = sub.add_parser("report", help="render the HTML/PNG report from the store (never trains)")
    rep.add_argument("--db", default=DEFAULT_DB)
    rep.add_argument("--out", default=None, help="folder (default: <store name>-report next to the store: "
                     "results/suite-report for the default store, results/a-report for --db results/a.db)")
    rep.set_defaults(fn=cmd_report)

    sp = sub.add_parser("speed", help="training-step time of models against nn.RNN, side by side")
    sp.add_argument("--models", help="comma-separated names or patterns, each optionally @engine "
                    "(scornn@triton-bf16); default: the speed-target rows for the device")
    sp.add_argument("--baseline", default=None, choices=["nn.RNN(tanh)", "nn.RNN(relu)"],
                    help="default: nn.RNN(tanh) on CPU, cuDNN nn.RNN(relu) on CUDA")
    sp.add_argument("--baselines", default="", help="extra reference rows, e.g. nn.RNN(relu)")
    sp.add_argument("--n", type=int, default=None, help="hidden size (default 190)")
    sp.add_argument("--T", type=int, default=None, help="sequence length (default 1000)")
    sp.add_argument("--B", type=int, default=None, help="batch (default 32 on CPU, 128 on CUDA)")
    sp.add_argument("--device", default="auto")
    sp.add_argument("--rounds", type=int, default=5)
    sp.add_argument("--out", help="also write the rows to this file: CSV if it ends in .csv, else JSON "
                    "(with the case, the device and the targets)")
    sp.add_argument("--check", action="store_true", help="exit 1 when a target is missed (default: report only)")
    sp.set_defaults(fn=cmd_speed)
    for command in sub.choices.values():
        _add_verbosity(command, argparse.SUPPRESS)
    p.commands = sub.choices  # each command's own parser, for its usage in an error
    return p


class UsageError(ConfigError):
    """A bad command-line argument, found after parsing: shown with the command's own usage."""


def main(argv: list[str] | None = None) -> int:
    # figures are files: no display backend unless the user chose one (set before matplotlib is imported;
    # pool workers inherit it)
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra:  # argparse would name them under the top-level usage: show the command's own
        (p.commands[args.command] if args.command else p).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:  # `suite` alone, or only global options: never a silent start of the main job
        p.print_help(sys.stderr)
        print("\nsuite: error: no command given; the main job is `suite run`", file=sys.stderr)
        return 2
    from suite.progress import configure

    configure(getattr(args, "verbosity", 0))
    if args.command in ("run", "tune"):
        # SIGINT and SIGTERM (what a scheduler, `timeout` or `kill` sends) mean "checkpoint and stop",
        # SIGINT even where the parent started us with it ignored (a job a non-interactive shell put in
        # the background): Python then installs no handler of its own
        import signal

        from suite.runner import STOP_SIGNALS, raise_interrupt

        for sig in STOP_SIGNALS:
            signal.signal(sig, raise_interrupt)
    try:
        for name in ("db", "out", "report_dir"):
            value = getattr(args, name, None)
            if value is not None and not value.strip():
                raise ConfigError(f"invalid --{name.replace('_', '-')} {value!r}: give a path"
                                  + (f", e.g. --db {DEFAULT_DB}" if name == "db" else ""))
        if args.command in ("run", "tune", "speed"):
            from suite.memory import malloc_setting

            malloc_setting()  # a bad SUITE_MALLOC is refused here, before any run starts
        return args.fn(args)
    except UsageError as e:
        p.commands[args.command].error(str(e))  # the command's usage, then exit 2
    except SuiteError as e:
        print(f"suite: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any run started, or after the last one ended
        return _stopped("nothing was being trained")
    except sqlite3.DatabaseError as e:  # damage found while reading, past the checks on open
        if args.command in ("run", "tune"):
            print(f"suite: error: the results store {args.db} failed ({e}); every earlier commit is intact: fix "
                  "the cause and rerun the same command to resume", file=sys.stderr)
        else:
            print(f"suite: error: the results store {getattr(args, 'db', '')} cannot be read ({e}); it was not "
                  "changed", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `suite list | head`
        sys.stderr.close()
        return 0
    except OSError as e:  # a file the command must read or write: say which, and why
        where = f" {e.filename}" if e.filename else ""
        print(f"suite: error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
