"""Every method and every exception class against a real `taskbridge serve`."""

import logging

import pytest
from support import SIMPLE_SCHEMA, ServeInstance

from TaskManager import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ResourceNotFoundError,
    TaskManagerClient,
    TaskManagerError,
    ValidationError,
)


def _register(client, name):
    return client.register_task_type(name=name, version="1.0.0", param_schema=SIMPLE_SCHEMA)


def test_health_check(client):
    health = client.health_check()
    assert health["status"] == "healthy"


def test_register_is_an_upsert_with_int_ids(client, unique):
    name = "PrismQ.Test.Register.%s" % unique
    first = client.register_task_type(name, "1.0.0", SIMPLE_SCHEMA, description="ignored by the server")
    assert isinstance(first["id"], int) and first.get("created") is True
    second = client.register_task_type(name=name, version="1.0.1", param_schema=SIMPLE_SCHEMA)
    assert second["id"] == first["id"] and second.get("updated") is True
    # HackerNews' script passes **task_type, description and any extra key included
    third = client.register_task_type(**{"name": name, "version": "1.0.2", "param_schema": SIMPLE_SCHEMA,
                                         "description": "d", "category": "test"})
    assert third["id"] == first["id"]


def test_get_task_type(client, unique):
    name = "PrismQ.Test.Get.%s" % unique
    registered = _register(client, name)
    got = client.get_task_type(name)
    assert got["id"] == registered["id"] and got["name"] == name and got["version"] == "1.0.0"
    assert got["param_schema"] == SIMPLE_SCHEMA
    assert got["active"] is True
    with pytest.raises(ResourceNotFoundError):
        client.get_task_type("PrismQ.Test.Missing.%s" % unique)


def test_task_lifecycle(client, unique):
    name = "PrismQ.Test.Lifecycle.%s" % unique
    type_id = _register(client, name)["id"]
    created = client.create_task(name, {"n": 1, "label": "one"}, priority=7)
    assert isinstance(created["id"], int) and created["status"] == "pending"
    assert created["duplicate"] is False
    again = client.create_task(task_type=name, params={"n": 1, "label": "one"})
    assert again["id"] == created["id"] and again["duplicate"] is True and again["deduplicated"] is True

    claimed = client.claim_task("w-life", type_id)
    assert claimed["id"] == created["id"] and claimed["type"] == name
    assert claimed["params"] == {"n": 1, "label": "one"}
    assert claimed["attempts"] == 1
    with pytest.raises(ResourceNotFoundError):
        client.claim_task(worker_id="w-life", task_type_id=type_id)

    progress = client.update_progress(claimed["id"], "w-life", 50, message="half")
    assert progress["id"] == claimed["id"] and progress["progress"] == 50

    done = client.complete_task(claimed["id"], "w-life", True, result={"out": "ok"})
    assert done["id"] == claimed["id"] and done["status"] == "completed"
    task = client.get_task(claimed["id"])
    assert task["status"] == "completed" and task["result"] == {"out": "ok"} and task["params"]["n"] == 1
    assert task["priority"] == 7  # serve stores priority; the PHP server does not (see test_php_behaviours)
    with pytest.raises(ResourceNotFoundError):
        client.get_task(987654321)


def test_failure_is_retried_then_final(client, unique):
    name = "PrismQ.Test.Fail.%s" % unique
    type_id = _register(client, name)["id"]
    client.create_task(name, {"n": 2})
    statuses = []
    for _ in range(3):
        claimed = client.claim_task("w-fail", type_id)
        statuses.append(client.complete_task(claimed["id"], "w-fail", success=False, error="boom")["status"])
    assert statuses == ["pending (retry)", "pending (retry)", "failed"]


def test_list_tasks_with_a_comma_separated_status(client, unique):
    name = "PrismQ.Test.List.%s" % unique
    type_id = _register(client, name)["id"]
    ids = [client.create_task(name, {"n": i})["id"] for i in range(4)]
    first = client.claim_task("w-list", type_id, sort_by="id", sort_order="ASC")
    client.complete_task(first["id"], "w-list", True, result={"k": 1})
    client.claim_task("w-list", type_id, sort_by="id", sort_order="ASC")

    every = client.list_tasks(task_type=name, status="pending,claimed,completed")
    assert sorted(t["id"] for t in every) == sorted(ids)
    assert all(isinstance(t["id"], int) for t in every)
    assert {t["status"] for t in every} == {"pending", "claimed", "completed"}
    assert [t["id"] for t in client.list_tasks(task_type=name, status="completed")] == [first["id"]]
    assert len(client.list_tasks(task_type=name, status="pending, claimed", limit=2)) == 2
    assert len(client.list_tasks(task_type=name)) == 4


# -- every exception class from a real answer --------------------------------------------


def test_wrong_key_is_an_authentication_error(serve, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "tbpy-wrong-key-for-this-test"
    with TaskManagerClient(api_url=serve.url, api_key=wrong) as c:
        with pytest.raises(AuthenticationError) as info:
            c.register_task_type("PrismQ.Test.Auth", "1.0.0", SIMPLE_SCHEMA)
        assert c.health_check()["status"] == "healthy"  # /health needs no key
    e = info.value
    assert e.status_code == 401
    assert "Invalid or missing API key" in str(e)
    for text in (str(e), repr(e), caplog.text):
        assert wrong not in text and serve.api_key not in text


def test_validation_errors_carry_the_servers_text_and_details(client, unique):
    name = "PrismQ.Test.Validation.%s" % unique
    with pytest.raises(ValidationError) as schema_error:
        client.register_task_type(name, "1.0.0", {"properties": {"n": {"type": "integer"}}})
    assert schema_error.value.status_code == 400
    assert schema_error.value.message == 'JSON schema must have a "type" property'

    _register(client, name)
    with pytest.raises(ValidationError) as empty_params:
        client.create_task(name, {})
    assert empty_params.value.message == "Validation failed"
    assert empty_params.value.details == ["Field 'params' must be of type object"]
    assert "Field 'params' must be of type object" in str(empty_params.value)

    with pytest.raises(ValidationError) as bad_params:
        client.create_task(name, {"label": "no n"})
    assert bad_params.value.message.startswith("Parameter validation failed")

    # the server's own 400 for a claim without a type id reaches the caller unchanged
    with pytest.raises(ValidationError) as no_type:
        client.claim_task("w-val", None)
    assert no_type.value.message == "Missing required field: task_type_id"
    with pytest.raises(ValidationError, match="Invalid sort_by"):
        client.claim_task("w-val", 1, sort_by="nope")


def test_other_statuses_are_api_errors(client, unique):
    name = "PrismQ.Test.Forbidden.%s" % unique
    type_id = _register(client, name)["id"]
    client.create_task(name, {"n": 3})
    claimed = client.claim_task("w-owner", type_id)
    with pytest.raises(APIError) as info:
        client.complete_task(claimed["id"], "w-intruder", True)
    assert info.value.status_code == 403
    assert info.value.message == "Task is claimed by another worker"
    with pytest.raises(ResourceNotFoundError) as unknown_type:
        client.create_task("PrismQ.Test.NoSuchType.%s" % unique, {"n": 1})
    assert unknown_type.value.status_code == 404


def test_rate_limit_is_a_rate_limit_error(taskbridge_bin, tmp_path):
    limited = ServeInstance(
        taskbridge_bin, tmp_path / "limited", name="serve-ratelimited",
        env={"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_MAX_REQUESTS": "2", "RATE_LIMIT_TIME_WINDOW": "3600"},
    )
    try:
        with TaskManagerClient(api_url=limited.url, api_key=limited.api_key) as c:
            errors = []
            for _ in range(6):  # the window counts per client and path; 2 are allowed
                try:
                    c.list_tasks(status="pending")
                except RateLimitError as e:
                    errors.append(e)
                    break
        assert errors, "no 429 after 6 requests with a limit of 2"
        e = errors[0]
        assert e.status_code == 429 and isinstance(e, TaskManagerError)
        assert isinstance(e.retry_after, (int, float)) and e.retry_after > 0
        assert "Rate limit exceeded" in str(e)
    finally:
        limited.stop()


def test_server_stopped_is_a_connection_error(taskbridge_bin, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    instance = ServeInstance(taskbridge_bin, tmp_path / "stopping", name="serve-stopping")
    try:
        c = TaskManagerClient(api_url=instance.url, api_key=instance.api_key, timeout=30)
        assert c.health_check()["status"] == "healthy"
    finally:
        instance.stop()
    with c:
        with pytest.raises(TaskManagerError) as info:
            c.health_check()
        with pytest.raises(TaskManagerError) as info2:
            c.create_task("PrismQ.Test.Down", {"n": 1})
    for e in (info.value, info2.value):
        assert not isinstance(e, APIError) and e.status_code is None
        assert str(e).startswith("Connection error")
        assert instance.url in str(e)
        for text in (str(e), repr(e), repr(e.args), repr(c), caplog.text):
            assert instance.api_key not in text


def test_key_never_logged(client, serve, caplog, unique):
    caplog.set_level(logging.DEBUG)
    name = "PrismQ.Test.Logs.%s" % unique
    type_id = _register(client, name)["id"]
    client.create_task(name, {"n": 1})
    client.complete_task(client.claim_task("w-log", type_id)["id"], "w-log", True)
    with pytest.raises(ResourceNotFoundError):
        client.claim_task("w-log", type_id)
    assert "POST /tasks/claim" in caplog.text  # the client does log its requests
    assert serve.api_key not in caplog.text
