"""Model families; importing this package registers every built-in model."""

from models import (  # noqa: F401
    cornn,
    eurnn,
    exprnn,
    fcurnn,
    gated,
    lru,
    nnrnn,
    orthogonal_maps,
    rnn,
    scornn,
    scurnn,
    urnn,
)
from models.base import RecurrentModel, orthogonality_error

__all__ = ["RecurrentModel", "orthogonality_error"]
