"""The report's figures, one PNG each, drawn from loaded runs (seaborn style over matplotlib)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from suite.reports.data import Group

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
DPI = 110
TINY = 1e-16  # floor for log axes


def palette(labels: list[str]) -> dict[str, tuple]:
    colors = sns.color_palette("tab20", n_colors=max(len(labels), 1))
    return {label: colors[i % len(colors)] for i, label in enumerate(sorted(labels))}


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if fig.legends else None)  # tight only for outside legends
    plt.close(fig)
    return path


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


def _seeds_frame(g: Group, name: str, smooth: int, x_name: str | None, points: int = 150):
    """Long frame (model, seed, x, y) of a series on the steps every seed shares, thinned to ``points``
    x values; x is the step, or the seeds' mean of ``x_name`` at that step."""
    curves = [(r, *r.get(name)) for r in g.runs]
    curves = [(r, s, v) for r, s, v in curves if len(s)]
    if not curves:
        return None
    common = curves[0][1]
    for _, s, _ in curves[1:]:
        common = np.intersect1d(common, s)
    if len(common) == 0:
        return None
    keep = np.unique(np.linspace(0, len(common) - 1, min(points, len(common))).round().astype(int))
    x = common.astype(float)
    if x_name:
        xs = [np.interp(common, *r.get(x_name)) for r, _, _ in curves if len(r.get(x_name)[0])]
        if not xs:
            return None
        x = np.mean(xs, axis=0)
    rows = [pd.DataFrame({"model": g.label, "seed": r.seed, "x": x[keep],
                          "y": _smooth(v[np.isin(s, common)], smooth)[keep]}) for r, s, v in curves]
    return pd.concat(rows, ignore_index=True)


def learning_curves(groups: list[Group], info: dict, colors: dict, path: Path, wallclock: bool = False) -> Path:
    metric = info.get("metric", "loss")
    baseline = info.get("baseline", {})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    longest = max((r.total_steps for g in groups for r in g.runs), default=1)
    smooth = max(1, longest // 60)
    x_name = "train/time" if wallclock else None
    for ax, name, k, marker in ((axes[0], "train/loss", smooth, None), (axes[1], f"val/{metric}", 1, "o")):
        frames = [_seeds_frame(g, name, k, x_name) for g in groups]
        frames = [f for f in frames if f is not None]
        if frames:  # mean over seeds with a 95% bootstrap band (seaborn draws none for one seed)
            sns.lineplot(data=pd.concat(frames, ignore_index=True), x="x", y="y", hue="model", estimator="mean",
                         errorbar=("ci", 95), n_boot=300, seed=0, palette=colors, lw=1.3, marker=marker, ms=4,
                         markeredgewidth=0, ax=ax, legend=ax is axes[0], err_kws={"alpha": 0.18, "lw": 0})
    if axes[0].get_legend():
        axes[0].get_legend().remove()
    if "loss" in baseline:
        axes[0].axhline(baseline["loss"], color="black", ls="--", lw=1, label="memoryless baseline")
    if metric in baseline:
        axes[1].axhline(baseline[metric], color="black", ls="--", lw=1, label="memoryless baseline")
    xlabel = "training time (s)" if wallclock else "step"
    axes[0].set(xlabel=xlabel, ylabel="train loss (smoothed)", yscale="log", title="training loss")
    axes[1].set(xlabel=xlabel, ylabel=f"validation {metric}", title=f"validation {metric}",
                yscale="linear" if info.get("higher_is_better", True) else "log")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def metric_vs_params(groups: list[Group], info: dict, colors: dict, path: Path) -> Path:
    metric = info.get("metric", "metric")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for g in groups:
        mean, std, n = g.stat("test_at_best_val")
        stored = g.runs[0].params_total
        params = g.runs[0].params_dof or stored  # degrees of freedom where recorded
        if mean is None or not params:
            continue
        if stored and stored != params:  # a parametrization storing more numbers than it learns
            ax.plot([params, stored], [mean, mean], color=colors[g.label], lw=0.8, ls=":")
            ax.plot(stored, mean, "o", mfc="none", color=colors[g.label])
        ax.errorbar(params, mean, yerr=std, fmt="o", color=colors[g.label], capsize=3, label=g.label)
        ax.annotate(g.label, (params, mean), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if metric in info.get("baseline", {}):
        ax.axhline(info["baseline"][metric], color="black", ls="--", lw=1, label="memoryless baseline")
    ax.set(xscale="log", xlabel="degrees of freedom (filled; hollow: stored numbers) (log)",
           ylabel=f"test {metric} at best validation",
           title=f"{metric} vs parameter count")
    fig.tight_layout()
    return _save(fig, path)


def time_per_step(groups: list[Group], colors: dict, path: Path) -> Path:
    rows = [(g.label, *g.stat("time_per_step")[:2]) for g in groups]
    rows = [(label, m * 1e3, (s or 0) * 1e3) for label, m, s in rows if m is not None]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * max(len(rows), 1) + 1.2))
    if rows:
        rows.sort(key=lambda r: r[1])
        labels, means, stds = zip(*rows)
        ax.barh(labels, means, xerr=stds, color=[colors[label] for label in labels], capsize=2)
    ax.set(xlabel="ms per training step (median over steps, mean over seeds)", title="time per step")
    fig.tight_layout()
    return _save(fig, path)


def _nothing(path: Path, why: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", color="0.4")
    return _save(fig, path)


def _grid(n: int, cols: int = 4, size: float = 2.6):
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def spectra(groups: list[Group], colors: dict, path: Path) -> Path:
    shown = [g for g in groups if g.runs[0].spectra]
    if not shown:
        return _nothing(path, "no spectra recorded yet")
    fig, axes = _grid(len(shown))
    t = np.linspace(0, 2 * np.pi, 400)
    for ax, g in zip(axes, shown):
        spec = g.runs[0].spectra
        ax.plot(np.cos(t), np.sin(t), color="0.6", lw=0.8)
        init, final = spec[0][1], spec[-1][1]
        ax.scatter(init.real, init.imag, s=12, facecolors="none", edgecolors="0.45", lw=0.7,
                   label=f"init (step {spec[0][0]})")
        ax.scatter(final.real, final.imag, s=9, color=colors[g.label], label=f"end (step {spec[-1][0]})")
        lim = max(1.15, float(np.abs(np.concatenate([init, final])).max(initial=1)) * 1.05)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=g.label)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower left", frameon=False)
    fig.suptitle("eigenvalues of the recurrent matrix (seed of first run), unit circle in grey", y=1.0)
    fig.tight_layout()
    return _save(fig, path)


def eigen_angles(groups: list[Group], colors: dict, path: Path) -> Path:
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
    fig.tight_layout()
    return _save(fig, path)


def orthogonality(groups: list[Group], colors: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(12, 4.2))
    for g in groups:
        band = _mean_band(g.runs, "orth_error")
        if band:
            x, m, _ = band
            ax.plot(x, np.maximum(m, TINY), color=colors[g.label], lw=1.3, marker=".", label=g.label)
    ax.set(yscale="log", xlabel="step", ylabel="max |WᴴW − I|", title="orthogonality drift")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
               frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def gradient_profiles(groups: list[Group], colors: dict, path: Path) -> Path:
    """||dL/dh_t|| against t for every model, at init (left) and at the end (right), log scale."""
    shown = [g for g in groups if g.runs[0].profiles]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, which, title in ((axes[0], 0, "at init"), (axes[1], -1, "at the end")):
        for g in shown:
            step, norms = g.runs[0].profiles[which]
            ax.plot(np.arange(1, len(norms) + 1), np.maximum(norms, TINY), color=colors[g.label], lw=1.2,
                    label=f"{g.label} (step {step})" if which else g.label)
        ax.set(yscale="log", xlabel="t", title=f"||dL/dh_t|| {title}")
    axes[0].set_ylabel("gradient norm (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
