"""The package itself: import layouts, configuration lookup, key hygiene, network failures.

No taskbridge binary is needed here.
"""

import logging
import os
import socket
import subprocess
import sys

import pytest
from support import free_port

import TaskManager
from TaskManager import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ResourceNotFoundError,
    TaskManagerClient,
    TaskManagerError,
    ValidationError,
)
from TaskManager.config import find_env_file, parse_env_file, resolve_settings

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "tbpy-secret-KEY-0123456789"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TASKMANAGER_API_URL", raising=False)
    monkeypatch.delenv("TASKMANAGER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- import layouts --------------------------------------------------------------


def test_import_forms_of_the_prismq_workers(tmp_path):
    """`from TaskManager import ...` and, with the package folder on sys.path,
    `from src.client import ResourceNotFoundError, TaskManagerClient`."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from src.client import ResourceNotFoundError, TaskManagerClient\n"
        "from TaskManager import TaskManagerClient as T, ResourceNotFoundError as R\n"
        "from src.exceptions import TaskManagerError\n"
        "import src\n"
        "assert T is TaskManagerClient and R is ResourceNotFoundError and src.TaskManagerClient is T\n"
        "assert issubclass(R, TaskManagerError)\n"
        "print('ok')\n" % PACKAGE_DIR
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_exception_hierarchy():
    for cls in (AuthenticationError, ResourceNotFoundError, ValidationError, RateLimitError, APIError):
        assert issubclass(cls, TaskManagerError)
    assert issubclass(TaskManagerError, Exception)
    assert set(TaskManager.__all__) >= {
        "TaskManagerClient", "TaskManagerError", "AuthenticationError", "ResourceNotFoundError",
        "ValidationError", "RateLimitError", "APIError",
    }
    e = RateLimitError("Rate limit exceeded", retry_after=7)
    assert (e.status_code, e.retry_after) == (429, 7)
    v = ValidationError("Validation failed", status_code=400, details=["Field 'params' must be of type object"])
    assert "Field 'params' must be of type object" in str(v) and v.details


# -- configuration ---------------------------------------------------------------------


def test_keywords_win_and_url_is_normalised(clean_env, monkeypatch):
    monkeypatch.setenv("TASKMANAGER_API_URL", "http://env.invalid/api")
    monkeypatch.setenv("TASKMANAGER_API_KEY", "env-key")
    c = TaskManagerClient(api_url="http://kw.invalid:8000/api/", api_key=SECRET, timeout=5)
    assert c.api_url == "http://kw.invalid:8000/api"
    assert c.session.headers["X-API-Key"] == SECRET
    assert c.timeout == 5
    c.close()
    # a URL without a path gets the API's base path, as the PrismQ examples assume
    with TaskManagerClient(api_url="http://taskmanager:8000", api_key=SECRET) as c2:
        assert c2.api_url == "http://taskmanager:8000/api"


def test_environment_first(clean_env, monkeypatch):
    (clean_env / ".env").write_text("TASKMANAGER_API_URL=http://dotenv.invalid/api\nTASKMANAGER_API_KEY=dotenv\n")
    monkeypatch.setenv("TASKMANAGER_API_URL", "http://env.invalid/api")
    monkeypatch.setenv("TASKMANAGER_API_KEY", SECRET)
    with TaskManagerClient() as c:
        assert c.api_url == "http://env.invalid/api"
        assert c.session.headers["X-API-Key"] == SECRET
    # a variable missing from the environment still comes from .env
    monkeypatch.delenv("TASKMANAGER_API_KEY")
    assert resolve_settings()["api_key"] == "dotenv"


def test_prismq_wd_env_file_is_found_from_inside_the_prismq_tree(clean_env, monkeypatch):
    root = clean_env
    nested = root / "PrismQ" / "T" / "Idea" / "PrismQ" / "From" / "YouTube"
    nested.mkdir(parents=True)
    wd = root / "PrismQ_WD"
    wd.mkdir()
    (wd / ".env").write_text(
        "# PrismQ working directory\n"
        "WORKING_DIRECTORY=%s\n"
        "export TASKMANAGER_API_URL='https://api.example.invalid/api'\n"
        'TASKMANAGER_API_KEY="%s"  # quoted\n' % (wd, SECRET)
    )
    # a decoy next to the inner PrismQ folder: the topmost PrismQ wins, as in ConfigLoad
    (root / "PrismQ" / "T" / "Idea" / "PrismQ_WD").mkdir()
    (root / "PrismQ" / "T" / "Idea" / "PrismQ_WD" / ".env").write_text("TASKMANAGER_API_KEY=decoy\n")
    monkeypatch.chdir(nested)
    assert find_env_file() == wd / ".env"
    with TaskManagerClient() as c:
        assert c.api_url == "https://api.example.invalid/api"
        assert c.session.headers["X-API-Key"] == SECRET
        assert c.env_file == str(wd / ".env")


def test_without_a_prismq_folder_the_working_directory_env_is_used(clean_env):
    (clean_env / ".env").write_text("TASKMANAGER_API_URL=http://cwd.invalid/api\nTASKMANAGER_API_KEY=%s\n" % SECRET)
    assert find_env_file() == clean_env / ".env"
    with TaskManagerClient() as c:
        assert c.api_url == "http://cwd.invalid/api"


def test_explicit_env_file(clean_env):
    path = clean_env / "elsewhere.env"
    path.write_text("TASKMANAGER_API_URL=http://file.invalid/api\nTASKMANAGER_API_KEY=%s\n" % SECRET)
    with TaskManagerClient(env_file=str(path)) as c:
        assert c.api_url == "http://file.invalid/api"


def test_env_file_parsing(tmp_path):
    p = tmp_path / ".env"
    p.write_text("\ufeffA=1\n# comment\n\nexport B = two \nC='x # y'\nD=\"q\\\"z\"\nE=v # note\nbad line\n")
    assert parse_env_file(p) == {"A": "1", "B": "two", "C": "x # y", "D": 'q"z', "E": "v"}
    assert parse_env_file(tmp_path / "missing.env") == {}


def test_missing_configuration_is_reported(clean_env):
    with pytest.raises(TaskManagerError, match="TASKMANAGER_API_URL is not set"):
        TaskManagerClient()
    with pytest.raises(AuthenticationError, match="Invalid or missing API key") as info:
        TaskManagerClient(api_url="http://x.invalid/api")
    assert "TASKMANAGER_API_KEY" in str(info.value)


def test_context_manager_closes_the_session(clean_env, monkeypatch):
    closed = []
    with TaskManagerClient(api_url="http://x.invalid/api", api_key=SECRET) as c:
        monkeypatch.setattr(c.session, "close", lambda: closed.append(True))
        assert c.__enter__() is c
    assert closed


# -- the key never leaks -------------------------------------------------------------


def _assert_no_key(*texts):
    for text in texts:
        assert SECRET not in text


def test_repr_hides_the_key(clean_env):
    with TaskManagerClient(api_url="http://x.invalid/api", api_key=SECRET) as c:
        _assert_no_key(repr(c), str(c), repr(vars(c)["_api_key"]), repr({k: v for k, v in vars(c).items()
                                                                          if k != "session"}))


def test_connection_refused_is_a_connection_error(clean_env, caplog):
    caplog.set_level(logging.DEBUG)
    url = "http://127.0.0.1:%d/api" % free_port()
    with TaskManagerClient(api_url=url, api_key=SECRET, timeout=30) as c:
        with pytest.raises(TaskManagerError) as info:
            c.health_check()
    e = info.value
    assert not isinstance(e, APIError) and e.status_code is None
    assert str(e).startswith("Connection error")
    assert url + "/health" in str(e)
    assert "health_check()" in str(e)
    _assert_no_key(str(e), repr(e), repr(e.args), caplog.text)


def test_timeout_is_a_connection_error(clean_env, caplog):
    caplog.set_level(logging.DEBUG)
    # a listening socket that never answers: connect succeeds, the read times out
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = "http://127.0.0.1:%d/api" % silent.getsockname()[1]
        with TaskManagerClient(api_url=url, api_key=SECRET, timeout=0.5) as c:
            with pytest.raises(TaskManagerError) as info:
                c.claim_task("w1", 1)
    e = info.value
    assert str(e).startswith("Connection error") and url + "/tasks/claim" in str(e)
    assert e.status_code is None
    _assert_no_key(str(e), repr(e), caplog.text)
