"""The real PHP server's behaviours that `taskbridge serve` fixes (spec sections 5, 11.5, 16),
against tests/fake_php.py, which answers as the spec records them."""

import logging

import pytest
from prismq_worker import FamilyAWorker, TaskResult
from support import SIMPLE_SCHEMA, drain

from TaskManager import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ResourceNotFoundError,
    TaskManagerClient,
    ValidationError,
)


def test_string_ids_become_ints(php_client):
    registered = php_client.register_task_type("test.a", "1.0.0", SIMPLE_SCHEMA)
    assert registered["id"] == 1 and registered["created"] is True  # the server sent "1"
    assert php_client.register_task_type("test.a", "1.0.1", SIMPLE_SCHEMA)["id"] == 1  # sent 1
    created = php_client.create_task("test.a", {"n": 5})
    assert created["id"] == 1 and isinstance(created["id"], int)  # sent "1"
    claimed = php_client.claim_task("w1", registered["id"])
    assert claimed["id"] == 1
    progress = php_client.update_progress(claimed["id"], "w1", 40)
    assert progress["id"] == 1 and progress["progress"] == 40  # sent "1"
    done = php_client.complete_task(claimed["id"], "w1", True, result={"ok": True})
    assert done["id"] == 1 and done["status"] == "completed"  # sent "1"
    assert php_client.list_tasks()[0]["id"] == 1


def test_get_task_type_unwraps_items(php_client):
    php_client.register_task_type("test.b", "2.0.0", SIMPLE_SCHEMA)
    got = php_client.get_task_type("test.b")  # the server sent {"items": [...], "count": 1}
    assert got["name"] == "test.b" and got["version"] == "2.0.0" and got["id"] == 1
    assert got["is_active"] == 1 and got["active"] is True
    assert got["param_schema"] == SIMPLE_SCHEMA
    with pytest.raises(ResourceNotFoundError, match="Task type not found: test.none"):
        php_client.get_task_type("test.none")  # 200 with an empty list


def test_get_task_unwraps_items(php_client):
    php_client.register_task_type("test.c", "1.0.0", SIMPLE_SCHEMA)
    task_id = php_client.create_task("test.c", {"n": 1, "label": "ü/x"})["id"]
    task = php_client.get_task(task_id)
    assert task["id"] == task_id and task["params"] == {"n": 1, "label": "ü/x"} and task["status"] == "pending"
    with pytest.raises(ResourceNotFoundError):
        php_client.get_task(999999)  # 200 with an empty list


def test_empty_claim_answered_500_no_active_transaction(php_client, fake_php):
    type_id = php_client.register_task_type("test.d", "1.0.0", SIMPLE_SCHEMA)["id"]
    with pytest.raises(ResourceNotFoundError) as info:
        php_client.claim_task("w1", type_id)
    assert info.value.status_code == 500 and info.value.message == "No available tasks"
    with pytest.raises(ResourceNotFoundError):
        php_client.claim_task("w1", 424242, type_pattern="PrismQ.%")  # unknown type: the same 500
    # the same text outside a claim is a server error, not "no task"
    fake_php.forced.append((500, {"success": False, "error": "There is no active transaction", "timestamp": 0},
                            {}, "application/json"))
    with pytest.raises(APIError) as other:
        php_client.get_task(1)
    assert other.value.status_code == 500


def test_deduplicated_is_also_duplicate(php_client):
    php_client.register_task_type("test.e", "1.0.0", SIMPLE_SCHEMA)
    first = php_client.create_task("test.e", {"n": 1})
    assert first["duplicate"] is False and first["deduplicated"] is False
    second = php_client.create_task("test.e", {"n": 1})
    assert second["id"] == first["id"]
    assert second["duplicate"] is True and second["deduplicated"] is True


def test_comma_separated_status_without_server_splitting(php_client, fake_php):
    type_id = php_client.register_task_type("test.f", "1.0.0", SIMPLE_SCHEMA)["id"]
    ids = [php_client.create_task("test.f", {"n": i})["id"] for i in range(1, 6)]
    done = php_client.claim_task("w1", type_id, sort_by="id")
    php_client.complete_task(done["id"], "w1", True, result={"x": 1})
    php_client.claim_task("w1", type_id, sort_by="id")
    failed = php_client.claim_task("w1", type_id, sort_by="id")
    for attempt in range(1, 4):  # fails for good on the 3rd attempt
        status = php_client.complete_task(failed["id"], "w1", False, error="e")["status"]
        assert status == ("failed" if attempt == 3 else "pending (retry)")
        if attempt < 3:
            again = php_client.claim_task("w1", type_id, sort_by="attempts", sort_order="DESC", type_pattern="test.%")
            assert again["id"] == failed["id"]
    # the server compares the whole string: one request with the comma list finds nothing
    assert fake_php._list({"status": "pending,claimed,completed"})["count"] == 0
    fake_php.requests.clear()
    listed = php_client.list_tasks(task_type="test.f", status="pending,claimed,completed")
    statuses = {t["id"]: t["status"] for t in listed}
    assert set(statuses.values()) == {"pending", "claimed", "completed"}
    assert "failed" not in statuses.values()
    assert len(listed) == len(statuses) == 4 and set(statuses) < set(ids)
    sent = [r["query"].get("status") for r in fake_php.requests if r["path"] == "/tasks"]
    assert sorted(sent) == ["claimed", "completed", "pending"]  # one request per status
    assert len(php_client.list_tasks(status="pending,claimed,completed", limit=2)) == 2
    assert [t["status"] for t in php_client.list_tasks(status="completed")] == ["completed"]


def test_priority_not_stored_still_drains_with_priority_strategy(php_client, fake_php, monkeypatch, tmp_path):
    type_id = php_client.register_task_type("test.g", "1.0.0", SIMPLE_SCHEMA)["id"]
    created = [php_client.create_task("test.g", {"n": i}, priority=p)["id"] for i, p in ((1, 9), (2, 1), (3, 5))]
    assert php_client.get_task(created[0])["priority"] == 0  # accepted, ignored
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKMANAGER_API_URL", fake_php.url)
    monkeypatch.setenv("TASKMANAGER_API_KEY", fake_php.api_key)
    worker = FamilyAWorker(
        "w-prio", [type_id], lambda t: TaskResult(True, data={"n": t.parameters["n"]}, items_processed=1),
        strategy="PRIORITY")
    drained = drain(worker, 3)
    assert sorted(t.id for t in drained) == sorted(created)
    assert all(t.priority == 0 for t in drained)


def test_family_a_worker_against_php_answers(php_client, fake_php, monkeypatch, tmp_path, caplog):
    """Empty claims (500) on the first types mean "next type", never a logged error."""
    caplog.set_level(logging.INFO)
    empty_ids = [php_client.register_task_type("test.empty%d" % i, "1.0.0", SIMPLE_SCHEMA)["id"] for i in range(2)]
    type_id = php_client.register_task_type("test.h", "1.0.0", SIMPLE_SCHEMA)["id"]
    created = [php_client.create_task("test.h", {"n": i})["id"] for i in range(1, 5)]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKMANAGER_API_URL", fake_php.url)
    monkeypatch.setenv("TASKMANAGER_API_KEY", fake_php.api_key)
    for strategy in ("FIFO", "LIFO"):
        worker = FamilyAWorker("w-" + strategy, empty_ids + [type_id], lambda t: TaskResult(
            True, data={"n": t.parameters["n"]}, items_processed=t.parameters["n"]), strategy=strategy)
        drain(worker, 2)
    assert "Error claiming" not in caplog.text and "Failed to report" not in caplog.text
    for task_id in created:
        task = php_client.get_task(task_id)
        assert task["status"] == "completed" and task["result"]["items_processed"] == task["params"]["n"]


def test_every_request_carries_the_key(php_client, fake_php):
    php_client.health_check()
    php_client.register_task_type("test.i", "1.0.0", SIMPLE_SCHEMA)
    php_client.get_task_type("test.i")
    php_client.create_task("test.i", {"n": 1})
    php_client.list_tasks(status="pending,claimed")
    with pytest.raises(ResourceNotFoundError):
        php_client.get_task(77)
    assert len(fake_php.requests) >= 7
    assert all(r["api_key"] == fake_php.api_key for r in fake_php.requests)


def test_middleware_shaped_errors(php_client, fake_php):
    with TaskManagerClient(api_url=fake_php.url, api_key="wrong-key-xyz") as c:
        with pytest.raises(AuthenticationError) as info:
            c.create_task("test.j", {"n": 1})  # 401, text/html, {"error","message"}
    assert info.value.message.startswith("Invalid or missing API key")
    assert "wrong-key-xyz" not in str(info.value) + repr(info.value)
    fake_php.forced.append((429, {"error": "Too Many Requests",
                                  "message": "Rate limit exceeded. Please try again in 17 seconds.",
                                  "retry_after": 17, "limit": 100, "window": 60, "timestamp": "2026"},
                            {"Retry-After": "17"}, "text/html; charset=UTF-8"))
    with pytest.raises(RateLimitError) as limited:
        php_client.health_check()
    assert limited.value.retry_after == 17 and "Rate limit exceeded" in str(limited.value)
    fake_php.forced.append((413, {"error": "Request Too Large",
                                  "message": "Request body exceeds maximum allowed size of 1 MB"}, {}, "text/html"))
    with pytest.raises(APIError) as too_large:
        php_client.create_task("test.j", {"n": 1})
    assert too_large.value.status_code == 413 and "maximum allowed size" in str(too_large.value)
    fake_php.forced.append((502, "<html>Bad gateway</html>", {}, "text/html"))
    with pytest.raises(APIError) as proxy:
        php_client.health_check()
    assert proxy.value.status_code == 502 and "Bad gateway" in str(proxy.value)


def test_validation_details_from_php(php_client):
    php_client.register_task_type("test.k", "1.0.0", SIMPLE_SCHEMA)
    with pytest.raises(ValidationError) as info:
        php_client.create_task("test.k", {})
    assert info.value.details == ["Field 'params' must be of type object"]
    with pytest.raises(ValidationError, match="Missing required field: task_type_id"):
        php_client.claim_task("w1", None)
