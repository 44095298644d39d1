"""Child processes (taskbridge serve / run) and polling helpers for the tests.

Readiness and progress are always polled against a deadline; the deadlines are
generous because only a hang should ever reach them (CI machines are slow).
"""

import atexit
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import requests

STARTUP_DEADLINE = 180.0  # seconds until a started child answers
WORK_DEADLINE = 120.0  # seconds for a queue to drain / rows to mirror
STOP_DEADLINE = 30.0  # seconds between SIGTERM and SIGKILL
POLL_INTERVAL = 0.1  # seconds between two polls of a condition

REPO_ROOT = Path(__file__).resolve().parents[3]

_live: List["ChildProcess"] = []

SIMPLE_SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "label": {"type": "string"}},
    "required": ["n"],
}


def new_key() -> str:
    return "tbpy-" + secrets.token_urlsafe(24)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], deadline: float, what: str, on_timeout: Callable[[], str] = None):
    """Poll ``condition`` until it returns a truthy value, or fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError("timed out after %ss waiting for %s%s" % (deadline, what, extra))
        time.sleep(POLL_INTERVAL)


def child_env(api_key: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TASKMANAGER_", "RATE_LIMIT_", "TASK_CLAIM_", "MAX_TASK_", "MAX_REQUEST_"))}
    env["TASKMANAGER_API_KEY"] = api_key
    env.setdefault("LOG_LEVEL", "info")
    env.update(extra or {})
    return env


class ChildProcess:
    """A child whose stdout lines are collected and whose stderr goes to a file."""

    def __init__(self, argv: List[str], cwd: Path, env: Dict[str, str], name: str) -> None:
        self.name = name
        self.stderr_path = cwd / ("%s.stderr.log" % name)
        self._stderr = open(self.stderr_path, "wb")
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
        )
        _live.append(self)
        self._reader = threading.Thread(target=self._read, name="%s-stdout" % name, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def stderr_tail(self, n: int = 30) -> str:
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n--- %s stderr (tail) ---\n%s" % (self.name, "\n".join(text.splitlines()[-n:]))

    def wait_for_line(self, prefix: str, deadline: float) -> str:
        end = time.monotonic() + deadline
        with self._cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        "%s exited with %s before printing %r%s"
                        % (self.name, self.proc.returncode, prefix, self.stderr_tail())
                    )
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s printed no %r within %ss%s" % (self.name, prefix, deadline,
                                                                            self.stderr_tail()))
                self._cond.wait(timeout=min(left, 1.0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_DEADLINE)
        self._reader.join(timeout=STOP_DEADLINE)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()
        if self in _live:
            _live.remove(self)


@atexit.register
def _kill_leftovers() -> None:  # a safety net; fixtures stop their children
    for child in list(_live):
        if child.proc.poll() is None:
            child.proc.kill()


def http_answers(url: str) -> bool:
    """Any HTTP answer counts: the server is up."""
    try:
        requests.get(url, timeout=5)
        return True
    except requests.RequestException:
        return False


class ServeInstance:
    """``taskbridge serve`` on 127.0.0.1:0 with a fresh database and key."""

    def __init__(self, binary: str, workdir: Path, name: str = "serve", env: Optional[Dict[str, str]] = None,
                 api_key: Optional[str] = None) -> None:
        self.api_key = api_key or new_key()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "serve", "--listen", "127.0.0.1:0", "--database", str(workdir / "taskmanager.db"),
                "--config", str(workdir / "no-bridge.conf")]
        self.child = ChildProcess(argv, workdir, child_env(self.api_key, env), name)
        try:
            line = self.child.wait_for_line("listening ", STARTUP_DEADLINE)
            self.url = line.split(" ", 1)[1].strip()
            wait_until(lambda: http_answers(self.url + "/health"), STARTUP_DEADLINE, "%s /health" % name,
                       self.child.stderr_tail)
        except BaseException:
            self.child.stop()
            raise

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def stop(self) -> None:
        self.child.stop()


def drain(worker, count: int, deadline: float = WORK_DEADLINE) -> list:
    """Run a worker's ``run_once`` until ``count`` results were reported; returns the reported tasks."""
    end = time.monotonic() + deadline
    while len(worker.reported) < count:
        if not worker.run_once():
            if time.monotonic() > end:
                raise AssertionError(
                    "worker reported %d of %d tasks within %ss" % (len(worker.reported), count, deadline))
            time.sleep(POLL_INTERVAL)
    return [task for task, _ in worker.reported]
