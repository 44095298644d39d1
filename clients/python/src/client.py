"""``from src.client import ResourceNotFoundError, TaskManagerClient`` (see ``src/__init__.py``)."""

from TaskManager.client import DEFAULT_TIMEOUT, TaskManagerClient  # noqa: F401
from TaskManager.exceptions import (  # noqa: F401
    APIError,
    AuthenticationError,
    RateLimitError,
    ResourceNotFoundError,
    TaskManagerError,
    ValidationError,
)

__all__ = [
    "TaskManagerClient",
    "TaskManagerError",
    "AuthenticationError",
    "ResourceNotFoundError",
    "ValidationError",
    "RateLimitError",
    "APIError",
    "DEFAULT_TIMEOUT",
]
