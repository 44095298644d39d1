"""End to end: legacy producer rows -> `taskbridge run` (forward) -> `taskbridge serve`
-> a family A worker using this client -> the result mirrored back into the legacy row.
"""

import json
import sqlite3
from datetime import datetime, timezone

import pytest
from prismq_worker import FamilyAWorker, TaskResult
from support import (
    STARTUP_DEADLINE,
    WORK_DEADLINE,
    ChildProcess,
    child_env,
    drain,
    free_port,
    http_answers,
    wait_until,
)

from TaskManager import ResourceNotFoundError, TaskManagerClient

LEGACY_TYPE = "youtube_channel_scrape"
ROWS = 5


def _bridge_conf(serve_url, tm_name, metrics_port):
    return """\
[legacy]
database = "worker_queue.db"
table = "task_queue"
create_if_missing = true

[taskmanager]
url = "%s"

[bridge]
id = "taskbridge-pytest"
metrics_listen = "127.0.0.1:%d"
poll_interval_ms = 50
mirror_interval_ms = 200

[types.%s]
name = "%s"
version = "1.0.0"
mode = "forward"
dedupe = "collapse"
param_schema = { type = "object", properties = { channel_url = { type = "string" } }, required = ["channel_url"] }
""" % (serve_url, metrics_port, LEGACY_TYPE, tm_name)


def _query(db_path, sql, args=()):
    conn = sqlite3.connect(str(db_path), timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _bridge_ready(db_path):
    if not db_path.exists():
        return False
    try:
        tables = {r[0] for r in _query(db_path, "SELECT name FROM sqlite_master")}
    except sqlite3.Error:
        return False
    return "task_queue" in tables and any(name.startswith("_taskbridge") for name in tables)


@pytest.fixture
def bridge(serve, taskbridge_bin, tmp_path, unique):
    workdir = tmp_path / "bridge"
    workdir.mkdir()
    tm_name = "PrismQ.YouTube.Channel.Scrape.E2E%s" % unique
    metrics_port = free_port()
    conf = workdir / "bridge.conf"
    conf.write_text(_bridge_conf(serve.url, tm_name, metrics_port))
    child = ChildProcess([taskbridge_bin, "run", "--config", str(conf)], workdir, child_env(serve.api_key), "bridge")
    try:
        db_path = workdir / "worker_queue.db"
        wait_until(lambda: child.proc.poll() is not None or _bridge_ready(db_path), STARTUP_DEADLINE,
                   "the bridge to create task_queue and install its objects", child.stderr_tail)
        wait_until(lambda: child.proc.poll() is not None or http_answers("http://127.0.0.1:%d/health" % metrics_port),
                   STARTUP_DEADLINE, "the bridge's metrics /health", child.stderr_tail)
        assert child.proc.poll() is None, "taskbridge run exited with %s%s" % (child.proc.returncode,
                                                                              child.stderr_tail())
        yield {"db": db_path, "tm_name": tm_name, "child": child}
    finally:
        child.stop()


def test_forwarded_rows_are_drained_by_the_worker_and_mirrored_back(bridge, serve, monkeypatch, tmp_path):
    db_path, tm_name = bridge["db"], bridge["tm_name"]

    # a PrismQ producer, unchanged: raw INSERT INTO task_queue (MIGRATION_GUIDE.md step 5, "Before")
    conn = sqlite3.connect(str(db_path), timeout=30)
    urls = {}
    for i in range(1, ROWS + 1):
        now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat()  # = datetime.utcnow().isoformat()
        url = "https://youtube.com/@e2e-%d" % i
        cur = conn.execute(
            """
            INSERT INTO task_queue
            (task_type, parameters, priority, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?)
            """,
            (LEGACY_TYPE, json.dumps({"channel_url": url}), 5, now, now),
        )
        urls[cur.lastrowid] = url
        conn.commit()
    conn.close()

    # the worker side: the type id from the registration the bridge made on start
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKMANAGER_API_URL", serve.url)
    monkeypatch.setenv("TASKMANAGER_API_KEY", serve.api_key)
    with TaskManagerClient() as client:
        def type_id():
            try:
                return client.get_task_type(tm_name)["id"]
            except ResourceNotFoundError:
                return None
        task_type_id = wait_until(type_id, WORK_DEADLINE, "the bridge to register %s" % tm_name,
                                  bridge["child"].stderr_tail)

    def scrape(task):
        url = task.parameters["channel_url"]
        n = int(url.rsplit("-", 1)[1]) * 10  # a result that says which row it was computed for
        return TaskResult(success=True, data={"channel_url": url, "videos": n}, items_processed=n)

    worker = FamilyAWorker("worker-e2e", [task_type_id], scrape, strategy="FIFO")
    drained = drain(worker, ROWS)
    assert sorted(t.parameters["channel_url"] for t in drained) == sorted(urls.values())
    assert worker.tasks_processed == ROWS and worker.tasks_failed == 0

    def mirrored():
        rows = _query(db_path, "SELECT id, status, result_data, completed_at, claimed_by FROM task_queue "
                               "WHERE task_type = ?",
                      (LEGACY_TYPE,))
        return rows if len(rows) == ROWS and all(r[1] == "completed" for r in rows) else None

    rows = wait_until(mirrored, WORK_DEADLINE, "the legacy rows to be mirrored as completed",
                      lambda: "\nrows: %r%s" % (_query(db_path, "SELECT id, status, claimed_by, result_data "
                                                          "FROM task_queue"), bridge["child"].stderr_tail()))
    for row_id, status, result_data, completed_at, claimed_by in rows:
        assert claimed_by == "taskbridge-pytest"  # taken by the bridge, not by a legacy worker
        result = json.loads(result_data)
        expected = int(urls[row_id].rsplit("-", 1)[1]) * 10
        assert result["items_processed"] == expected
        assert result["data_summary"]["total_items"] == expected
        assert completed_at
