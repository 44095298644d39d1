"""Fixtures: the taskbridge binary, a real `taskbridge serve`, the fake PHP server.

The binary is $TASKBRIDGE_BIN, else <repo>/.build/debug/taskbridge. Without
it the tests that need it are skipped, unless $CI is set: then they fail.
"""

import os
import sys
import uuid
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # clients/python
TESTS_DIR = Path(__file__).resolve().parent
for p in (str(PACKAGE_DIR), str(TESTS_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

from fake_php import FakePHPTaskManager  # noqa: E402
from support import REPO_ROOT, ServeInstance, new_key  # noqa: E402

from TaskManager import TaskManagerClient  # noqa: E402


def _binary_or_skip() -> str:
    explicit = os.environ.get("TASKBRIDGE_BIN")
    candidate = Path(explicit) if explicit else REPO_ROOT / ".build" / "debug" / "taskbridge"
    if candidate.is_file() and os.access(str(candidate), os.X_OK):
        return str(candidate)
    message = (
        "taskbridge binary not found at %s (%s); build it with `swift build` or set TASKBRIDGE_BIN"
        % (candidate, "from TASKBRIDGE_BIN" if explicit else "the default; TASKBRIDGE_BIN is unset")
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def taskbridge_bin() -> str:
    return _binary_or_skip()


@pytest.fixture(scope="session")
def serve(taskbridge_bin, tmp_path_factory):
    """One `taskbridge serve` for the session; tests use their own type names."""
    instance = ServeInstance(taskbridge_bin, tmp_path_factory.mktemp("serve"))
    yield instance
    instance.stop()


@pytest.fixture
def client(serve):
    with TaskManagerClient(api_url=serve.url, api_key=serve.api_key, timeout=60) as c:
        yield c


@pytest.fixture
def guide_env(serve, monkeypatch, tmp_path):
    """The environment the migration guide asks for (and no stray .env)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKMANAGER_API_URL", serve.url)
    monkeypatch.setenv("TASKMANAGER_API_KEY", serve.api_key)
    return serve


@pytest.fixture
def fake_php():
    server = FakePHPTaskManager(new_key()).start()
    yield server
    server.stop()


@pytest.fixture
def php_client(fake_php):
    with TaskManagerClient(api_url=fake_php.url, api_key=fake_php.api_key, timeout=60) as c:
        yield c


@pytest.fixture
def unique():
    """A fresh suffix for task type names, so tests never share a queue."""
    return uuid.uuid4().hex[:10]

