"""Render results/suite-report/index.html and its PNGs from the store alone (a report never trains)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from suite import outputs
from suite.errors import ConfigError
from suite.reports import comparison, figures
from suite.reports.data import Group, differences, group, load, task_info
from suite.reports.names import slug
from suite.reports.published import matching, published_rows

RUN_FIELDS = ("steps", "batch_size", "hidden", "optimizer", "lr", "orth_optimizer", "orth_lr",
              "rmsprop_alpha", "clip", "eval_every")


def _num(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}g}"


def _params(stored, dof) -> str:
    if stored is None:
        return "—"
    if dof is None or dof == stored:
        return _num(stored)
    return f"{stored:,} ({dof:,} free)"


def _rows(groups: list[Group], tested: dict) -> list[dict]:
    """The table's rows; the headline cells and the best mark come from the statistics (``tested``)."""
    rows = []
    for g in groups:
        t = tested.get(g.label)
        best_val = g.stat("best_val")[0]
        ms = g.stat("time_per_step")[0]
        total = g.stat("wall_time")[0]
        orth = g.stat("final_orth_error")[0]
        r0 = g.runs[0]
        model_options = r0.config.get("model_options") or {}
        published = matching(g.protocol.name if g.protocol else None, g.model, g.hidden, model_options)
        rows.append({"label": g.label, "params": _params(r0.params_total, r0.params_dof),
                     "recurrent": _num(r0.params_recurrent),
                     "metric": t["cell"] if t else "—", "versus": t["versus"] if t else "—",
                     "seeds": t["seeds"] if t else "0 / 0 / 0", "best": bool(t and t["best"]),
                     "best_val": _num(best_val),
                     "ms": _num(ms * 1e3 if ms is not None else None, 3),
                     "total": _num(total, 3), "orth": f"{orth:.1e}" if orth is not None else "—",
                     "statuses": g.statuses(), "published": published})
    return rows


def _config_tables(groups: list[Group]):
    per = []
    for g in groups:
        c = g.runs[0].config
        flat = {k: c.get(k) for k in RUN_FIELDS}
        flat["precision"] = c.get("precision", "fp32")  # runs stored before the setting ran in float32
        flat.update({f"model.{k}": v for k, v in (c.get("model_options") or {}).items()})
        flat.update(c.get("group_options") or {})  # per-group settings: lr.upper, optimizer.phases, ...
        per.append((g.label, flat))
    keys = sorted({k for _, f in per for k in f}, key=lambda k: (k.startswith("model."), k))
    common, varying = {}, []
    for k in keys:
        values = {repr(f.get(k)) for _, f in per}
        if len(values) == 1:
            common[k] = per[0][1].get(k)
        else:
            varying.append(k)
    table = [(label, [f.get(k, "—") for k in varying]) for label, f in per]
    return common, varying, table


def _environments(runs) -> list[dict]:
    keys = ("torch", "device", "device_name", "threads", "python", "suite", "git")
    counts = Counter(tuple((r.env or {}).get(k) for k in keys) for r in runs if r.env)
    return [dict(zip(keys, k), count=n) for k, n in counts.most_common()]


# (file suffix, layout width, caption, figures.<function>, extra keyword arguments)
FIGURES = [
    ("curves-step", "full", "Learning curves against steps: mean over finished seeds with the 95% Student-t band "
     "of the mean; a diverged or failed seed is its own thin line with an × where it stopped; dotted: seeds "
     "still pending; dashed: memoryless baseline", "learning_curves", {}),
    ("curves-time", "full", "Learning curves against training wall-clock time", "learning_curves",
     {"wallclock": True}),
    ("metric-vs-params", "half", "Test metric at best validation (the table's mean, error bars its 95% Student-t "
     "interval) against degrees of freedom (filled); a hollow marker joined to it shows the stored count where a "
     "parametrization stores more numbers (n² for n(n−1)/2)", "metric_vs_params", {}),
    ("time-per-step", "half", "Time per training step (mean over finished seeds, error bars ±1 SD)", "time_per_step",
     {}),
    ("spectra", "full", "Eigenvalues of the recurrent matrix at init and at the end (complex plane, unit circle "
     "drawn)", "spectra", {}),
    ("eigen-angles", "full", "Eigen-angle histograms at init and at the end: one row per model, darker = more "
     "eigenvalues at that angle", "eigen_angles", {}),
    ("orthogonality", "full", "Orthogonality drift max |WᴴW − I| over training (log scale)", "orthogonality", {}),
    ("grad-profile", "full", "Gradient-norm profile ||dL/dh_t|| against t at init and at the end (log scale): "
     "vanishing gradients show as a fall towards early t", "gradient_profiles", {}),
]


MANIFEST = ".suite-report.json"  # the files this report folder's last render wrote (and may replace)


def _recognised(path: Path) -> bool:
    """A file of a report folder rendered before manifests recorded hashes: our index.html, or a
    Matplotlib PNG named like one of our figures."""
    if path.name == "index.html":
        return 'this page reads the results store only' in path.read_text(errors="replace")
    if path.suffix != ".png" or not any(path.name.endswith(f"-{name}.png") for name, *_ in FIGURES):
        return False
    with open(path, "rb") as f:
        return b"Matplotlib" in f.read(512)


def default_folder(db: str | Path) -> Path:
    """``<store stem>-report`` next to the store (results/suite.db: results/suite-report), so that two
    stores in one folder never share, or overwrite, one report."""
    db = Path(db)
    return db.parent / f"{db.stem}-report"


def render_report(db: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write index.html and its PNGs into ``out_dir``. Files there that the suite did not write are
    never deleted or overwritten; a task or figure that cannot be drawn is named on the page, with why."""
    db = Path(db)
    final = Path(out_dir) if out_dir else default_folder(db)
    runs = load(db)  # the store first: a store that cannot be read changes nothing on disk
    if final.exists() and not final.is_dir():
        raise ConfigError(f"report folder {final} is a file; pass --out with a folder")
    final.mkdir(parents=True, exist_ok=True)
    owned = outputs.owned(final, MANIFEST, _recognised, unlisted=True)
    out = outputs.stage(final)  # every file is written here first, then moved into place (suite.outputs)
    try:
        _render(db, runs, out, final, owned)
        outputs.publish(out, final, MANIFEST, owned, prune=True, refuse=lambda names: _refusal(final, names))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return final / "index.html"


def _refusal(final: Path, names: list[str]) -> ConfigError:
    return ConfigError(f"report folder {final} holds files the suite did not write ({', '.join(names)}); "
                       "it never overwrites them: pass another --out (or --report-dir)")


def _render(db: Path, runs: list, out: Path, final: Path, owned: dict[str, str]) -> None:
    """Write the page and its figures into the staging folder ``out`` (published into ``final`` by
    ``render_report``); refused before anything is drawn if a name it needs is not the suite's."""
    by_protocol = group(runs)
    try:
        trials, trials_error = load(db, kind="trial"), None
    except Exception as e:  # the tuning section says so; the rest renders
        trials, trials_error = [], e
    # one style per model for every figure of the page, tuning included
    styles = figures.styles({**{r.model: r.model for r in trials},
                             **{g.label: g.model for gs in by_protocol.values() for g in gs}})
    tasks, matches, jobs, by_block = _task_sections(by_protocol, out, styles)
    planned = {"index.html"} | {row["file"] for *_, row in jobs}
    aggregate_files = {comparison.CD_FILE, comparison.IQM_FILE} if by_block else set()  # drawn if there is data
    clash = outputs.clashes(final, planned | aggregate_files, owned)
    if clash:  # refused before anything is drawn
        raise _refusal(final, clash)
    # our unchanged figures are copied into the staging folder, so draw_all finds their fingerprints
    # there and leaves them as they are; the ones this page no longer shows are dropped below
    reused = {n for n in owned if n.endswith(".png")}
    for n in reused:
        shutil.copy2(final / n, out / n)
    planned -= _draw(jobs, out)
    colors = {label: st.color for label, st in styles.items()}
    aggregate, tuning = _aggregate(by_block, out, styles), _tuning(trials, trials_error, out, colors)
    planned |= {aggregate[k] for k in ("figure", "iqm_figure") if aggregate and aggregate.get(k)}
    planned |= {t["figure"] for t in tuning or [] if t.get("figure")}
    _write_page(out / "index.html", db, runs, tasks, matches, aggregate, tuning)
    for n in reused - planned:  # a copied figure this page no longer shows is not published again
        (out / n).unlink(missing_ok=True)


def _task_sections(by_protocol: dict, out: Path, styles: dict) -> tuple[list, list, list, dict]:
    """Per protocol, its section of the page: (sections, matches with published numbers, figure jobs,
    the statistics' blocks whose section rendered: the aggregate ranks these). A protocol whose
    section cannot be built gets one that says why, and no figures."""
    per_task: dict[str, list] = {}
    for proto in by_protocol:
        per_task.setdefault(proto.task, []).append(proto)
    diffs = {p: d for protos in per_task.values() for p, d in differences(protos).items()}
    blocks = comparison.block_names(by_protocol)  # the statistics' blocks: one per protocol
    tasks, matches, slugs, jobs, by_block = [], [], set(), [], {}
    for proto, groups in by_protocol.items():
        alone = len(per_task[proto.task]) == 1
        s = slug(proto.task if alone else proto.label)
        while s in slugs:  # two names that differ only in unsafe characters
            s += "-"
        slugs.add(s)
        try:  # one task's bad state must not take the page down
            section, task_jobs, task_matches = _task_section(proto, groups, blocks[proto], s, out, styles)
        except Exception as e:
            tasks.append({"name": proto.task, "slug": s, "protocol": proto.label, "alone": alone,
                          "error": _why(e), "rows": [], "figures": [], "common": {}, "varying_keys": [],
                          "varying": []})
            continue
        section.update(alone=alone, siblings=[q.label for q in per_task[proto.task] if q != proto],
                       differs=diffs.get(proto, {}) if not alone else {})
        tasks.append(section)
        jobs += task_jobs
        matches += task_matches
        by_block[blocks[proto]] = groups
    return tasks, matches, jobs, by_block


def _task_section(proto, groups: list[Group], block: str, s: str, out: Path, styles: dict):
    """One protocol's section (its table, settings and figures, named ``<s>-<figure>.png``): (the
    section, its figure jobs for ``figures.draw_all`` each with its row of the page, its matches
    with published numbers)."""
    info = task_info(groups)
    tested = comparison.block_stats({block: groups})[block]
    jobs = _figure_jobs(groups, info, tested, s, out, styles)
    rows = _rows(groups, tested["rows"])
    matches = [{"task": proto.task, "protocol": proto.label, "label": g.label, "hidden": g.hidden,
                "ours": r["metric"], "value": p.value, "verified": p.verified, "source": p.source, "note": p.note}
               for g, r in zip(groups, rows) for p in r["published"]]
    base = info.get("baseline", {})
    common, varying_keys, varying = _config_tables(groups)
    settings = dict(proto.settings)
    section = {
        "name": proto.task, "slug": s, "description": info.get("description", ""), "protocol": proto.label,
        "protocol_named": proto.name is not None, "protocol_source": proto.source,
        "metric": info.get("metric", "?"), "higher_is_better": info.get("higher_is_better", True),
        "length": info.get("length", "?"), "settings": settings, "rows": rows,
        "figures": [row for *_, row in jobs],
        "options": {k[5:]: v for k, v in settings.items() if k.startswith("task.")},
        "budget": {k: v for k, v in settings.items() if not k.startswith("task.")},
        "baseline_metric": _num(base.get(info.get("metric"))), "baseline_loss": _num(base.get("loss")),
        "common": common, "varying_keys": varying_keys, "varying": varying, "error": None,
        "sentence": tested["sentence"],
    }
    return section, jobs, matches


def _figure_jobs(groups: list[Group], info: dict, tested: dict, s: str, out: Path, styles: dict) -> list:
    """The ``figures.draw_all`` jobs of one section's FIGURES: (function, args, kwargs, the page's row)."""
    jobs = []
    for name, width, title, draw, extra in FIGURES:
        path = out / f"{s}-{name}.png"
        args = (groups, info, styles, path) if draw in ("learning_curves", "metric_vs_params") else (
            groups, styles, path)
        if draw == "metric_vs_params":  # the table's numbers, so figure and table agree
            extra = {**extra, "summary": tested["rows"]}
        jobs.append((draw, args, extra, {"file": path.name, "title": title, "width": width, "error": None}))
    return jobs


def _draw(jobs: list, out: Path) -> set[str]:
    """Draw every figure (``figures.draw_all``); the files that failed, each named on its row, with why."""
    failed = set()
    errors = figures.draw_all([(name, args, extra) for name, args, extra, _ in jobs])
    for (*_, row), error in zip(jobs, errors):
        if error:  # the page says which figure is missing, and why
            row["error"] = error
            failed.add(row["file"])
            (out / row["file"]).unlink(missing_ok=True)  # a part-written figure is not published
    return failed


def _aggregate(by_block: dict, out: Path, styles: dict) -> dict | None:
    """The cross-protocol rank aggregate; if it fails, a sentence saying why."""
    try:
        return comparison.aggregate(by_block, out, styles) if by_block else None
    except Exception as e:
        figures.plt.close("all")
        return {"sentence": f"The rank aggregate could not be drawn: {_why(e)}", "figure": None}


def _tuning(trials: list, trials_error: Exception | None, out: Path, colors: dict) -> list[dict]:
    """The tuning searches' section; if it fails, one entry saying why."""
    try:
        if trials_error:
            raise trials_error
        with figures.theme():  # the report's style, inside its drawing only (figures.theme)
            return comparison.tuning(trials, out, colors)
    except Exception as e:
        figures.plt.close("all")
        return [{"error": _why(e)}]


def _write_page(path: Path, db: Path, runs: list, tasks: list, matches: list, aggregate, tuning) -> None:
    from suite import __version__

    env = Environment(loader=PackageLoader("suite.reports", "templates"),
                      autoescape=select_autoescape(["html", "css"], default=True))
    html = env.get_template("index.html").render(
        title="Orthogonal & unitary RNN benchmark", generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        store=str(db), n_runs=len(runs), statuses=dict(Counter(r.status for r in runs).most_common()),
        tasks=tasks, environments=_environments(runs), matches=matches, published=published_rows(), version=__version__,
        aggregate=aggregate, tuning=tuning, test_name=comparison.stats.TEST, alpha=comparison.stats.ALPHA,
        permutation=comparison.stats.PERMUTATION, policy=comparison.stats.POLICY)
    path.write_text(html, encoding="utf-8")


def _why(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
