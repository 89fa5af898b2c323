"""The report's comparison: per-protocol confidence intervals and tests, the rank aggregate across
protocols, and the tuning searches. Statistics live in reports.stats; this module feeds it runs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from suite.reports import stats
from suite.reports.data import Group, Run, protocol_of, task_info

VALUE = "test_at_best_val"  # the headline number: test metric at the best validation evaluation
CD_FILE, IQM_FILE = "aggregate-cd.png", "aggregate-iqm.png"  # the aggregate's figures


def block_names(by_protocol: dict) -> dict:
    """Protocol -> a unique name (its label) to key the statistics' blocks."""
    names: dict = {}
    for proto in by_protocol:
        name = proto.label
        while name in names.values():
            name += "'"
        names[proto] = name
    return names


def frame(by_block: dict[str, list[Group]]) -> pd.DataFrame:
    """One row per seed that counts (finished, diverged, failed): block, model (the group's label),
    seed, status, value (the headline number of a finished run; NaN otherwise: the statistics score it
    at the protocol's floor)."""
    rows = [{"block": block, "model": g.label, "seed": r.seed, "status": r.status,
             "value": (r.summary or {}).get(VALUE) if r.status == "finished" else None}
            for block, groups in by_block.items() for g in groups for r in g.runs if r.status in stats.SCORED]
    df = pd.DataFrame(rows, columns=["block", "model", "seed", "status", "value"])
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    return df


def higher_is_better(by_block: dict[str, list[Group]]) -> dict[str, bool]:
    return {b: task_info(gs).get("higher_is_better", True) for b, gs in by_block.items()}


def baselines(by_block: dict[str, list[Group]]) -> dict[str, float | None]:
    """Block -> the memoryless baseline (chance level) of its headline metric, if the task gives one."""
    out = {}
    for b, gs in by_block.items():
        info = task_info(gs)
        value = (info.get("baseline") or {}).get(info.get("metric"))
        out[b] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def cell(row) -> str:
    """'mean [low, high] (n=3)'; one seed: 'mean (n=1)' (no interval for n = 1); seeds scored at the
    floor are counted in the brackets: '(n=3, 1 at the floor)'; '—' where no seed of the protocol finished."""
    if not stats.ranked(row) or not math.isfinite(row["mean"]):
        return "—"
    lost = int(row["n"] - row["finished"])
    n = f"(n={int(row['n'])}" + (f", {lost} at the floor)" if lost else ")")
    if row["n"] < 2:
        return f"{_fmt(row['mean'])} {n}"
    return f"{_fmt(row['mean'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}] {n}"


def seeds(row) -> str:
    """'finished / diverged / failed' counts of the seeds in the row."""
    return f"{int(row['finished'])} / {int(row['diverged'])} / {int(row['failed'])}"


def block_stats(by_block: dict[str, list[Group]]) -> dict[str, dict]:
    """Block -> {"rows": {label: {cell, versus, seeds, mean, ...}}, "sentence": str}."""
    table = stats.per_block(frame(by_block), higher_is_better(by_block), baseline=baselines(by_block))
    out = {}
    for block in by_block:
        d = table[table["block"] == block]
        rows = {r["model"]: {**r, "cell": cell(r), "versus": stats.versus(r), "seeds": seeds(r)}
                for r in d.to_dict("records")}
        out[block] = {"rows": rows, "sentence": stats.sentence(d) if len(d) else "No finished runs."}
    return out


def aggregate(by_block: dict[str, list[Group]], out: Path, styles: dict | None = None) -> dict:
    """The aggregate across blocks: {"sentence", "warnings", "figure" (the CD diagram or None), "iqm"
    (rows or None), "iqm_figure", "iqm_note"}."""
    from suite.reports import figures

    df = frame(by_block)
    result = {"sentence": "No finished runs.", "warnings": [], "figure": None, "iqm": None, "iqm_figure": None,
              "iqm_note": ""}
    if df.empty:
        return result
    higher, base = higher_is_better(by_block), baselines(by_block)
    tasks = {b: gs[0].task for b, gs in by_block.items() if gs}
    note = ""
    if df.groupby(["block", "model"]).size().max() < 2:
        note = ("Every model has one seed per protocol: no model can be tested within a protocol, and the "
                "ranks below compare single draws. ")
    test = stats.rank_test(df, higher, baseline=base, tasks=tasks)
    jobs = []
    if test is None:
        result["sentence"] = note + ("The rank aggregate needs at least two protocols with three or more "
                                     "models run on each of them.")
    else:
        colors = {label: st.color for label, st in (styles or {}).items()}
        jobs.append(("figure", ("critical_difference", (test, colors, out / CD_FILE), {})))
        left = (f" Left out (not run on every protocol): {', '.join(test.models_left_out)}."
                if test.models_left_out else "")
        result.update(sentence=note + test.sentence() + left, warnings=test.warnings())
    agg = stats.iqm_profiles(df, higher, base)
    if agg is not None:
        jobs.append(("iqm_figure", ("iqm_profile", (agg, styles or {}, out / IQM_FILE), {})))
        result.update(iqm=_iqm_rows(agg), iqm_note=_iqm_note(agg))
    for (key, job), error in zip(jobs, figures.draw_all([job for _, job in jobs])):
        if error:
            result["warnings"] = [*result["warnings"], f"A figure could not be drawn: {error}"]
        else:
            result[key] = job[1][-1].name
    return result


def _iqm_rows(agg: stats.Aggregate) -> list[dict]:
    return [{"model": r["model"], "iqm": f"{r['iqm']:.3f}", "n": int(r["n_runs"]),
             "ci": f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if math.isfinite(r["ci_low"]) else
             "— (one seed in a protocol)"} for r in agg.iqm.to_dict("records")]


def _iqm_note(agg: stats.Aggregate) -> str:
    text = (f"Over {len(agg.blocks)} protocol{'s' if len(agg.blocks) > 1 else ''} ({', '.join(agg.blocks)}); "
            f"{int(agg.confidence * 100)}% stratified-bootstrap percentile intervals from {agg.reps:,} resamples.")
    if agg.blocks_left_out:
        text += (f" Left out (no memoryless baseline, or a metric outside [0, 1] or below 0): "
                 f"{', '.join(agg.blocks_left_out)}.")
    if agg.models_left_out:
        text += f" Models left out (not run on every protocol above): {', '.join(agg.models_left_out)}."
    return text


def tuning(trials: list[Run], out: Path, colors: dict) -> list[dict]:
    """Per protocol: the search figure (validation metric against lr, per model) and the chosen settings."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from suite.reports.render import slug

    rows = []
    for r in trials:
        s = r.summary or {}
        search = (r.study or "::?").split(":")[2] if r.study and r.study.count(":") >= 3 else "?"
        rows.append({"task": protocol_of(r).label, "model": r.model, "search": search, "status": r.status,
                     "lr": r.config.get("lr"), "orth_lr": r.config.get("orth_lr"),
                     "optimizer": r.config.get("optimizer"), "steps": r.total_steps,
                     "best_val": s.get("best_val"), "metric": s.get("metric"),
                     "higher": s.get("higher_is_better", True), "run_id": r.run_id})
    df = pd.DataFrame(rows)
    sections = []
    if df.empty:
        return sections
    for task, d in df.groupby("task", sort=True):
        chosen = []
        for (model, search), g in d.groupby(["model", "search"], sort=True):
            done = g[(g["status"] == "finished") & g["best_val"].notna()]
            pick = None
            if len(done):
                higher = bool(done["higher"].iloc[0])
                pick = done.loc[done["best_val"].idxmax() if higher else done["best_val"].idxmin()]
            chosen.append({"model": model, "search": search, "trials": len(g),
                           "finished": int((g["status"] == "finished").sum()),
                           "pruned": int((g["status"] == "pruned").sum()), "steps": int(g["steps"].max()),
                           "optimizer": pick["optimizer"] if pick is not None else "—",
                           "lr": f"{pick['lr']:.3g}" if pick is not None else "—",
                           "orth_lr": f"{pick['orth_lr']:.3g}" if pick is not None else "—",
                           "best_val": f"{pick['best_val']:.4g}" if pick is not None else "—",
                           "_run": pick["run_id"] if pick is not None else None})
        scored = d[d["best_val"].notna()]
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        if len(scored):
            palette = {m: colors.get(m, (0.3, 0.3, 0.3)) for m in scored["model"].unique()}
            sns.scatterplot(data=scored, x="lr", y="best_val", hue="model", style="optimizer", palette=palette,
                            ax=ax, s=40)
            picks = scored[scored["run_id"].isin([c["_run"] for c in chosen])]
            ax.scatter(picks["lr"], picks["best_val"], s=160, facecolors="none", edgecolors="black", lw=1.2,
                       label="chosen")
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        metric = d["metric"].dropna().iloc[0] if d["metric"].notna().any() else "metric"
        ax.set(xscale="log", xlabel="lr (log)", ylabel=f"best validation {metric}",
               title=f"{task}: tuning trials (ringed: the chosen setting)")
        fig.tight_layout()
        name = f"tuning-{slug(task)}.png"
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        sections.append({"task": task, "figure": name, "chosen": chosen, "metric": metric})
    return sections
