"""Published numbers the report sets beside ours where protocol, model, hidden size and options match.

Each model's published numbers are written in its registration (``@register_model(published=...)``,
in the model's own file), as ``suite.registry.Published`` rows. A number is comparable only with runs
of the protocol it was measured under (suite.protocols: task options and training budget), with the
paper's model at the same hidden size and with every option that changes the number set as the paper
had it (the init of the orthogonal weights, dtriv's K, ...): the expRNN MNIST numbers come from the
Cayley-init script, so a Henaff-init ``exprnn`` is never set beside them. Rows whose protocol the
suite does not define (``protocol`` None) are listed with their sources but matched to no run. Each
row names its source; where a value could not be checked against the paper itself, ``verified`` is
False and the report says so.
"""

from __future__ import annotations

from suite.registry import MODELS, Published

__all__ = ["Published", "effective_options", "matching", "published_rows"]


def published_rows() -> list[Published]:
    """Every published number the registered models carry, each once, in registry order."""
    rows: list[Published] = []
    for entry in MODELS.entries():
        rows += [p for p in entry.info.published if p not in rows]
    return rows


def effective_options(model: str, model_options: dict) -> dict | None:
    """A run's model options as the model ran them: the factory's defaults, what its registration says
    it fixes (``defines``), then the run's own; None for a model no longer installed."""
    if model not in MODELS.names():
        return None
    entry = MODELS.entry(model)
    defaults = {k: v for k, v in MODELS.options(model).items() if k not in ("d_in", "d_out", "output")}
    return {**defaults, **entry.info.defines, **(model_options or {})}


def matching(protocol: str | None, model: str, hidden: int | None, model_options: dict) -> list[Published]:
    """Published numbers for a run of ``model`` under the named ``protocol`` (None: an unnamed one,
    which matches nothing) at ``hidden`` with ``model_options``."""
    options = effective_options(model, model_options)
    if protocol is None or options is None:
        return []
    name = MODELS.entry(model).info.published_as
    return [p for p in published_rows()
            if p.protocol == protocol and p.model == name and p.hidden == hidden
            and all(k in options and _same(options[k], v) for k, v in p.options.items())]


def _same(a, b) -> bool:
    """Option values equal as the model reads them (100 == 100.0; "inf" and inf alike)."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b
