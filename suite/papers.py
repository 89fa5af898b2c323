"""The papers the suite cites, each written once: authors, short name, venue, arXiv id and version.

Model registrations (``paper=``), presets, protocols and published numbers build their source
strings from these, adding the section, table or script they took a value from.
"""

SCORNN = "Helfrich, Willmott & Ye, scoRNN, ICML 2018, arXiv:1707.09520v3"
EXPRNN = "Lezcano-Casado & Martinez-Rubio, expRNN, ICML 2019, arXiv:1901.08428v3"
DTRIV = "Lezcano-Casado, dynamic trivializations, NeurIPS 2019, arXiv:1909.09501v2"
EURNN = "Jing et al., EURNN, ICML 2017, arXiv:1612.05231v3"
URNN = "Arjovsky, Shah & Bengio, uRNN, ICML 2016, arXiv:1511.06464v4"
FCURNN = "Wisdom et al., full-capacity unitary RNNs, NeurIPS 2016, arXiv:1611.00035v1"
SCURNN = "Maduranga, Helfrich & Ye, scuRNN, AAAI 2019, arXiv:1811.04142v2"
NNRNN = "Kerg et al., non-normal RNNs (nnRNN), NeurIPS 2019, arXiv:1905.12080v2"
CORNN = "Rusch & Mishra, coRNN, ICLR 2021, arXiv:2010.00951v3"
LRU = "Orvieto et al., Resurrecting recurrent neural networks for long sequences (LRU), ICML 2023, arXiv:2303.06349v1"
PROJUNN = "Kiani et al., projUNN, NeurIPS 2022, arXiv:2203.05483"

# Sources of the suite's own choices (no paper ran the model or task there).
SUITE_DEFAULT = "suite default for a model its paper did not run here (docs/models.md)"
QUICK = "suite quick scale"
QUICK_TUNED = "suite quick scale, rates chosen on validation by a small grid search (suite tune)"
