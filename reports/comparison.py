"""The report's comparison: per-protocol confidence intervals and tests, the rank aggregate across
protocols, and the tuning searches. Statistics live in reports.stats; this module feeds it runs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from suite.reports import stats
from suite.reports.data import Group, Run, protocol_of

VALUE = "test_at_best_val"  # the headline number: test metric at the best validation evaluation


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
    """One row per finished run: block, model (the group's label), seed, value."""
    rows = [{"block": block, "model": g.label, "seed": r.seed, "value": r.summary[VALUE]}
            for block, groups in by_block.items() for g in groups for r in g.finished()
            if r.summary and r.summary.get(VALUE) is not None]
    return pd.DataFrame(rows, columns=["block", "model", "seed", "value"])


def higher_is_better(by_block: dict[str, list[Group]]) -> dict[str, bool]:
    from suite.reports.data import task_info

    return {b: task_info(gs).get("higher_is_better", True) for b, gs in by_block.items()}


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def cell(row) -> str:
    """'mean [low, high] (n)'; one seed: 'mean (1 seed)' (no interval is printed for n = 1)."""
    if row["n"] < 2:
        return f"{_fmt(row['mean'])} (1 seed)"
    return f"{_fmt(row['mean'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}] ({int(row['n'])})"


def versus(row) -> str:
    if row["best"]:
        return "best mean"
    if row["significant"] is None or (isinstance(row["significant"], float) and math.isnan(row["significant"])):
        return "not testable" if row["n"] >= 2 else "—"
    return f"p = {row['p_holm']:.2g}, {'worse' if row['significant'] else 'not distinguishable'}"


def block_stats(by_block: dict[str, list[Group]]) -> dict[str, dict]:
    """Block -> {"rows": {label: {cell, versus, mean, ...}}, "sentence": str}."""
    table = stats.per_block(frame(by_block), higher_is_better(by_block))
    out = {}
    for block in by_block:
        d = table[table["block"] == block]
        rows = {r["model"]: {**r, "cell": cell(r), "versus": versus(r)} for r in d.to_dict("records")}
        out[block] = {"rows": rows, "sentence": stats.sentence(d) if len(d) else "No finished runs."}
    return out


def aggregate(by_block: dict[str, list[Group]], out: Path) -> dict:
    """The rank aggregate across blocks: {"sentence", "figure" (file name or None)}."""
    df = frame(by_block)
    if df.empty:
        return {"sentence": "No finished runs.", "figure": None}
    if df.groupby(["block", "model"]).size().min() < 2:
        note = ("With one seed per model, no ranking in this report is significant; the ranks below "
                "only describe this one draw. ")
    else:
        note = ""
    test = stats.rank_test(df, higher_is_better(by_block))
    if test is None:
        return {"sentence": note + "The rank aggregate needs at least two protocols with three or more models "
                "run on each of them.", "figure": None}
    path = out / "aggregate-cd.png"
    stats.cd_diagram(test, path)
    left = f" Left out (not run on every protocol): {', '.join(test.models_left_out)}." if test.models_left_out else ""
    return {"sentence": note + test.sentence() + left, "figure": path.name}


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
