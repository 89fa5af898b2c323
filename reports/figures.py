"""The report's figures, one PNG each, drawn from loaded runs (seaborn style over matplotlib).

The style (seaborn's whitegrid theme over matplotlib's defaults, ``THEME``) applies inside the
suite's own drawing only (``themed``): importing this module or drawing a report leaves the user's
``matplotlib.rcParams``, and so their own figures, as they were. Nor does it choose a backend: the
``suite`` command sets ``MPLBACKEND=Agg`` unless it is set (files only, no display), and a library user's
backend draws these figures as well (each is saved, then closed).
"""

from __future__ import annotations

import colorsys
import contextlib
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import sys
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import cycler, ticker

from suite.reports import stats
from suite.reports.data import Group, Run

# What sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9) sets, as one rc dict (its
# colour cycle, seaborn's "deep"), over matplotlib's defaults, so the figures do not depend on the user's
# own style either. A fixed title height: matplotlib otherwise measures every tick label to lift titles
# clear of them, about 40% of the drawing time of a report figure.
THEME = {**sns.axes_style("whitegrid", rc={"font.family": "sans-serif"}),
         **sns.plotting_context("notebook", font_scale=0.9),
         "axes.prop_cycle": cycler("color", sns.color_palette("deep")), "axes.titley": 1.0}


@contextlib.contextmanager
def theme():
    """``THEME``, and seaborn's colour codes ("k" is its 0.1 grey, as set_theme makes it; matplotlib's
    bar error bars and scikit-posthocs' diagram draw in "k"), for the drawing inside; the rcParams and
    matplotlib's colour codes are restored afterwards, whatever happens."""
    from matplotlib import colors

    codes = colors.get_named_colors_mapping()
    saved = {c: codes[c] for c in "bgrmyck"}
    with matplotlib.style.context(["default", THEME]):
        sns.set_color_codes("deep")
        colors.colorConverter.cache.clear()  # conversions cached under matplotlib's codes
        try:
            yield
        finally:
            codes.update(saved)
            colors.colorConverter.cache.clear()  # conversions cached under seaborn's codes


def themed(fn):
    """Draw ``fn``'s figure in ``theme()``."""
    @functools.wraps(fn)
    def drawn(*args, **kwargs):
        with theme():
            return fn(*args, **kwargs)

    return drawn

DPI = 110
TINY = 1e-16  # floor for log axes


@dataclass(frozen=True)
class Style:
    """How one model is drawn in every figure of a report."""

    color: tuple
    ls: str = "-"
    marker: str = "o"


LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def family(model: str) -> str:
    """The model's family from its registry entry (``info.family``); the name itself if unregistered."""
    from suite.registry import MODELS

    try:
        return MODELS.entry(model).info.family or model
    except Exception:  # a model no longer installed, or a hand-edited store
        return model


def _shades(color, n: int) -> list[tuple]:
    """n shades of one hue, dark to light, told apart by lightness."""
    h, light, s = colorsys.rgb_to_hls(*color[:3])
    levels = np.linspace(0.22, 0.72, n) if n > 1 else [light]
    return [colorsys.hls_to_rgb(h, float(v), s) for v in levels]


def styles(models: dict[str, str]) -> dict[str, Style]:
    """Label -> Style, one per model for every figure of a report. Up to 10 models: ten distinct hues
    (tab10). More: one hue per family (``info.family``), shades and line styles for its models."""
    labels = sorted(models)
    if len(labels) <= 10:
        hues = sns.color_palette("tab10", 10)
        return {label: Style(tuple(hues[i]), "-", MARKERS[i]) for i, label in enumerate(labels)}
    families: dict[str, list[str]] = {}
    for label in labels:
        families.setdefault(family(models[label]), []).append(label)
    names = sorted(families)
    hues = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    out = {}
    for hue, name in zip(hues, names):
        members = families[name]
        for i, (label, shade) in enumerate(zip(members, _shades(hue, len(members)))):
            out[label] = Style(tuple(shade), LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
    return out


def palette(labels: list[str]) -> dict[str, tuple]:
    """Label -> colour for labels that are model names (see ``styles``)."""
    return {label: s.color for label, s in styles({label: label for label in labels}).items()}


_KEY: ContextVar[str | None] = ContextVar("figure_data_key", default=None)
KEY_FIELD = "suite:data"  # PNG text chunk holding the fingerprint of what the figure was drawn from


def _save(fig, path: Path) -> Path:
    """Save cropped to what is drawn (outside legends included): one layout pass, no tight_layout; the
    PNG carries the fingerprint of its data (``draw_all``)."""
    key = _KEY.get()
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.08, metadata={KEY_FIELD: key} if key else None)
    plt.close(fig)
    return path


# ---- drawing a report's figures: only those whose data changed, over the CPU cores ---------------------

@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """What else decides a figure's pixels: this module's and the statistics' code, the plotting libraries."""
    h = hashlib.sha256(f"{matplotlib.__version__} {sns.__version__}".encode())
    for module in (__file__, stats.__file__):
        h.update(Path(module).read_bytes())
    return h.hexdigest()


def _run_digest(run: Run) -> bytes:
    """Everything a figure reads of a run: its record, series, spectra and gradient profiles."""
    h = hashlib.sha256(json.dumps([run.run_id, run.status, run.step, run.total_steps, run.seed, run.config,
                                   run.summary, run.task_info, run.params_total, run.params_recurrent],
                                  sort_keys=True, default=repr).encode())
    for name in sorted(run.series):
        h.update(name.encode())
        for a in run.series[name]:
            h.update(np.ascontiguousarray(a).tobytes())
    for step, a in (*run.spectra, *run.profiles):
        h.update(str(step).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _feed(h, obj, memo: dict) -> None:
    """Hash ``obj``: runs by ``_run_digest`` (once each), pandas and numpy data by their values."""
    if isinstance(obj, Run):
        if id(obj) not in memo:
            memo[id(obj)] = _run_digest(obj)
        h.update(memo[id(obj)])
    elif isinstance(obj, np.ndarray) and obj.dtype != object:
        h.update(f"{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, np.ndarray):  # objects: by value, not by their addresses
        _feed(h, obj.tolist(), memo)
    elif isinstance(obj, (pd.Series, pd.DataFrame)):
        _feed(h, (obj.to_numpy(), list(obj.index), list(getattr(obj, "columns", []))), memo)
    elif isinstance(obj, Path):
        h.update(obj.name.encode())
    elif isinstance(obj, Group):
        _feed(h, (obj.label, obj.model, obj.config_hash, obj.runs), memo)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _feed(h, (type(obj).__name__, [getattr(obj, f.name) for f in dataclasses.fields(obj)]), memo)
    elif isinstance(obj, dict):
        for k in sorted(obj, key=repr):
            _feed(h, (k, obj[k]), memo)
    elif isinstance(obj, (list, tuple)):
        h.update(f"[{len(obj)}".encode())
        for x in obj:
            _feed(h, x, memo)
    else:
        h.update(repr(obj).encode())


def data_key(name: str, args: tuple, kwargs: dict, memo: dict | None = None) -> str:
    """The fingerprint of a figure: its function, the code that draws it and every value it is drawn from."""
    h = hashlib.sha256(f"{name}:{_code_version()}".encode())
    _feed(h, (args, kwargs), {} if memo is None else memo)
    return h.hexdigest()


def drawn_from(path: Path) -> str | None:
    """The data fingerprint a PNG of ours was drawn from (None: no such file, or not drawn by us)."""
    try:
        from PIL import Image

        with Image.open(path) as image:  # text chunks before the pixels: no need to decode them
            return image.info.get(KEY_FIELD) if image.format == "PNG" else None
    except (OSError, ValueError, SyntaxError):
        return None


_JOBS: list = []  # the jobs of the running draw_all, read by forked workers


def _draw(i: int) -> str | None:
    name, args, kwargs, key = _JOBS[i]
    token = _KEY.set(key)
    try:
        globals()[name](*args, **kwargs)
        return None
    except Exception as e:  # the page names the figure that is missing, and why
        plt.close("all")
        text = str(e).strip().splitlines()
        return f"{type(e).__name__}: {text[0] if text else ''}"
    finally:
        _KEY.reset(token)


def _workers(n: int) -> int:
    """Processes to draw n figures with: forked workers on Linux when this process runs no other
    thread (forking a threaded process is not safe), one per usable core, at most 4."""
    if n < 4 or sys.platform != "linux" or threading.active_count() > 1:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def draw_all(jobs: list[tuple[str, tuple, dict]]) -> list[str | None]:
    """Draw figure jobs (function name in this module, positional args ending with the PNG's path,
    keyword args). A PNG whose recorded fingerprint equals its data's is left as it is. Returns, per
    job, None or why it could not be drawn."""
    global _JOBS
    memo: dict = {}
    keyed = [(name, args, kwargs, data_key(name, args, kwargs, memo)) for name, args, kwargs in jobs]
    todo = [i for i, (_, args, _, key) in enumerate(keyed) if drawn_from(args[-1]) != key]
    errors: list[str | None] = [None] * len(jobs)
    _JOBS = keyed
    try:
        done = None
        workers = _workers(len(todo))
        if workers > 1:
            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                    done = list(pool.map(_draw, todo))
            except BrokenProcessPool:  # a worker died (out of memory, a signal): draw here instead
                done = None
        if done is None:
            done = [_draw(i) for i in todo]
    finally:
        _JOBS = []
    for i, error in zip(todo, done):
        errors[i] = error
    return errors


def _log(ax, which: str = "y") -> None:
    """A log scale labelled in plain text (0.01, 1e-05): matplotlib's default labels are mathtext, whose
    parsing is a good part of a figure's drawing time."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(ticker.LogFormatter())
    axis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or len(y) < 3:
        return y
    n = min(n, len(y))
    kernel = np.ones(n) / n
    padded = np.concatenate([np.full(n - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def _mean_band(groups_runs, name: str, smooth: int = 1, x_name: str | None = None):
    """Mean and std over seeds on the steps all seeds share; x is the step or the mean of x_name."""
    curves = [r.get(name) for r in groups_runs]
    curves = [(s, v) for s, v in curves if len(s)]
    if not curves:
        return None
    common = curves[0][0]
    for s, _ in curves[1:]:
        common = np.intersect1d(common, s)
    if len(common) == 0:
        return None
    ys = np.stack([_smooth(v[np.isin(s, common)], smooth) for s, v in curves])
    x = common.astype(float)
    if x_name:
        xs = []
        for r in groups_runs:
            s, v = r.get(x_name)
            if len(s):
                xs.append(np.interp(common, s, v))
        if not xs:
            return None
        x = np.mean(xs, axis=0)
    with warnings.catch_warnings():  # all-NaN columns (a diverged seed) are fine: they plot as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        return x, np.nanmean(ys, 0), np.nanstd(ys, 0)


POINTS = 150  # points drawn per curve: enough for the eye, cheap to render


def _thin(n: int, points: int = POINTS) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))


def _finished_band(runs, name: str, smooth: int, x_name: str | None, log: bool = False):
    """(x, mean, low, high, n) over finished seeds on the steps they share, thinned to POINTS; the band
    is the Student-t 95% interval of the mean (the table's interval), NaN for one seed. ``log``: for a
    log axis, the mean and interval of log values (a geometric mean and a multiplicative band, which a
    log axis can draw; a symmetric band of the values reaches below zero)."""
    curves = [(r, *r.get(name)) for r in runs]
    curves = [(r, s, v) for r, s, v in curves if len(s)]
    if not curves:
        return None
    common = curves[0][1]
    for _, s, _ in curves[1:]:
        common = np.intersect1d(common, s)
    if len(common) == 0:
        return None
    ys = np.stack([_smooth(v[np.isin(s, common)], smooth) for _, s, v in curves])
    x = common.astype(float)
    if x_name:
        xs = [np.interp(common, *r.get(x_name)) for r, _, _ in curves if len(r.get(x_name)[0])]
        if not xs:
            return None
        x = np.mean(xs, axis=0)
    keep = _thin(len(common))
    ys = ys[:, keep]
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(np.maximum(ys, TINY))
        low, high = stats.t_interval(logs, axis=0)
        return x[keep], 10 ** logs.mean(0), 10**low, 10**high, len(curves)
    low, high = stats.t_interval(ys, axis=0)
    return x[keep], ys.mean(0), low, high, len(curves)


def _seed_line(run, name: str, smooth: int, x_name: str | None):
    """(x, y) of one seed up to its last finite value, thinned; None if it has none."""
    s, v = run.get(name)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    last = int(np.flatnonzero(ok)[-1]) + 1
    s, v = s[:last], v[:last]
    v = np.where(np.isfinite(v), v, np.nan)
    y = _smooth(np.nan_to_num(v, nan=np.nanmax(v)), smooth)
    x = s.astype(float)
    if x_name:
        xs, xv = run.get(x_name)
        x = np.interp(s, xs, xv) if len(xs) else x
    keep = _thin(len(s))
    return x[keep], y[keep]


def _legend_label(g: Group) -> str:
    st = g.statuses()
    pending = sum(v for k, v in st.items() if k not in stats.SCORED)
    parts = [f"{st.get('finished', 0)} finished"] + [f"{st[k]} {k} ×" for k in stats.FAILED if st.get(k)]
    return f"{g.label} ({', '.join(parts + ([f'{pending} pending'] if pending else []))})"


def _curves_panel(ax, groups: list[Group], styles: dict, name: str, smooth: int, x_name, marker,
                  bounds: tuple[float, float] | None = None) -> None:
    """Finished seeds: mean and t band (cut at ``bounds``, the metric's possible range: with two or
    three seeds a t interval of an accuracy can reach far past 0 and 1). Diverged or failed seeds: their
    own thin line to where they stopped, an × there (at the panel's edge when off the scale). Pending
    seeds: a dotted line."""
    stopped = []
    for g in groups:
        st = styles[g.label]
        done = [r for r in g.runs if r.status == "finished"]
        band = _finished_band(done, name, smooth, x_name, ax.get_yscale() == "log") if done else None
        label = _legend_label(g)
        if band:
            x, mean, low, high, _ = band
            if bounds is not None:
                low, high = np.clip(low, *bounds), np.clip(high, *bounds)
            ax.plot(x, mean, color=st.color, ls=st.ls, lw=1.3, marker=marker and st.marker, ms=3.5,
                    markeredgewidth=0, label=label)
            ok = np.isfinite(low) & np.isfinite(high)
            if ok.any():  # one polygon: a fraction of fill_between's cost, and no band for one seed
                ax.fill(np.r_[x[ok], x[ok][::-1]], np.r_[low[ok], high[ok][::-1]], color=st.color, alpha=0.18, lw=0)
            label = None
        for r in g.runs:
            if r.status == "finished":
                continue
            line = _seed_line(r, name, smooth, x_name)
            if line is None:
                continue
            if r.status in stats.FAILED:
                stopped.append((line, st, label))
            else:
                ax.plot(*line, color=st.color, lw=0.9, ls=":", label=label)
            label = None
    if not stopped:
        return
    low, high = ax.get_ylim() if ax.has_data() else (None, None)
    for (x, y), st, label in stopped:
        if low is not None:
            y = np.clip(y, low, high)
        ax.plot(x, y, color=st.color, lw=0.8, ls=st.ls, alpha=0.7, label=label)
        ax.plot(x[-1], y[-1], marker="x", color=st.color, ms=9, mew=2.2, clip_on=False)
    if low is not None:
        ax.set_ylim(low, high)


@themed
def learning_curves(groups: list[Group], info: dict, styles: dict, path: Path, wallclock: bool = False) -> Path:
    metric = info.get("metric", "loss")
    baseline = info.get("baseline", {})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    longest = max((r.total_steps for g in groups for r in g.runs), default=1)
    smooth = max(1, longest // 60)
    x_name = "train/time" if wallclock else None
    _log(axes[0])
    if not info.get("higher_is_better", True):
        _log(axes[1])
    bounds = (0.0, 1.0) if "accuracy" in metric else None  # an accuracy's possible range
    for ax, name, k, marker, b in ((axes[0], "train/loss", smooth, None, None),
                                   (axes[1], f"val/{metric}", 1, "o", bounds)):
        _curves_panel(ax, groups, styles, name, k, x_name, marker, b)
    if "loss" in baseline:
        axes[0].axhline(baseline["loss"], color="black", ls="--", lw=1, label="memoryless baseline")
    if metric in baseline:
        axes[1].axhline(baseline[metric], color="black", ls="--", lw=1)
    xlabel = "training time (s)" if wallclock else "step"
    axes[0].set(xlabel=xlabel, ylabel="train loss (smoothed)", title="training loss")
    axes[1].set(xlabel=xlabel, ylabel=f"validation {metric}", title=f"validation {metric}")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="0.3", marker="x", ls="", ms=8, mew=2))
    labels.append("where a diverged or failed seed stopped")
    fig.subplots_adjust(right=0.985)  # the legend sits just right of the axes; the saved file grows to fit it
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8,
                        title="line: mean over finished seeds (log axes: geometric)\nband: its 95% Student-t "
                        "interval" + (" (cut at 0 and 1)" if bounds else ""), title_fontsize=8, alignment="left")
    return _save(fig, path)


@themed
def metric_vs_params(groups: list[Group], info: dict, styles: dict, path: Path, summary: dict | None = None
                     ) -> Path:
    """The table's mean and Student-t 95% interval (failed seeds at the floor) against degrees of freedom."""
    metric = info.get("metric", "metric")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for g in groups:
        row = (summary or {}).get(g.label)
        stored = g.runs[0].params_total
        params = g.runs[0].params_dof or stored  # degrees of freedom where recorded
        if row is None or not np.isfinite(row["mean"]) or not params:
            continue
        st, mean = styles[g.label], row["mean"]
        if stored and stored != params:  # a parametrization storing more numbers than it learns
            ax.plot([params, stored], [mean, mean], color=st.color, lw=0.8, ls=":")
            ax.plot(stored, mean, st.marker, mfc="none", color=st.color)
        err = None
        if row["n"] > 1 and np.isfinite(row["ci_low"]):
            err = [[mean - row["ci_low"]], [row["ci_high"] - mean]]
        ax.errorbar(params, mean, yerr=err, fmt=st.marker, color=st.color, capsize=3, label=g.label)
        lost = stats.failures(row)
        ax.annotate(f"{g.label} ({lost})" if lost else g.label, (params, mean), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    if metric in info.get("baseline", {}):
        ax.axhline(info["baseline"][metric], color="black", ls="--", lw=1, label="memoryless baseline")
    _log(ax, "x")
    ax.set(xlabel="degrees of freedom (filled; hollow: stored numbers) (log)",
           ylabel=f"test {metric} at best validation",
           title=f"{metric} vs parameter count\n(error bars: 95% Student-t interval of the mean over n seeds)")
    ax.title.set_fontsize(9)
    return _save(fig, path)


@themed
def time_per_step(groups: list[Group], styles: dict, path: Path) -> Path:
    rows = [(g.label, *g.stat("time_per_step")[:2]) for g in groups]
    rows = [(label, m * 1e3, (s or 0) * 1e3) for label, m, s in rows if m is not None]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * max(len(rows), 1) + 1.2))
    if rows:
        rows.sort(key=lambda r: r[1])
        labels, means, stds = zip(*rows)
        ax.barh(labels, means, xerr=stds, color=[styles[label].color for label in labels], capsize=2)
    ax.set(xlabel="ms per training step (median over steps; bar: mean over finished seeds, error bar: ±1 SD)",
           title="time per step")
    ax.xaxis.label.set_fontsize(8)
    return _save(fig, path)


@themed
def critical_difference(test, colors: dict, path: Path) -> list[str]:
    """The critical-difference diagram of a ``stats.RankTest`` (scikit-posthocs): mean ranks on an axis,
    bars joining models the Nemenyi test does not separate, ranks labelled with two decimals, each model
    in its colour. Returns the labels drawn."""
    import scikit_posthocs as sp

    fig, ax = plt.subplots(figsize=(9, 0.28 * len(test.ranks) + 1.6))
    palette = {m: colors[m] for m in test.ranks.index} if all(m in colors for m in test.ranks.index) else {}
    drawn = sp.critical_difference_diagram(test.ranks, test.nemenyi, ax=ax, alpha=test.alpha, color_palette=palette,
                                           label_fmt_left="{label} ({rank:.2f})",
                                           label_fmt_right="({rank:.2f}) {label}")
    ax.set_title(f"mean rank over N = {test.n_blocks} protocols, k = {test.k} models (1 = best); Friedman "
                 f"p = {test.p_value:.3g}; Nemenyi critical difference {test.cd:.2f}", fontsize=9, pad=22)
    labels = [t.get_text() for t in drawn["labels"]]
    _save(fig, path)
    return labels


def cd_diagram(test, path, colors: dict | None = None) -> list[str]:
    """``critical_difference`` with default colours; returns the labels drawn."""
    return critical_difference(test, colors or {}, Path(path))


@themed
def iqm_profile(agg, styles: dict, path: Path) -> Path:
    """Left: IQM of normalized scores per model with its stratified-bootstrap interval. Right: the
    performance profile (fraction of runs above tau) with its band (Agarwal et al., NeurIPS 2021)."""
    table = agg.iqm
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.3 * len(table) + 2.4),
                             gridspec_kw={"width_ratios": [1, 1.4]})
    ax = axes[0]
    y = np.arange(len(table))[::-1]
    for yi, r in zip(y, table.to_dict("records")):
        color = styles[r["model"]].color if r["model"] in styles else "0.3"
        ax.plot([r["ci_low"], r["ci_high"]], [yi, yi], color=color, lw=5, alpha=0.45, solid_capstyle="butt")
        ax.plot(r["iqm"], yi, "|", color=color, ms=14, mew=2.5)
    ax.set_yticks(y, [f"{m} ({n})" for m, n in zip(table["model"], table["n_runs"])])
    ax.axvline(0, color="black", ls="--", lw=1)
    ax.set(xlabel="IQM of normalized score (0: memoryless baseline, 1: perfect)",
           title=f"IQM with {int(agg.confidence * 100)}% stratified-bootstrap interval (runs)")
    ax = axes[1]
    for m, (curve, low, high) in agg.profiles.items():
        st = styles.get(m, Style((0.3, 0.3, 0.3)))
        ax.plot(agg.taus, curve, color=st.color, ls=st.ls, lw=1.4, label=m)
        ax.fill_between(agg.taus, low, high, color=st.color, alpha=0.15, lw=0)
    ax.axvline(0, color="black", ls="--", lw=1)
    ax.set(xlabel="normalized score τ", ylabel="fraction of runs with score > τ", ylim=(-0.02, 1.02),
           title="performance profile (band: 95% stratified bootstrap)")
    fig.subplots_adjust(right=0.985)
    fig.legend(*ax.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               fontsize=8)
    for a in axes:
        a.title.set_fontsize(9)
    return _save(fig, path)


@themed
def _nothing(path: Path, why: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", color="0.4")
    return _save(fig, path)


@themed
def spectra(groups: list[Group], styles: dict, path: Path) -> Path:
    """One complex plane per model, eigenvalues at init (hollow grey) and at the end (the model's colour),
    drawn as small multiples inside a single axes: the unit circle is each panel's scale, and one axes
    draws in a fraction of the time of one per model."""
    shown = [g for g in groups if g.runs[0].spectra]
    if not shown:
        return _nothing(path, "no spectra recorded yet")
    cols = 4
    rows = -(-len(shown) // cols)
    lim = 1.15
    for g in shown:
        spec = g.runs[0].spectra
        lim = max(lim, float(np.abs(np.concatenate([spec[0][1], spec[-1][1]])).max(initial=1)) * 1.05)
    step = 2 * lim + 0.9  # panel width plus room for its title
    fig, ax = plt.subplots(figsize=(cols * 2.6, rows * 2.75 + 0.4))
    t = np.linspace(0, 2 * np.pi, 200)
    for i, g in enumerate(shown):
        cx, cy = (i % cols) * step, -(i // cols) * step
        spec = g.runs[0].spectra
        init, final = spec[0][1], spec[-1][1]
        ax.add_patch(plt.Rectangle((cx - lim, cy - lim), 2 * lim, 2 * lim, fill=False, ec="0.8", lw=0.8))
        ax.plot(cx + np.cos(t), cy + np.sin(t), color="0.6", lw=0.8)
        ax.plot([cx - lim, cx + lim], [cy, cy], color="0.88", lw=0.6, zorder=0)
        ax.plot([cx, cx], [cy - lim, cy + lim], color="0.88", lw=0.6, zorder=0)
        ax.scatter(cx + init.real, cy + init.imag, s=12, facecolors="none", edgecolors="0.45", lw=0.7)
        ax.scatter(cx + final.real, cy + final.imag, s=9, color=styles[g.label].color)
        ax.text(cx, cy + lim + 0.12, f"{g.label} (end: step {spec[-1][0]})", ha="center", va="bottom", fontsize=8)
        ax.text(cx + 1, cy - 0.08, "1", ha="left", va="top", fontsize=6, color="0.45")
    ax.set_xlim(-lim - 0.1, (cols - 1) * step + lim + 0.1)
    ax.set_ylim(-(rows - 1) * step - lim - 0.1, lim + 0.55)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", mfc="none", mec="0.45", label="at init (step 0)"),
               plt.Line2D([], [], marker="o", ls="", color="0.2", label="at the end (the model's colour)")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False, fontsize=8)
    ax.set_title("eigenvalues of the recurrent matrix in the complex plane (seed of first run); grey: the unit "
                 "circle", loc="left", fontsize=10)
    return _save(fig, path)


@themed
def eigen_angles(groups: list[Group], styles: dict, path: Path) -> Path:
    """One histogram per model and moment, drawn as rows of a heatmap (one axes, not one per model)."""
    shown = [g for g in groups if g.runs[0].spectra]
    if not shown:  # runs claimed but not committed yet, or failed before their first evaluation
        return _nothing(path, "no spectra recorded yet")
    bins = np.linspace(-np.pi, np.pi, 73)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.32 * max(len(shown), 1) + 1.4), sharey=True)
    for ax, which, title in ((axes[0], 0, "at init"), (axes[1], -1, "at the end")):
        counts = np.array([np.histogram(np.angle(g.runs[0].spectra[which][1]), bins)[0] for g in shown]
                          ).reshape(len(shown), -1)
        rows = counts / np.maximum(counts.max(1, keepdims=True), 1)
        ax.imshow(rows, aspect="auto", cmap="Blues", extent=(-np.pi, np.pi, len(shown) - 0.5, -0.5),
                  interpolation="nearest", vmin=0, vmax=1)
        ax.set_xticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], ["-π", "-π/2", "0", "π/2", "π"])
        ax.set_yticks(range(len(shown)), [g.label for g in shown])
        ax.set(title=f"eigen-angle histograms {title}", xlabel="angle of eigenvalue (radians)")
        ax.grid(False)
    return _save(fig, path)


@themed
def orthogonality(groups: list[Group], styles: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(12, 4.2))
    for g in groups:
        band = _mean_band(g.runs, "orth_error")
        if band:
            x, m, _ = band
            ax.plot(x, np.maximum(m, TINY), color=styles[g.label].color, ls=styles[g.label].ls, lw=1.3, marker=".",
                    label=g.label)
    _log(ax)
    ax.set(xlabel="step", ylabel="max |WᴴW − I|", title="orthogonality drift")
    fig.subplots_adjust(right=0.985)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
               frameon=False)
    return _save(fig, path)


@themed
def gradient_profiles(groups: list[Group], styles: dict, path: Path) -> Path:
    """||dL/dh_t|| against t for every model, at init (left) and at the end (right), log scale."""
    shown = [g for g in groups if g.runs[0].profiles]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, which, title in ((axes[0], 0, "at init"), (axes[1], -1, "at the end")):
        for g in shown:
            step, norms = g.runs[0].profiles[which]
            ax.plot(np.arange(1, len(norms) + 1), np.maximum(norms, TINY), color=styles[g.label].color,
                    ls=styles[g.label].ls, lw=1.2,
                    label=f"{g.label} (step {step})" if which else g.label)
        _log(ax)
        ax.set(xlabel="t", title=f"||dL/dh_t|| {title}")
    axes[0].set_ylabel("gradient norm (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.subplots_adjust(right=0.985)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    return _save(fig, path)
