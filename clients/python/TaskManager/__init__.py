"""PrismQ TaskManager API client.

    from TaskManager import TaskManagerClient, ResourceNotFoundError

    with TaskManagerClient() as client:      # TASKMANAGER_API_URL / TASKMANAGER_API_KEY
        print(client.health_check())
"""

from .client import DEFAULT_TIMEOUT, TaskManagerClient
from .config import find_env_file
from .exceptions import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ResourceNotFoundError,
    TaskManagerError,
    ValidationError,
)

__version__ = "1.0.0"

__all__ = [
    "TaskManagerClient",
    "TaskManagerError",
    "AuthenticationError",
    "ResourceNotFoundError",
    "ValidationError",
    "RateLimitError",
    "APIError",
    "DEFAULT_TIMEOUT",
    "find_env_file",
]
