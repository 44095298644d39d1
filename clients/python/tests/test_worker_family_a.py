"""PrismQ's family A worker loop (claim_task / report_result) drains queues through the client."""

import logging

import pytest
from prismq_worker import FamilyAWorker, TaskResult
from support import SIMPLE_SCHEMA, drain

from TaskManager import TaskManagerClient


def process(task):
    return TaskResult(success=True, data={"n": task.parameters["n"]}, items_processed=task.parameters["n"])


@pytest.fixture
def worker_env(serve, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKMANAGER_API_URL", serve.url)
    monkeypatch.setenv("TASKMANAGER_API_KEY", serve.api_key)


@pytest.mark.parametrize("strategy", ["FIFO", "LIFO", "PRIORITY"])
def test_family_a_worker_drains_with_each_strategy(client, worker_env, unique, strategy, caplog):
    caplog.set_level(logging.INFO)
    empty_name = "PrismQ.Test.Empty.%s.%s" % (strategy, unique)
    name = "PrismQ.Test.Worker.%s.%s" % (strategy, unique)
    empty_id = client.register_task_type(empty_name, "1.0.0", SIMPLE_SCHEMA)["id"]
    type_id = client.register_task_type(name, "1.0.0", SIMPLE_SCHEMA)["id"]
    priorities = [3, 9, 1, 7, 5]
    created = [client.create_task(name, {"n": i + 1}, priority=p)["id"] for i, p in enumerate(priorities)]

    # the empty type comes first: ResourceNotFoundError there means "try the next type"
    worker = FamilyAWorker("worker-%s" % strategy.lower(), [empty_id, type_id], process, strategy=strategy)
    order = [task.id for task in drain(worker, len(created))]
    assert worker.run_once() is False  # drained
    assert sorted(order) == sorted(created)
    assert all(isinstance(i, int) for i in order)
    expected = {
        "FIFO": created,
        "LIFO": list(reversed(created)),
        "PRIORITY": [created[i] for i in sorted(range(len(created)), key=lambda i: -priorities[i])],
    }[strategy]
    assert order == expected
    assert worker.tasks_processed == len(created) and worker.tasks_failed == 0
    assert "Error claiming" not in caplog.text and "Failed to report" not in caplog.text

    for task_id in created:
        task = client.get_task(task_id)
        assert task["status"] == "completed"
        assert task["result"]["items_processed"] == task["params"]["n"]
        assert task["result"]["data_summary"]["total_items"] == task["params"]["n"]


def test_failed_task_is_reported_and_retried(client, worker_env, unique):
    name = "PrismQ.Test.WorkerFail.%s" % unique
    type_id = client.register_task_type(name, "1.0.0", SIMPLE_SCHEMA)["id"]
    task_id = client.create_task(name, {"n": 1})["id"]

    def boom(task):
        raise RuntimeError("scraper exploded")

    worker = FamilyAWorker("worker-boom", [type_id], boom, strategy="FIFO")
    assert worker.run_once() is False  # the unexpected-error path reports a failure
    assert worker.tasks_failed == 1
    task = client.get_task(task_id)
    assert task["status"] == "pending" and task["error_message"] == "scraper exploded"


def test_src_layout_worker_import(serve, tmp_path):
    """The HackerNews/Reddit import form against the real server."""
    import sys
    from pathlib import Path

    assert str(Path(__file__).resolve().parents[1]) in sys.path  # the package folder (conftest adds it)
    from src.client import ResourceNotFoundError, TaskManagerClient as SrcClient

    assert SrcClient is TaskManagerClient
    with SrcClient(api_url=serve.url, api_key=serve.api_key) as c:
        with pytest.raises(ResourceNotFoundError):
            c.claim_task("w-src", 987654)
