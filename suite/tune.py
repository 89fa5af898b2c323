"""``suite tune``: the same search budget for every (model, protocol), chosen on validation only.

A *protocol* is everything a run computes except the searched settings (lr, orth_lr, optimizer) and the
seed: task and its options, model options, steps, batch size, hidden size. For each (model, protocol)
the search trains ``trials`` runs of ``steps`` steps each, the same budget for every model, on the
tuning seed (``TUNE_SEED``), which ``suite run --tuned`` never reports. Trials are ordinary runs in the
store, marked ``kind='trial'`` with their study before they start, so they resume like any run and
stay out of the headline tables. The chosen setting is the finished trial with the best validation
metric (``best_val``); test numbers play no part.

Two searches behind ``--search``:
- ``grid``: a deterministic log-spaced grid over lr x orth_lr (lr alone, at the same number of points,
  for models without an orthogonal group), the optimizer as its preset says.
- ``optuna``: Optuna's TPE sampler over lr, orth_lr and the optimizer (RMSprop or Adam: scoRNN's adding
  experiments use Adam where expRNN uses RMSprop), with a median pruner on the validation curve. The
  study lives in an SQLite file next to the store, named after the whole store file name
  (``suite.db-optuna.db``). After a kill -9, the next ``suite tune`` adopts the trials a dead process
  left running and retrains them, which resumes their runs from the store's checkpoints, so the study
  and the store stay in step.

The budget is the study's, not the process's: a trial counts once Optuna has numbered it, and only the
first ``trials`` trials (by number) ever train, so several ``suite tune`` commands on one store share
the budget exactly. A trial numbered past the budget (two searches asked at once) is marked ``void``
and closed as failed without training; it is not part of any budget. Every range is checked before
anything is written, and a trial is trained only with every searched setting drawn from the ranges.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

from suite.config import RunConfig
from suite.errors import ConfigError, check_choice
from suite.store import Store, StoreError, _first_line, _owner_alive, me

SEARCHES = ("grid", "optuna")
SEARCHED = ("lr", "orth_lr", "optimizer")
TUNE_SEED = 1000  # the search's seed: `suite run --tuned` reports other, fresh seeds
OPTIMIZER_CHOICES = ("rmsprop", "adam")
VOID = "void"  # user attribute of a trial asked past the budget: closed as failed, never trained
ABANDONED_AFTER = 120.0  # seconds: a running trial that never got its owner recorded is adopted after this


def check_range(name: str, lo: float, hi: float, text: str | None = None) -> None:
    shown = repr(text) if text is not None else f"({lo!r}, {hi!r})"
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo)
            and math.isfinite(hi)):
        raise ConfigError(f"invalid --{name} {shown}: LOW and HIGH must be finite numbers, e.g. 1e-4:1e-2")
    if not 0 < lo <= hi:
        raise ConfigError(f"invalid --{name} {shown}: need 0 < LOW <= HIGH")


@dataclass(frozen=True)
class Space:
    """Log-uniform ranges for the learning rates, the optimizer choices (Optuna only)."""

    lr: tuple[float, float] = (1e-4, 1e-2)
    orth_lr: tuple[float, float] = (1e-5, 1e-2)
    optimizers: tuple[str, ...] = OPTIMIZER_CHOICES

    def __post_init__(self):
        check_range("lr", *self.lr)
        check_range("orth-lr", *self.orth_lr)
        if not self.optimizers:
            raise ConfigError(f"invalid optimizers=(): choose from {', '.join(OPTIMIZER_CHOICES)}")
        for o in self.optimizers:
            check_choice("optimizer", o, OPTIMIZER_CHOICES)


def parse_range(name: str, text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"invalid --{name} {text!r}: use LOW:HIGH, e.g. 1e-4:1e-2") from None
    check_range(name, lo, hi, text)
    return lo, hi


def protocol_hash(config: RunConfig) -> str:
    """The identity of a config without its searched settings and seed."""
    neutral = dataclasses.replace(config, lr=1.0, orth_lr=1.0, optimizer="rmsprop", seed=0)
    return neutral.config_hash[:16]


def study_name(config: RunConfig, search: str) -> str:
    return f"{config.model}:{config.task}:{search}:{protocol_hash(config)}"


def has_orthogonal_group(config: RunConfig) -> bool:
    from suite.runner import build

    _, model = build(config)
    return bool(model.parameter_groups()["orthogonal"])


def _geom(lo: float, hi: float, n: int) -> list[float]:
    if n == 1:
        return [math.sqrt(lo * hi)]
    return [float(f"{lo * (hi / lo) ** (i / (n - 1)):.3g}") for i in range(n)]


def grid_points(trials: int, space: Space, orthogonal: bool) -> list[dict]:
    """``trials`` settings: an a x b grid over (lr, orth_lr) with a*b == trials, or ``trials`` lr values."""
    if not orthogonal:
        return [{"lr": v} for v in _geom(*space.lr, trials)]
    a = max(1, round(math.sqrt(trials)))
    while trials % a:
        a -= 1
    b = trials // a
    return [{"lr": lr, "orth_lr": olr} for lr in _geom(*space.lr, b) for olr in _geom(*space.orth_lr, a)]


def _register(store: Store, configs: list[RunConfig], study: str) -> None:
    store.register_trials([(c.run_id, c.config_hash, c.seed, c.model, c.task, c.to_dict(), c.steps)
                           for c in configs], study)


def execute_configs(configs: list[RunConfig], db: str, device: str, workers: int, stop=None) -> list:
    """Train configs through the suite's one run machinery (parallel, resumable)."""
    from suite.executors import run_all

    return run_all(configs, db, device, False, workers=workers, stop=stop)


# ---- grid -----------------------------------------------------------------------------------------
def grid_configs(base: RunConfig, trials: int, space: Space) -> list[RunConfig]:
    points = grid_points(trials, space, has_orthogonal_group(base))
    return [dataclasses.replace(base, **p) for p in points]


# ---- optuna ---------------------------------------------------------------------------------------
def study_path(db: str | os.PathLike) -> Path:
    """The Optuna study file of the store at ``db``, named after the whole store file name
    (``suite.db`` -> ``suite.db-optuna.db``), so ``x.db`` and ``x.sqlite`` in one folder never share
    one. A study file of the earlier naming (``suite.optuna.db``) is still used where its trials are
    all trials of this store."""
    p = Path(db)
    path = p.with_name(p.name + "-optuna.db")
    legacy = p.with_name(p.stem + ".optuna.db")
    if path.exists() or not legacy.is_file() or legacy == path:
        return path
    return legacy if _studies_of(legacy, p) else path


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect("file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro", uri=True, timeout=10)


def _studies_of(legacy: Path, db: Path) -> bool:
    """Whether every trial of the study file ``legacy`` is a tuning trial of the store ``db``."""
    try:
        con = _read_only(legacy)
        ids = {v.strip('"') for (v,) in con.execute(
            "SELECT value_json FROM trial_user_attributes WHERE key = 'run_id'")}
        con.close()
        con = _read_only(db)
        ours = {r for (r,) in con.execute("SELECT run_id FROM runs WHERE kind = 'trial'")}
        con.close()
    except sqlite3.Error:
        return False
    return bool(ids) and ids <= ours


def check_study_file(path: Path) -> None:
    """Refuse, before anything is written, a study path that holds something other than an Optuna
    study (Optuna would add its tables to any SQLite database it is pointed at)."""
    if not os.path.lexists(path):
        return
    hint = ("it was not changed. Move it away, or tune into another store (--db): the study of store "
            "X lives in X-optuna.db")
    if not path.is_file():
        raise StoreError(f"the Optuna study of this store would be {path}, which is not a file; {hint}")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return  # empty: SQLite makes it a new database
    if head != b"SQLite format 3\0":
        raise StoreError(f"{path} is not an Optuna study (not an SQLite database); {hint}")
    try:
        con = _read_only(path)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        problems = [r[0] for r in con.execute("PRAGMA quick_check(3)")]
        con.close()
    except sqlite3.Error as e:
        raise StoreError(f"{path} cannot be read as an Optuna study ({_first_line(e)}); {hint}") from None
    if problems != ["ok"]:
        raise StoreError(f"the Optuna study {path} fails SQLite's integrity check ({'; '.join(problems)}); {hint}")
    if tables and not {"studies", "trials", "trial_params"} <= tables:
        raise StoreError(f"{path} is an SQLite database but not an Optuna study (tables: "
                         f"{', '.join(sorted(tables))}); {hint}")


def optuna_storage_url(db: str | os.PathLike) -> str:
    return f"sqlite:///{study_path(db).resolve()}"


def _storage(url: str):
    import optuna

    # several processes (the driver and the workers' pruner) write to one SQLite file
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
        except Exception as e:
            # two searches creating the file at once: one of them loses the race for Optuna's version
            # table (or for a table's CREATE) and finds the tables made on its next try
            if attempt < 5 and ("IntegrityError" in repr(e) or "locked" in str(e) or "already exists" in str(e)):
                time.sleep(0.2 * (attempt + 1))
                continue
            # an incompatible or unreadable study file: Optuna's message says which
            raise StoreError(f"cannot open the Optuna study {url.removeprefix('sqlite:///')} ({_first_line(e)}); "
                             "it was not changed") from None


def _study(url: str, name: str, higher: bool, seed: int, warmup: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=_storage(url), study_name=name, load_if_exists=True,
        direction="maximize" if higher else "minimize", sampler=_sampler(seed, 0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup))


def _sampler(seed: int, number: int):
    """The sampler that draws trial ``number``'s settings, seeded by that number: a trial's draw
    depends only on the seed, its number and the trials before it, so a resumed search never redraws
    a point, and two searches running at once (their trials numbered apart) never draw the same one."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed + number, n_startup_trials=4)


@dataclass(frozen=True)
class OptunaPruning:
    """The runner's ``stop`` hook: report each validation score to the trial, stop when it is pruned.
    Picklable, so it travels to worker processes, which open the study themselves."""

    url: str
    trials: tuple[tuple[str, str, int, str], ...]  # (run_id, study name, trial id, metric)

    def __call__(self, config: RunConfig, step: int, val: dict) -> bool:
        import optuna

        hit = [(name, tid, metric) for rid, name, tid, metric in self.trials if rid == config.run_id]
        if not hit or hit[0][2] not in val or not math.isfinite(val[hit[0][2]]):
            return False
        name, tid, metric = hit[0]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.load_study(study_name=name, storage=_storage(self.url))
            trial = optuna.trial.Trial(study, tid)
            trial.report(val[metric], step)
            return trial.should_prune()
        except Exception as e:  # the study being unreachable must not fail the run: it just trains on
            warnings.warn(f"pruning skipped for {config.run_id} at step {step}: {e}", stacklevel=2)
            return False


def _suggest(trial, base: RunConfig, space: Space, orthogonal: bool) -> RunConfig:
    values = {"lr": trial.suggest_float("lr", *space.lr, log=True),
              "optimizer": trial.suggest_categorical("optimizer", list(space.optimizers))}
    if orthogonal:
        values["orth_lr"] = trial.suggest_float("orth_lr", *space.orth_lr, log=True)
    return dataclasses.replace(base, **values)


# ---- the command ----------------------------------------------------------------------------------
def tune(bases: list[RunConfig], db: str, search: str, trials: int, space: Space, device: str = "cpu",
         workers: int = 1, seed: int = 0) -> dict[str, RunConfig]:
    """Run the search for every base config (one per model x protocol, on the tuning seed);
    returns study name -> the chosen config."""
    check_choice("search", search, SEARCHES)
    if trials < 1:
        raise ConfigError(f"invalid --trials {trials}: need at least 1")
    if search == "grid":
        per_base = [(b, grid_configs(b, trials, space)) for b in bases]  # every config valid before any write
        store = Store(db)
        try:
            for b, cs in per_base:
                _register(store, cs, study_name(b, search))
        finally:
            store.close()
        execute_configs([c for _, cs in per_base for c in cs], db, device, workers)
    else:
        _tune_optuna(bases, db, trials, space, device, workers, seed)
    store = Store(db)
    try:
        return {study_name(b, search): chosen(store, b, search) for b in bases}
    finally:
        store.close()


def _tune_optuna(bases, db, trials, space, device, workers, seed) -> None:
    from optuna.trial import TrialState

    from suite.registry import create_task

    path = study_path(db)
    check_study_file(path)  # before anything is written, to the study or to the store
    url = f"sqlite:///{path.resolve()}"
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    Store(db).close()  # create or migrate the store first
    states = []
    for b in bases:
        task = create_task(b.task, **b.task_kwargs())
        name = study_name(b, "optuna")
        study = _study(url, name, task.higher_is_better, seed, warmup=max(1, b.steps // 4))
        states.append({"base": b, "name": name, "study": study, "metric": task.metric,
                       "orthogonal": has_orthogonal_group(b), "pending": {}, "seed": seed})
    per_round = max(1, -(-workers // len(states)))
    while True:
        round_trials = []  # (state, trial number, trial id, config)
        for st in states:
            _plan_round(st, trials, per_round, space)
            round_trials += [(st, number, tid, c) for number, (tid, c) in st["pending"].items()]
        if not round_trials:
            return
        store = Store(db)
        try:
            for st in states:
                cs = [c for s, _, _, c in round_trials if s is st]
                if cs:
                    _register(store, cs, st["name"])
        finally:
            store.close()
        hook = OptunaPruning(url, tuple((c.run_id, st["name"], tid, st["metric"]) for st, _, tid, c in round_trials))
        execute_configs([c for _, _, _, c in round_trials], db, device, workers, stop=hook)
        store = Store(db, read_only=True)
        told = 0
        for st, number, _, c in round_trials:
            row = store.run(c.run_id)
            status = row["status"] if row else None
            summary = (row or {}).get("summary") or {}
            if status == "finished" and summary.get("best_val") is not None:
                st["study"].tell(number, summary["best_val"], skip_if_finished=True)
            elif status in ("pruned", "diverged"):
                st["study"].tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            elif status in ("failed", "finished"):  # finished without a validation score counts as failed
                st["study"].tell(number, state=TrialState.FAIL, skip_if_finished=True)
            else:  # another process holds the run: ask the store again next round
                continue
            del st["pending"][number]
            told += 1
        store.close()
        if not told:  # every trial is held by another live process: wait for it rather than spin
            time.sleep(10)


def _abandoned(trial, now: float) -> bool:
    """A running trial whose process is gone: its owner died (this host), or it never got an owner
    recorded (its process died right after asking) and is older than ABANDONED_AFTER."""
    owner = trial.user_attrs.get("owner")
    if owner:
        return not _owner_alive(owner, now, now)
    started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return now - started > ABANDONED_AFTER


def _void(study, trial_id: int, number: int) -> None:
    from optuna.trial import TrialState

    study._storage.set_trial_user_attr(trial_id, VOID, True)
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)


def _plan_round(st: dict, budget: int, per_round: int, space: Space) -> None:
    """Fill ``st["pending"]`` (number -> (trial id, config)) with the trials this process trains next:
    abandoned trials of the budget first (same settings: their runs resume), then new ones while the
    study's budget has room."""
    import optuna
    from optuna.trial import TrialState

    study, pending = st["study"], st["pending"]
    now = time.time()
    counted = sorted((t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(VOID)),
                     key=lambda t: t.number)
    for t in counted[budget:]:  # past the budget (a process killed before it checked): never trained
        if t.state == TrialState.RUNNING and _abandoned(t, now):
            _void(study, t._trial_id, t.number)
    for t in counted[:budget]:
        if t.state == TrialState.RUNNING and t.number not in pending and _abandoned(t, now):
            study._storage.set_trial_user_attr(t._trial_id, "owner", me())
            # its recorded settings; any it lacks (its process died before drawing them) drawn now
            study.sampler = _sampler(st["seed"], t.number)
            trial = optuna.trial.Trial(study, t._trial_id)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a setting recorded under another range is kept as it was
                config = _suggest(trial, st["base"], space, st["orthogonal"])
            trial.set_user_attr("run_id", config.run_id)
            pending[t.number] = (t._trial_id, config)
    for _ in range(max(0, min(budget - len(counted), per_round - len(pending)))):
        trial = study.ask()
        trial.set_user_attr("owner", me())
        below = sum(1 for t in study.get_trials(deepcopy=False)
                    if t.number < trial.number and not t.user_attrs.get(VOID))
        if below >= budget:  # another search took the last places meanwhile
            _void(study, trial._trial_id, trial.number)
            break
        study.sampler = _sampler(st["seed"], trial.number)
        try:
            config = _suggest(trial, st["base"], space, st["orthogonal"])
        except BaseException:
            _void(study, trial._trial_id, trial.number)  # never left running without its settings
            raise
        trial.set_user_attr("run_id", config.run_id)
        pending[trial.number] = (trial._trial_id, config)


# ---- the choice -----------------------------------------------------------------------------------
def trials_of(store: Store, config: RunConfig, search: str | None = None) -> list[dict]:
    """Every trial of ``search`` (default: any) for (model, protocol) of ``config``."""
    suffix = ":" + protocol_hash(config)
    return [r for r in store.runs(kind="trial", model=config.model, task=config.task)
            if (r.get("study") or "").endswith(suffix) and (search is None or r["study"] == study_name(config, search))]


def chosen(store: Store, config: RunConfig, search: str | None = None) -> RunConfig | None:
    """``config`` with the searched settings of its best finished trial (on validation), or None."""
    scored = [r for r in trials_of(store, config, search)
              if r["status"] == "finished" and (r["summary"] or {}).get("best_val") is not None]
    if not scored:
        return None
    higher = scored[0]["summary"].get("higher_is_better", True)
    # ties (e.g. several trials on a plateau) go to the lower final training loss, then the run id
    sign = -1 if higher else 1
    best = min(scored, key=lambda r: (sign * r["summary"]["best_val"],
                                      r["summary"].get("final_train_loss") or math.inf, r["run_id"]))
    return dataclasses.replace(config, **{k: best["config"][k] for k in SEARCHED})


def apply_tuned(store: Store, configs: list[RunConfig]) -> list[RunConfig]:
    out, missing = [], []
    for c in configs:
        t = chosen(store, c)
        if t is None:
            missing.append(f"{c.model} on {c.task}")
        else:
            out.append(t)
    if missing:
        raise ConfigError("--tuned: no finished tuning trial for " + ", ".join(dict.fromkeys(missing))
                          + "; run `suite tune` with the same --models/--tasks/--set first")
    return out
