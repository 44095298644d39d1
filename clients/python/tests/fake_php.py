"""A small stand-in for the real PHP TaskManager, answering as the spec records it.

Only the behaviours `taskbridge serve` fixes are the point here
(spec/taskmanager-api.md sections 2, 5, 11.5, 16):

* new ids come back as strings ("1"), claims and dedupes as ints, complete and
  progress echo the path segment (a string);
* GET /task-types/{name} and GET /tasks/{id} answer {"items": [...], "count": n},
  never 404;
* an empty claim is HTTP 500 {"success": false, "error": "There is no active transaction"};
* the status filter of GET /tasks is one exact value (a comma list matches nothing);
* priority is accepted on create and ignored (every task has priority 0);
* a duplicate create says "deduplicated": true;
* 401 uses the middleware shape with Content-Type text/html.

Every request is recorded (method, path, X-API-Key) in ``requests``.
"""

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CLAIM_TIMEOUT = 300
MAX_ATTEMPTS = 3


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def _php_truthy(value) -> bool:
    return value not in (False, None, 0, 0.0, "", "0", [], {})


def _php_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict) and value:
        return "object"
    return "array"  # [] and {} are both PHP arrays


def _matches(value, pattern: str) -> bool:
    """where_optional: LIKE when the value has %, otherwise equality."""
    if "%" in pattern:
        regex = "^" + ".*".join(re.escape(p) for p in pattern.split("%")) + "$"
        return re.match(regex, str(value), re.IGNORECASE) is not None
    return str(value) == pattern


class _Error(Exception):
    def __init__(self, status, error, details=None):
        super().__init__(error)
        self.status, self.error, self.details = status, error, details


class FakePHPTaskManager:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.types = {}  # name -> dict
        self.tasks = {}  # id -> dict
        self.next_type_id = 1
        self.next_task_id = 1
        self.requests = []
        #: canned answers for the next requests: (status, payload, headers, content_type)
        self.forced = []
        handler = self._handler_class()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="fake-php", daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/api" % self.httpd.server_address[1]

    def start(self) -> "FakePHPTaskManager":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=30)

    # -- request handling ------------------------------------------------------

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake._dispatch(self, "GET")

            def do_POST(self):
                fake._dispatch(self, "POST")

        return Handler

    def _send(self, handler, status, payload, content_type="application/json", headers=None):
        if isinstance(payload, (bytes, str)):
            data = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        else:
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")  # like php -S
        handler.end_headers()
        handler.wfile.write(data)
        handler.close_connection = True

    def _dispatch(self, handler, method):
        parts = urlsplit(handler.path)
        path = parts.path.replace("/api", "").rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        key = handler.headers.get("X-API-Key")
        with self.lock:
            self.requests.append({"method": method, "path": path, "query": query, "api_key": key})
            forced = self.forced.pop(0) if self.forced else None
        if forced is not None:
            status, payload, headers, content_type = forced
            self._send(handler, status, payload, content_type=content_type, headers=headers)
            return
        if path != "/health" and key != self.api_key:
            self._send(
                handler,
                401,
                {
                    "error": "Unauthorized",
                    "message": "Invalid or missing API key. Include X-API-Key header with your request.",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                },
                content_type="text/html; charset=UTF-8",
            )
            return
        body = None
        if method != "GET":
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                body = None
            if body is None:
                self._send(handler, 400, self._err("Invalid JSON in request body"))
                return
        try:
            with self.lock:
                data = self._route(method, path, query, body)
        except _Error as exc:
            self._send(handler, exc.status, self._err(exc.error, exc.details))
            return
        self._send(handler, 200, {"success": True, "message": "Success", "data": data, "timestamp": int(time.time())})

    @staticmethod
    def _err(error, details=None):
        out = {"success": False, "error": error, "timestamp": int(time.time())}
        if details:
            out["details"] = details
        return out

    def _route(self, method, path, query, body):
        if method == "GET" and path == "/health":
            return {"status": "healthy", "timestamp": int(time.time()), "database": "connected"}
        if method == "POST" and path == "/task-types/register":
            return self._register(body)
        if method == "POST" and path == "/tasks":
            return self._create(body)
        if method == "POST" and path == "/tasks/claim":
            return self._claim(body)
        m = re.match(r"^/tasks/([^/]+)/(complete|progress)$", path)
        if method == "POST" and m:
            return self._complete(m.group(1), body) if m.group(2) == "complete" else self._progress(m.group(1), body)
        m = re.match(r"^/task-types/([^/]+)$", path)
        if method == "GET" and m:
            t = self.types.get(m.group(1))
            items = [] if t is None else [dict(t)]
            return {"items": items, "count": len(items)}
        m = re.match(r"^/tasks/([^/]+)$", path)
        if method == "GET" and m:
            t = self.tasks.get(int(m.group(1))) if m.group(1).isdigit() else None
            items = [] if t is None else [self._full(t)]
            return {"items": items, "count": len(items)}
        if method == "GET" and path == "/tasks":
            return self._list(query)
        raise _Error(404, "Endpoint not found")

    # -- handlers ----------------------------------------------------------------

    def _register(self, body):
        for field in ("name", "version", "param_schema"):
            if body.get(field) in (None, ""):
                raise _Error(400, "Missing required field: %s" % field)
        schema = body["param_schema"]
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError:
                raise _Error(400, "Invalid JSON schema format")
        if not isinstance(schema, dict) or "type" not in schema:
            raise _Error(400, 'JSON schema must have a "type" property')
        name, version = body["name"].strip(), body["version"].strip()
        if name in self.types:
            t = self.types[name]
            t.update(version=version, param_schema=schema, is_active=1, updated_at=_now())
            return {"id": t["id"], "name": name, "version": version, "updated": True}
        t = {"id": self.next_type_id, "name": name, "version": version, "param_schema": schema,
             "is_active": 1, "created_at": _now(), "updated_at": _now()}
        self.next_type_id += 1
        self.types[name] = t
        return {"id": str(t["id"]), "name": name, "version": version, "created": True}

    def _create(self, body):
        details = []
        if body.get("type") in (None, ""):
            details.append("Task type is required")
        elif not isinstance(body["type"], str):
            details.append("Field 'type' must be of type string")
        if body.get("params") in (None, ""):
            details.append("Task parameters are required")
        elif _php_type(body["params"]) != "object":
            details.append("Field 'params' must be of type object")
        if details:
            raise _Error(400, "Validation failed", details)
        name = body["type"].strip()
        ttype = self.types.get(name)
        if ttype is None:
            raise _Error(404, "Task type not found")
        params = body["params"]
        missing = [k for k in ttype["param_schema"].get("required", []) if params.get(k) is None]
        if missing:
            raise _Error(400, "Parameter validation failed: " + ", ".join("Missing required property: .%s" % k for k in missing))
        params_json = json.dumps(params, ensure_ascii=False, separators=(",", ":"))
        dedupe_key = hashlib.sha256((name + "\0" + params_json).encode("utf-8")).hexdigest()
        for t in self.tasks.values():
            if t["dedupe_key"] == dedupe_key:
                return {"id": t["id"], "status": t["status"], "deduplicated": True,
                        "message": "Task already exists (deduplicated)"}
        task_id = self.next_task_id
        self.next_task_id += 1
        # priority is accepted and ignored, as by the live PHP handler
        self.tasks[task_id] = {
            "id": task_id, "type_id": ttype["id"], "type": name, "status": "pending", "params": params,
            "dedupe_key": dedupe_key, "result": None, "error_message": None, "priority": 0, "progress": 0,
            "attempts": 0, "claimed_by": None, "claimed_at": None, "claimed_ts": None, "completed_at": None,
            "created_at": _now(),
        }
        return {"id": str(task_id), "type": name, "status": "pending", "dedupe_key": dedupe_key,
                "message": "Task created successfully"}

    def _claim(self, body):
        if body.get("worker_id") in (None, ""):
            raise _Error(400, "Validation failed", ["Worker ID is required"])
        if not isinstance(body["worker_id"], str):
            raise _Error(400, "Validation failed", ["Field 'worker_id' must be of type string"])
        if body.get("task_type_id") is None:
            raise _Error(400, "Missing required field: task_type_id")
        try:
            type_id = int(float(body["task_type_id"]))
        except (TypeError, ValueError):
            type_id = 0
        if type_id <= 0:
            raise _Error(400, "task_type_id must be a positive integer")
        sort_by = body.get("sort_by") or "created_at"
        sort_order = str(body.get("sort_order") or "ASC").upper()
        if sort_by not in ("created_at", "priority", "id", "attempts"):
            raise _Error(400, "Invalid sort_by field. Allowed values: created_at, priority, id, attempts")
        if sort_order not in ("ASC", "DESC"):
            raise _Error(400, "Invalid sort_order. Allowed values: ASC, DESC")
        pattern = body.get("type_pattern") or None
        now = time.time()
        candidates = [
            t for t in self.tasks.values()
            if t["type_id"] == type_id
            and (t["status"] == "pending" or (t["status"] == "claimed" and t["claimed_ts"] < now - CLAIM_TIMEOUT))
            and (pattern is None or _matches(t["type"], pattern))
        ]
        if not candidates:
            # the double rollBack() of CustomHandlers::task_claim
            raise _Error(500, "There is no active transaction")
        candidates.sort(key=lambda t: t[sort_by], reverse=(sort_order == "DESC"))
        t = candidates[0]
        t.update(status="claimed", claimed_by=body["worker_id"].strip(), claimed_at=_now(), claimed_ts=now,
                 attempts=t["attempts"] + 1)
        return {"id": t["id"], "type": t["type"], "params": t["params"], "attempts": t["attempts"],
                "priority": t["priority"], "message": "Task claimed successfully"}

    def _owned(self, path_id, body):
        t = self.tasks.get(int(path_id)) if path_id.isdigit() else None
        if t is None:
            raise _Error(404, "Task not found")
        if t["status"] != "claimed":
            raise _Error(400, "Task is not in claimed state")
        if t["claimed_by"] != str(body["worker_id"]).strip():
            raise _Error(403, "Task is claimed by another worker")
        return t

    def _complete(self, path_id, body):
        for field in ("worker_id", "success"):
            if body.get(field) is None:
                raise _Error(400, "Missing required field: %s" % field)
        t = self._owned(path_id, body)
        ok = _php_truthy(body["success"])
        result = body.get("result")
        t.update(status="completed" if ok else "failed", result=result if _php_truthy(result) else None,
                 error_message=body.get("error"), completed_at=_now())
        status = t["status"]
        if not ok and t["attempts"] < MAX_ATTEMPTS:
            t.update(status="pending", claimed_by=None, claimed_at=None, claimed_ts=None)
            status = "pending (retry)"
        return {"id": path_id, "status": status, "message": "Task completed"}

    def _progress(self, path_id, body):
        if body.get("worker_id") in (None, ""):
            raise _Error(400, "Validation failed", ["Worker ID is required"])
        progress = body.get("progress")
        if not isinstance(progress, int) or isinstance(progress, bool):
            raise _Error(400, "Validation failed", ["Field 'progress' must be of type integer"])
        if not 0 <= progress <= 100:
            raise _Error(400, "Validation failed", ["Field 'progress' must be at most 100" if progress > 100
                                                    else "Field 'progress' must be at least 0"])
        t = self._owned(path_id, body)
        t["progress"] = progress
        return {"id": path_id, "progress": progress, "message": "Task progress updated successfully"}

    @staticmethod
    def _full(t):
        keys = ("id", "type", "status", "params", "result", "error_message", "priority", "progress", "attempts",
                "claimed_by", "claimed_at", "completed_at", "created_at")
        return {k: t[k] for k in keys}

    def _list(self, query):
        status, ttype = query.get("status", ""), query.get("type", "")
        rows = [t for t in self.tasks.values()
                if (not status or _matches(t["status"], status)) and (not ttype or _matches(t["type"], ttype))]
        rows.sort(key=lambda t: (t["created_at"], t["id"]), reverse=True)
        limit, offset = int(query.get("limit", 50)), int(query.get("offset", 0))
        keys = ("id", "type", "status", "priority", "progress", "attempts", "claimed_by", "created_at", "completed_at")
        items = [{k: t[k] for k in keys} for t in rows[offset:offset + limit]]
        return {"items": items, "count": len(items)}
