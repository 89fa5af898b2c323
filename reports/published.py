"""Published numbers the report sets beside ours where protocol, model, hidden size, init and the
model options the number depends on match.

A number is comparable only with runs of the protocol it was measured under (suite.protocols: task
options and training budget), with the paper's model at the same hidden size, the same init of the
orthogonal weights and every other model option the number depends on (``Published.options``): the
expRNN MNIST numbers come from the Cayley-init script, so a Henaff-init ``exprnn`` is never set beside
them, and dtriv-100 is dtriv with K=100, so a dtriv run with K=10 or K=inf is not. Entries whose
protocol the suite does not define (``protocol`` None) are listed with their sources but matched to
no run. Each entry names its source; where a
value could not be checked against the paper itself, ``verified`` is False and the report says so.
Table numbers are given where known; "table number unverified" otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPRNN_PAPER = ("Lezcano-Casado & Martinez-Rubio, expRNN, ICML 2019, arXiv:1901.08428, "
                "MNIST / P-MNIST test-accuracy table (table number unverified)")
SCORNN_PAPER = "Helfrich, Willmott & Ye, scoRNN, ICML 2018, arXiv:1707.09520v3, MNIST results table"
DTRIV_QUOTED = ("Lezcano-Casado, dynamic trivializations, NeurIPS 2019, arXiv:1909.09501, P-MNIST table, "
                "as quoted by projUNN (Kiani et al., NeurIPS 2022)")
TIMIT_SOURCES = "scoRNN and expRNN papers' TIMIT tables"

URNN_PAPER = ("Arjovsky, Shah & Bengio, uRNN, ICML 2016, arXiv:1511.06464, section 5.3 (read in the "
              "December 2015 draft; the final text unverified)")
CORNN_CODE = "Rusch & Mishra, coRNN, ICLR 2021, arXiv:2010.00951, as stated in the authors' code README"


def published_as(model: str) -> str | None:
    """The name published tables give the model, from its registry entry (None if not registered here)."""
    from suite.registry import MODELS

    return MODELS.entry(model).info.published_as if model in MODELS.names() else None


@dataclass(frozen=True)
class Published:
    task: str
    model: str  # the paper's name
    hidden: int
    metric: str
    value: float
    source: str
    verified: bool = True
    note: str = ""
    protocol: str | None = None  # the suite's protocol for the experiment (suite.protocols)
    init: str | None = None  # init of the orthogonal weights ("cayley", "henaff"); None: no such option
    # other model options the number was measured with (dtriv-100: K=100): a run matches only if each
    # of its options, given or the model's default, has this value
    options: tuple[tuple[str, object], ...] = ()

    def matches(self, protocol: str | None, model: str, hidden: int | None, init: str | None,
                model_options: dict | None = None) -> bool:
        return (self.protocol is not None and protocol == self.protocol
                and published_as(model) == self.model and hidden == self.hidden and init == self.init
                and all(_same(model_option(model, model_options or {}, k), v) for k, v in self.options))


def _same(a, b) -> bool:
    """Option values equal as the model reads them (100 == 100.0; "inf" and inf alike; a missing
    option matches nothing)."""
    if a is _MISSING:
        return False
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


_MISSING = object()


def model_option(model: str, model_options: dict, key: str):
    """A run's value of model option ``key``: given in its config, else the model's default."""
    if key in model_options:
        return model_options[key]
    from suite.registry import MODELS

    try:
        return MODELS.options(model).get(key, _MISSING)
    except Exception:  # a model no longer installed
        return _MISSING


def _rows(task, model, sizes, values, source, verified=True, note="", protocol=None, init=None, options=()):
    return [Published(task, model, n, "accuracy" if task != "timit" else "mse", v, source, verified, note,
                      protocol, init, tuple(options))
            for n, v in zip(sizes, values)]


def model_init(model: str, model_options: dict) -> str | None:
    """The init of a run's orthogonal weights: its ``init`` option, else the model's default; None for
    a model without one."""
    if "init" in model_options:
        return model_options["init"]
    if model == "exprnn_cayley":
        return "cayley"
    from suite.registry import MODELS

    try:
        return MODELS.options(model).get("init")
    except Exception:  # a model no longer installed
        return None


_SC_M, _SC_P, _EX_M, _EX_P = "scornn-mnist", "scornn-pmnist", "exprnn-mnist", "exprnn-pmnist"
_QUOTED = "the scoRNN protocol, as the expRNN paper quotes it"

PUBLISHED: list[Published] = [
    *_rows("mnist", "scoRNN", (170, 360, 512), (0.972, 0.981, 0.982), EXPRNN_PAPER, note=_QUOTED,
           protocol=_SC_M, init="cayley"),
    *_rows("pmnist", "scoRNN", (170, 360, 512), (0.948, 0.959, 0.965), EXPRNN_PAPER, note=_QUOTED,
           protocol=_SC_P, init="cayley"),
    *_rows("mnist", "expRNN", (170, 360, 512), (0.980, 0.984, 0.987), EXPRNN_PAPER,
           note="Cayley init (the MNIST script's)", protocol=_EX_M, init="cayley"),
    *_rows("pmnist", "expRNN", (170, 360, 512), (0.949, 0.962, 0.966), EXPRNN_PAPER,
           note="Cayley init (the MNIST script's)", protocol=_EX_P, init="cayley"),
    *_rows("mnist", "LSTM", (128, 256, 512), (0.819, 0.888, 0.919), EXPRNN_PAPER,
           note="RMSprop, no gradient clipping", protocol=_EX_M),
    *_rows("pmnist", "LSTM", (128, 256, 512), (0.795, 0.888, 0.918), EXPRNN_PAPER,
           note="RMSprop, no gradient clipping", protocol=_EX_P),
    *_rows("mnist", "scoRNN", (512,), (0.985,), SCORNN_PAPER + ", as quoted by a later paper",
           protocol=_SC_M, init="cayley"),
    *_rows("pmnist", "scoRNN", (512,), (0.966,), SCORNN_PAPER + ", as quoted by a later paper",
           protocol=_SC_P, init="cayley"),
    *_rows("mnist", "scoRNN", (170, 360), (0.973, 0.983), SCORNN_PAPER, verified=False, protocol=_SC_M,
           init="cayley"),
    *_rows("pmnist", "scoRNN", (170, 360), (0.943, 0.962), SCORNN_PAPER, verified=False, protocol=_SC_P,
           init="cayley"),
    *_rows("mnist", "LSTM", (128, 256, 512), (0.987, 0.989, 0.985), SCORNN_PAPER, verified=False,
           protocol=_SC_M),
    *_rows("pmnist", "LSTM", (128, 256, 512), (0.920, 0.929, 0.920), SCORNN_PAPER, verified=False,
           protocol=_SC_P),
    *_rows("pmnist", "dtriv-100", (170,), (0.951,), DTRIV_QUOTED, note="Cayley init (the MNIST script's)",
           protocol=_EX_P, init="cayley", options=(("K", 100),)),
    *_rows("timit", "scoRNN", (224, 322, 425), (8.50, 7.82, 7.36), TIMIT_SOURCES, verified=False,
           note="test MSE; normalization may differ from the suite's (see docs/tasks.md); protocol not "
           "defined in the suite"),
    *_rows("timit", "LSTM", (84, 120, 158), (14.30, 12.95, 12.62), TIMIT_SOURCES, verified=False,
           note="test MSE; protocol not defined in the suite"),
    *_rows("timit", "expRNN", (224, 322, 425), (5.30, 4.38, 5.48), TIMIT_SOURCES, verified=False,
           note="test MSE; Henaff init (the TIMIT script's)", protocol="exprnn-timit", init="henaff"),
    *_rows("mnist", "uRNN", (512,), (0.951,), URNN_PAPER, verified=False),
    *_rows("pmnist", "uRNN", (512,), (0.914,), URNN_PAPER, verified=False),
    *_rows("mnist", "coRNN", (256,), (0.994,), CORNN_CODE, verified=False, note="paper table unverified"),
    *_rows("pmnist", "coRNN", (256,), (0.973,), CORNN_CODE, verified=False, note="paper table unverified"),
]


def matching(protocol: str | None, model: str, hidden: int | None, init: str | None,
             model_options: dict | None = None) -> list[Published]:
    """Published numbers for a run of ``model`` under the named ``protocol`` (None: an unnamed one,
    which matches nothing) at ``hidden`` with orthogonal init ``init`` and ``model_options``."""
    return [p for p in PUBLISHED if p.matches(protocol, model, hidden, init, model_options)]
