"""Tasks, one file each; importing this package registers every built-in task."""

from tasks import adding, copying, digits, mnist, mnist1d, timit  # noqa: F401
from tasks.base import Task

__all__ = ["Task"]
