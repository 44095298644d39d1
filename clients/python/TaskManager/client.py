"""TaskManagerClient: the PrismQ TaskManager REST API from Python.

The interface is the one PrismQ's workers call (``from TaskManager import
TaskManagerClient``). Every method returns the ``data`` of the server's
envelope (``list_tasks`` returns its list of tasks), and accepts the real PHP
server's behaviour as well as the fixed one of ``taskbridge serve``:

* ids may arrive as numeric strings: every ``id`` is returned as an int;
* ``GET /task-types/{name}`` and ``GET /tasks/{id}`` may answer a list wrapper
  ``{"items": [...], "count": n}``: the first item is returned, an empty list
  is a ResourceNotFoundError;
* an empty claim may be ``404 "No available tasks"`` or ``500 "There is no
  active transaction"``: both are a ResourceNotFoundError;
* a deduplicated create says ``deduplicated``; ``duplicate`` is added too;
* a comma-separated ``status`` filter is sent as one request per status and
  merged, which works whether or not the server splits it;
* ``priority`` is sent but may not be stored (the PHP server ignores it).
"""

import logging
import re
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from .config import KEY_VARIABLE, URL_VARIABLE, resolve_settings
from .exceptions import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ResourceNotFoundError,
    TaskManagerError,
    ValidationError,
)

__all__ = ["TaskManagerClient", "DEFAULT_TIMEOUT"]

logger = logging.getLogger(__name__)

#: Seconds for connect and for each read; a (connect, read) tuple also works.
DEFAULT_TIMEOUT = 30.0

_NO_TRANSACTION = "There is no active transaction"
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")\]]*")

Timeout = Union[float, Tuple[float, float]]


def _as_int_id(value: Any) -> Any:
    """``"12"`` -> 12; ints and anything else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
            return int(text)
    return value


def _normalise(record: Any) -> Any:
    """A copy of a task/task-type dict with an int ``id`` (when numeric)."""
    if isinstance(record, dict) and "id" in record:
        record = dict(record)
        record["id"] = _as_int_id(record["id"])
    return record


def _normalise_base_url(url: str) -> str:
    """Strip trailing slashes; a URL without a path gets ``/api`` (the API's base)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise TaskManagerError(
            "Invalid %s %r: expected an absolute URL such as "
            "https://taskmanager.example.org/api" % (URL_VARIABLE, url)
        )
    if parts.path in ("", "/"):
        parts = parts._replace(path="/api")
    return urlunsplit(parts)


class _Secret(str):
    """The API key: a str whose repr never shows it."""

    def __repr__(self) -> str:
        return "'***'"


class TaskManagerClient:
    """Client of the TaskManager API.

    ``TaskManagerClient()`` reads ``TASKMANAGER_API_URL`` and
    ``TASKMANAGER_API_KEY`` from the environment, then from ``PrismQ_WD/.env``
    (see :mod:`TaskManager.config`); ``api_url=`` and ``api_key=`` override
    both. ``timeout`` (seconds, or a (connect, read) tuple) applies to every
    request. One ``requests.Session`` is reused; ``close()`` or a ``with``
    block ends it.

    Raises TaskManagerError when no URL is configured and AuthenticationError
    ("Invalid or missing API key") when no key is.
    """

    def __init__(
        self,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        env_file: Optional[str] = None,
    ) -> None:
        settings = resolve_settings(api_url=api_url, api_key=api_key, env_file=env_file)
        if not settings["api_url"]:
            raise TaskManagerError(
                "%s is not set: set it in the environment or in PrismQ_WD/.env "
                "(e.g. https://taskmanager.example.org/api), or pass api_url=" % URL_VARIABLE
            )
        if not settings["api_key"]:
            raise AuthenticationError(
                "Invalid or missing API key: %s is not set; set it in the environment "
                "or in PrismQ_WD/.env, or pass api_key=" % KEY_VARIABLE
            )
        self.api_url: str = _normalise_base_url(settings["api_url"])
        self._api_key = _Secret(settings["api_key"])
        self.timeout: Timeout = timeout
        self.env_file: Optional[str] = settings["env_file"]
        self.session = requests.Session()
        self.session.headers.update(
            {
                "X-API-Key": str(self._api_key),
                "Accept": "application/json",
                "User-Agent": "prismq-taskmanager-client/1.0",
            }
        )

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def __enter__(self) -> "TaskManagerClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "TaskManagerClient(api_url=%r)" % (self.api_url,)

    # -- endpoints -----------------------------------------------------------

    def health_check(self) -> Dict[str, Any]:
        """``GET /health``: ``{"status": "healthy", "database": ..., ...}``.

        The way to check that the API is reachable: a failure to connect
        raises a TaskManagerError "Connection error ...".
        """
        return self._request("GET", "/health")

    def register_task_type(
        self,
        name: str,
        version: str,
        param_schema: Union[Dict[str, Any], str],
        description: Optional[str] = None,
        **extra: Any,
    ) -> Dict[str, Any]:
        """``POST /task-types/register`` (an upsert by name).

        Returns ``{"id", "name", "version", "created" | "updated"}``. Extra
        keywords (such as ``description``) are sent along; the server ignores
        what it does not know.
        """
        body: Dict[str, Any] = {"name": name, "version": version, "param_schema": param_schema}
        if description is not None:
            body["description"] = description
        for key, value in extra.items():
            body.setdefault(key, value)
        return _normalise(self._request("POST", "/task-types/register", json_body=body))

    def get_task_type(self, name: str) -> Dict[str, Any]:
        """``GET /task-types/{name}``: the task type (``id``, ``name``, ``version``,
        ``param_schema``, ``is_active`` and ``active`` as a bool).

        Raises ResourceNotFoundError when there is no such type.
        """
        data = self._request("GET", "/task-types/" + quote(str(name), safe=""))
        record = self._single(data, "Task type not found: %s" % name)
        if "is_active" in record and "active" not in record:
            record["active"] = bool(record["is_active"])
        return record

    def create_task(
        self,
        task_type: str,
        params: Dict[str, Any],
        priority: Optional[int] = None,
    ) -> Dict[str, Any]:
        """``POST /tasks``: create a task, or find the identical one (dedupe).

        Returns ``{"id", "status", ...}`` with ``duplicate`` (and the server's
        ``deduplicated``) True when the task already existed. ``priority`` is
        sent when given; the PHP server does not store it.
        """
        body: Dict[str, Any] = {"type": task_type, "params": params}
        if priority is not None:
            body["priority"] = priority
        data = _normalise(self._request("POST", "/tasks", json_body=body))
        if isinstance(data, dict):
            dup = bool(data.get("deduplicated", data.get("duplicate", False)))
            data["duplicate"] = dup
            data["deduplicated"] = dup
        return data

    def claim_task(
        self,
        worker_id: str,
        task_type_id: Union[int, str],
        sort_by: str = "created_at",
        sort_order: str = "ASC",
        type_pattern: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``POST /tasks/claim``: claim the next task of ``task_type_id``.

        ``sort_by`` is one of created_at, priority, id, attempts; ``sort_order``
        ASC or DESC (FIFO = created_at ASC, LIFO = created_at DESC, PRIORITY =
        priority DESC). Returns ``{"id", "type", "params", "attempts",
        "priority", ...}``. Raises ResourceNotFoundError when no task is
        available.
        """
        body: Dict[str, Any] = {
            "worker_id": worker_id,
            "task_type_id": _as_int_id(task_type_id),
            "sort_by": sort_by,
            "sort_order": sort_order,
        }
        if type_pattern:
            body["type_pattern"] = type_pattern
        return _normalise(self._request("POST", "/tasks/claim", json_body=body, claim=True))

    def complete_task(
        self,
        task_id: Union[int, str],
        worker_id: str,
        success: bool,
        result: Optional[Any] = None,
        error: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``POST /tasks/{id}/complete``: report success or failure.

        A failure with attempts left puts the task back to pending (status
        ``"pending (retry)"``). Returns ``{"id", "status", "message"}``.
        """
        body: Dict[str, Any] = {"worker_id": worker_id, "success": bool(success)}
        if result is not None:
            body["result"] = result
        if error is not None:
            body["error"] = error
        return _normalise(self._request("POST", "/tasks/%s/complete" % self._path_id(task_id), json_body=body))

    def update_progress(
        self,
        task_id: Union[int, str],
        worker_id: str,
        progress: int,
        message: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``POST /tasks/{id}/progress`` (0..100). It does not renew the lease."""
        body: Dict[str, Any] = {"worker_id": worker_id, "progress": progress}
        if message is not None:
            body["message"] = message
        return _normalise(self._request("POST", "/tasks/%s/progress" % self._path_id(task_id), json_body=body))

    def get_task(self, task_id: Union[int, str]) -> Dict[str, Any]:
        """``GET /tasks/{id}``: the task with params, result and error.

        Raises ResourceNotFoundError when there is no such task.
        """
        data = self._request("GET", "/tasks/%s" % self._path_id(task_id))
        return self._single(data, "Task not found: %s" % task_id)

    def list_tasks(
        self,
        task_type: Optional[str] = None,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """``GET /tasks``: the newest tasks first, as a list of task dicts.

        ``status`` may be comma-separated ("pending,claimed,completed"); it is
        sent as one request per status and the answers are merged, newest
        first, so it works on servers that do not split it (the PHP one
        compares the whole string). List items carry no ``params``.
        """
        statuses = [s.strip() for s in status.split(",") if s.strip()] if status else []
        if len(statuses) <= 1:
            return self._list_once(task_type, statuses[0] if statuses else None, limit, offset)
        per_status_limit = None if limit is None else int(limit) + int(offset or 0)
        merged: Dict[Any, Dict[str, Any]] = {}
        for one in statuses:
            for item in self._list_once(task_type, one, per_status_limit, None):
                merged.setdefault(item.get("id"), item)
        items = sorted(
            merged.values(),
            key=lambda t: (str(t.get("created_at") or ""), t.get("id") if isinstance(t.get("id"), int) else 0),
            reverse=True,
        )
        start = int(offset or 0)
        return items[start:] if limit is None else items[start:start + int(limit)]

    # -- internals -----------------------------------------------------------

    def _list_once(
        self, task_type: Optional[str], status: Optional[str], limit: Optional[int], offset: Optional[int]
    ) -> List[Dict[str, Any]]:
        query: Dict[str, Any] = {}
        if task_type:
            query["type"] = task_type
        if status:
            query["status"] = status
        if limit is not None:
            query["limit"] = int(limit)
        if offset:
            query["offset"] = int(offset)
        data = self._request("GET", "/tasks", params=query or None)
        if isinstance(data, dict):
            items = data.get("items", data.get("tasks", []))
        elif isinstance(data, list):
            items = data
        else:
            items = []
        return [_normalise(item) for item in items if isinstance(item, dict)]

    @staticmethod
    def _path_id(task_id: Union[int, str]) -> str:
        return quote(str(_as_int_id(task_id)), safe="")

    @staticmethod
    def _single(data: Any, not_found: str) -> Dict[str, Any]:
        """One object from either an object or a ``{"items": [...]}`` wrapper."""
        if isinstance(data, dict) and "items" in data and isinstance(data["items"], list):
            if not data["items"]:
                raise ResourceNotFoundError(not_found, status_code=200, response=data)
            data = data["items"][0]
        if not isinstance(data, dict) or not data:
            raise ResourceNotFoundError(not_found, status_code=200, response=data)
        return _normalise(data)

    def _scrub(self, text: str) -> str:
        key = str(self._api_key)
        return text.replace(key, "***") if key and isinstance(text, str) else text

    def _request(
        self,
        method: str,
        path: str,
        json_body: Optional[Dict[str, Any]] = None,
        params: Optional[Dict[str, Any]] = None,
        claim: bool = False,
    ) -> Any:
        url = self.api_url + path
        try:
            response = self.session.request(method, url, json=json_body, params=params, timeout=self.timeout)
        except requests.exceptions.Timeout as exc:
            raise TaskManagerError(
                self._scrub(
                    "Connection error: no answer from %s within %ss (%s). Check that the API is "
                    "reachable with TaskManagerClient().health_check()"
                    % (url, self.timeout, type(exc).__name__)
                )
            ) from None
        except requests.exceptions.RequestException as exc:
            match = _ERRNO.search(str(exc))
            reason = match.group(0).strip() if match else type(exc).__name__
            raise TaskManagerError(
                self._scrub(
                    "Connection error: cannot reach %s (%s). Check %s and that the API is "
                    "reachable with TaskManagerClient().health_check()" % (url, reason, URL_VARIABLE)
                )
            ) from None
        logger.debug("%s %s -> %s", method, path, response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= response.status_code < 300:
            if not isinstance(body, dict):
                raise APIError(
                    "Invalid answer from %s: not a JSON object" % url, status_code=response.status_code
                )
            if body.get("success") is False:
                raise APIError(
                    self._scrub(str(body.get("error") or body.get("message") or "Request failed")),
                    status_code=response.status_code,
                    response=body,
                )
            return body["data"] if "data" in body else body
        raise self._error(response, body, claim)

    def _error(self, response: requests.Response, body: Any, claim: bool) -> TaskManagerError:
        status = response.status_code
        details = None
        if isinstance(body, dict):
            if "success" in body:  # the envelope: {"success": false, "error": ..., "details": [...]}
                text = body.get("error") or body.get("message")
            else:  # middleware (401, 403, 413, 429): {"error": title, "message": text}
                text = body.get("message") or body.get("error")
            if isinstance(body.get("details"), list):
                details = [self._scrub(str(d)) for d in body["details"]]
        else:
            text = (response.text or "").strip()[:200]
        message = self._scrub(str(text or response.reason or "HTTP %d" % status))
        common = {"status_code": status, "details": details, "response": body if isinstance(body, dict) else None}
        if claim and (status == 404 or (status == 500 and _NO_TRANSACTION in message)):
            # The PHP server's double rollBack() turns "No available tasks" into a 500.
            return ResourceNotFoundError("No available tasks" if status == 500 else message, **common)
        if status == 400:
            return ValidationError(message, **common)
        if status == 401:
            return AuthenticationError(message, **common)
        if status == 404:
            return ResourceNotFoundError(message, **common)
        if status == 429:
            return RateLimitError(message, retry_after=self._retry_after(response, body), **common)
        return APIError(message, **common)

    @staticmethod
    def _retry_after(response: requests.Response, body: Any) -> Optional[float]:
        candidates = [body.get("retry_after") if isinstance(body, dict) else None, response.headers.get("Retry-After")]
        for value in candidates:
            try:
                if value is not None:
                    number = float(value)
                    return int(number) if number.is_integer() else number
            except (TypeError, ValueError):
                continue
        return None
