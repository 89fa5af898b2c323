"""Model families; importing this package registers every built-in model."""

from models import eurnn, exprnn, gated, orthogonal_maps, rnn, scornn  # noqa: F401
from models.base import RecurrentModel, orthogonality_error

__all__ = ["RecurrentModel", "orthogonality_error"]
