"""Exceptions raised by :class:`TaskManager.TaskManagerClient`.

Every exception is a :class:`TaskManagerError`. The HTTP status decides the
subclass: 400 ValidationError, 401 AuthenticationError, 404 (and an empty
claim) ResourceNotFoundError, 429 RateLimitError, anything else APIError.
A connection failure or a timeout is a plain TaskManagerError whose message
starts with "Connection error" (``status_code`` is None).

Messages carry the server's own text (``error``, or ``message`` for the
middleware answers such as 401 and 429) and never the API key.
"""

from typing import Any, List, Optional

__all__ = [
    "TaskManagerError",
    "AuthenticationError",
    "ResourceNotFoundError",
    "ValidationError",
    "RateLimitError",
    "APIError",
]


class TaskManagerError(Exception):
    """Base class of every error of the TaskManager client."""

    def __init__(
        self,
        message: str,
        status_code: Optional[int] = None,
        details: Optional[List[Any]] = None,
        response: Optional[Any] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.details = details
        #: The decoded JSON body of the answer, when there was one.
        self.response = response

    def __str__(self) -> str:
        if self.details:
            return "%s: %s" % (self.message, "; ".join(str(d) for d in self.details))
        return self.message

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        if self.status_code is not None:
            parts.append("status_code=%r" % self.status_code)
        if self.details:
            parts.append("details=%r" % (self.details,))
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


class AuthenticationError(TaskManagerError):
    """401: the API key is missing or wrong ("Invalid or missing API key")."""


class ResourceNotFoundError(TaskManagerError):
    """404, or a claim that found no task ("No available tasks")."""


class ValidationError(TaskManagerError):
    """400: the server refused the request; ``details`` holds its list, if any."""


class RateLimitError(TaskManagerError):
    """429: too many requests; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: Optional[float] = None, **kwargs: Any) -> None:
        kwargs.setdefault("status_code", 429)
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        base = super().__repr__()
        return "%s, retry_after=%r)" % (base[:-1], self.retry_after)


class APIError(TaskManagerError):
    """Any other failed answer (403, 413, 5xx, a non-JSON answer, ...)."""
