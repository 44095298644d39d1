"""PrismQ's migration to the TaskManager API works against `taskbridge serve`.

PrismQ documents the migration of a worker in MIGRATION_GUIDE.md (Nomoos/PrismQ,
T/Idea/Inspiration/From/YouTube/Channel/_meta/docs/): register the task types,
create tasks with the client instead of INSERTing into task_queue, and the
troubleshooting cases. That text is not ours, so it is not copied here. Instead:

- Our equivalents (always run): the same steps written in our own code below,
  configured the way the guide asks (TASKMANAGER_API_URL / TASKMANAGER_API_KEY
  in the environment, or in PrismQ_WD/.env), with the outcomes the guide
  promises asserted.
- The guide's own snippets (run only when PRISMQ_MIGRATION_GUIDE names a copy of
  MIGRATION_GUIDE.md): the ```python blocks under the headings "Register Task
  Types", "Update Task Creation" and the health check under "Troubleshooting"
  are read from that file and executed unchanged in the same environment.
  Blocks with `...` placeholders or that need PrismQ's BaseWorker are skipped.
"""

import os
import re
from pathlib import Path

import pytest
from prismq_worker import FamilyAWorker
from support import free_port

from TaskManager import AuthenticationError, TaskManagerClient, TaskManagerError, ValidationError

GUIDE_VARIABLE = "PRISMQ_MIGRATION_GUIDE"

CHANNEL_TYPE = "PrismQ.YouTube.Channel.Scrape"
VIDEO_TYPE = "PrismQ.YouTube.Video.Scrape"
SAMPLE_CHANNEL_URL = "https://www.youtube.com/@taskbridge-sample"


# -- our equivalents of the guide's steps ----------------------------------------------------


def _one_url_schema(field):
    """JSON schema of a params object with a single required string field."""
    return {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}


# (type name, params schema), in the order the ids are handed to a worker
YOUTUBE_TYPES = (
    (CHANNEL_TYPE, _one_url_schema("channel_url")),
    (VIDEO_TYPE, _one_url_schema("video_url")),
)


def register_youtube_types():
    """Step 3: upsert every type a worker handles; return their ids in order."""
    tm = TaskManagerClient()  # URL and key come from the environment or PrismQ_WD/.env
    ids = []
    for type_name, schema in YOUTUBE_TYPES:
        type_id = tm.register_task_type(name=type_name, version="1.0.0", param_schema=schema)["id"]
        print("%s -> %d" % (type_name, type_id))
        ids.append(type_id)
    return ids


def queue_channel_scrape(channel_url):
    """Step 5: what replaces the raw INSERT INTO task_queue."""
    tm = TaskManagerClient()
    created = tm.create_task(task_type=CHANNEL_TYPE, params={"channel_url": channel_url})
    print("queued #%d" % created["id"])
    return created


def probe_api():
    """Troubleshooting, "Connection error": is the API reachable?"""
    status = TaskManagerClient().health_check()
    print(status)
    return status


@pytest.fixture
def prismq_wd_env(serve, monkeypatch, tmp_path):
    """Step 2 the other way: no variables, PrismQ_WD/.env found from inside the PrismQ tree."""
    monkeypatch.delenv("TASKMANAGER_API_URL", raising=False)
    monkeypatch.delenv("TASKMANAGER_API_KEY", raising=False)
    (tmp_path / "PrismQ_WD").mkdir()
    (tmp_path / "PrismQ_WD" / ".env").write_text(
        "TASKMANAGER_API_URL=%s\nTASKMANAGER_API_KEY=%s\n" % (serve.url, serve.api_key))
    inside = tmp_path / "PrismQ" / "T" / "Idea" / "Inspiration" / "From" / "YouTube" / "Channel"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)
    return serve


def test_register_task_types_loop(guide_env, capsys):
    ids = register_youtube_types()
    assert len(ids) == 2 and all(isinstance(i, int) for i in ids)
    assert capsys.readouterr().out.splitlines() == [
        "%s -> %d" % (CHANNEL_TYPE, ids[0]),
        "%s -> %d" % (VIDEO_TYPE, ids[1]),
    ]
    with TaskManagerClient() as c:
        assert c.get_task_type(CHANNEL_TYPE)["id"] == ids[0]
        assert c.get_task_type(VIDEO_TYPE)["id"] == ids[1]
    # the guide runs this "once or on startup": a second run registers nothing new
    assert register_youtube_types() == ids


def test_register_from_prismq_wd_env(prismq_wd_env, capsys):
    assert len(register_youtube_types()) == 2
    assert CHANNEL_TYPE in capsys.readouterr().out


def test_create_task(guide_env, capsys):
    register_youtube_types()
    capsys.readouterr()
    task = queue_channel_scrape(SAMPLE_CHANNEL_URL)
    assert isinstance(task["id"], int)
    assert capsys.readouterr().out == "queued #%d\n" % task["id"]
    with TaskManagerClient() as c:
        stored = c.get_task(task["id"])
    assert stored["type"] == CHANNEL_TYPE
    assert stored["params"] == {"channel_url": SAMPLE_CHANNEL_URL}
    # the same task again is deduplicated to the first one
    repeat = queue_channel_scrape(SAMPLE_CHANNEL_URL)
    assert repeat["id"] == task["id"] and repeat["duplicate"] is True


def test_health_check(guide_env, capsys):
    assert probe_api()["status"] == "healthy"
    assert "'status': 'healthy'" in capsys.readouterr().out


# -- Troubleshooting: each named error appears as the guide says ---------------------------


def test_troubleshooting_invalid_or_missing_api_key(guide_env, monkeypatch):
    monkeypatch.setenv("TASKMANAGER_API_KEY", "placeholder-not-a-real-key")
    with pytest.raises(AuthenticationError, match="Invalid or missing API key"):
        register_youtube_types()
    monkeypatch.delenv("TASKMANAGER_API_KEY")
    with pytest.raises(AuthenticationError, match="Invalid or missing API key"):
        register_youtube_types()


def test_troubleshooting_task_type_ids_is_required(guide_env):
    # the worker's own check, untouched by the client
    with pytest.raises(ValueError, match="^task_type_ids is required"):
        FamilyAWorker(worker_id="worker-001", task_type_ids=[], process=lambda task: None)
    # and the server's 400 for a claim without a type id reaches the caller as the server wrote it
    with TaskManagerClient() as c:
        with pytest.raises(ValidationError) as info:
            c.claim_task(worker_id="worker-001", task_type_id=None)
    assert info.value.message == "Missing required field: task_type_id"


def test_troubleshooting_connection_error(guide_env, monkeypatch):
    down = "http://127.0.0.1:%d/api" % free_port()
    monkeypatch.setenv("TASKMANAGER_API_URL", down)
    with pytest.raises(TaskManagerError, match="^Connection error") as info:
        probe_api()
    assert down in str(info.value) and guide_env.api_key not in str(info.value)


# -- optional: the guide's own snippets, read from $PRISMQ_MIGRATION_GUIDE -----------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE_OPEN = re.compile(r"^\s*```\s*(\w*)")
_FENCE_CLOSE = re.compile(r"^\s*```\s*$")


class GuideBlock:
    def __init__(self, line, source):
        self.line = line  # 1-based line of the block's first code line
        self.source = source

    def skip_reason(self):
        if "..." in self.source:
            return "has `...` placeholders"
        if re.search(r"\b(BaseWorker|MyWorker)\b", self.source):
            return "needs PrismQ's BaseWorker"
        return None


class MigrationGuide:
    """The ```python blocks of a MIGRATION_GUIDE.md, grouped under their headings."""

    def __init__(self, path):
        self.path = Path(path)
        self.sections = []  # [level, title, [GuideBlock]]
        lines = self.path.read_text(encoding="utf-8").splitlines()
        fence = None  # (language, first line, collected lines) while inside a fence
        for number, text in enumerate(lines, start=1):
            if fence is not None:
                if _FENCE_CLOSE.match(text):
                    language, first, body = fence
                    if language in ("python", "py") and self.sections:
                        self.sections[-1][2].append(GuideBlock(first, "\n".join(body) + "\n"))
                    fence = None
                else:
                    fence[2].append(text)
                continue
            opened = _FENCE_OPEN.match(text)
            if opened:
                fence = (opened.group(1).lower(), number + 1, [])
                continue
            heading = _HEADING.match(text)
            if heading:
                self.sections.append([len(heading.group(1)), heading.group(2), []])

    def blocks(self, heading, containing):
        """Runnable python blocks under the first heading whose title contains ``heading``
        (any case), subsections included, that contain the string ``containing``."""
        for index, (level, title, _) in enumerate(self.sections):
            if heading.lower() in title.lower():
                break
        else:
            pytest.fail("%s has no heading containing %r" % (self.path, heading), pytrace=False)
        found, skipped = [], []
        end = index + 1
        while end < len(self.sections) and self.sections[end][0] > level:
            end += 1  # subsections belong to the section
        for _, _, section_blocks in self.sections[index:end]:
            for block in section_blocks:
                if containing not in block.source:
                    continue
                reason = block.skip_reason()
                (skipped if reason else found).append((block, reason))
        if not found:
            pytest.fail("no runnable ```python block with %r under %r in %s (skipped: %s)"
                        % (containing, title, self.path, [r for _, r in skipped] or "none"), pytrace=False)
        return [block for block, _ in found]

    def run(self, block):
        namespace = {"__name__": "__migration_guide__"}
        exec(compile(block.source, "%s:%d" % (self.path, block.line), "exec"), namespace)
        return namespace

    def run_all(self, heading, containing):
        namespace = {}
        for block in self.blocks(heading, containing):
            namespace = self.run(block)
        return namespace


@pytest.fixture
def guide():
    path = os.environ[GUIDE_VARIABLE]
    if not Path(path).is_file():
        pytest.fail("%s=%s is not a file" % (GUIDE_VARIABLE, path), pytrace=False)
    return MigrationGuide(path)


REGISTER, CREATE, TROUBLESHOOTING = "Register Task Types", "Update Task Creation", "Troubleshooting"


@pytest.mark.skipif(not os.environ.get(GUIDE_VARIABLE),
                    reason="%s is unset: set it to a copy of PrismQ's MIGRATION_GUIDE.md to run the "
                           "guide's own snippets (our equivalents above always run)" % GUIDE_VARIABLE)
class TestGuideSnippetsVerbatim:
    def _register(self, guide, monkeypatch):
        calls = []
        original = TaskManagerClient.register_task_type

        def recording(client, *args, **kwargs):
            result = original(client, *args, **kwargs)
            calls.append(((args[0] if args else kwargs["name"]), result["id"]))
            return result

        with monkeypatch.context() as patched:
            patched.setattr(TaskManagerClient, "register_task_type", recording)
            namespace = guide.run_all(REGISTER, "register_task_type")
        return namespace, calls

    def test_register_task_types(self, guide, guide_env, monkeypatch, capsys):
        ns, calls = self._register(guide, monkeypatch)
        ids = ns["task_type_ids"]
        assert [name for name, _ in calls] == [CHANNEL_TYPE, VIDEO_TYPE]
        assert ids == [i for _, i in calls] and all(isinstance(i, int) for i in ids)
        out = capsys.readouterr().out.splitlines()
        assert len(out) == len(calls)
        for line, (name, type_id) in zip(out, calls):
            assert name in line and str(type_id) in line
        with TaskManagerClient() as c:
            for name, type_id in calls:
                assert c.get_task_type(name)["id"] == type_id
        again, _ = self._register(guide, monkeypatch)
        assert again["task_type_ids"] == ids

    def test_register_from_prismq_wd_env(self, guide, prismq_wd_env, monkeypatch):
        ns, calls = self._register(guide, monkeypatch)
        assert len(ns["task_type_ids"]) == len(calls) == 2

    def test_create_task(self, guide, guide_env, monkeypatch, capsys):
        self._register(guide, monkeypatch)
        sent = []
        original = TaskManagerClient.create_task

        def recording(client, *args, **kwargs):
            sent.append(kwargs)
            return original(client, *args, **kwargs)

        monkeypatch.setattr(TaskManagerClient, "create_task", recording)
        capsys.readouterr()
        ns = guide.run_all(CREATE, "create_task")
        task_id = ns["task"]["id"]
        assert isinstance(task_id, int)
        assert capsys.readouterr().out.splitlines()[-1].endswith(" %d" % task_id)
        with TaskManagerClient() as c:
            stored = c.get_task(task_id)
        assert stored["type"] == sent[-1]["task_type"] == CHANNEL_TYPE
        assert stored["params"] == sent[-1]["params"]
        again = guide.run_all(CREATE, "create_task")
        assert again["task"]["id"] == task_id and again["task"]["duplicate"] is True

    def test_health_check(self, guide, guide_env, capsys):
        ns = guide.run_all(TROUBLESHOOTING, "health_check")
        assert ns["health"]["status"] == "healthy"
        assert "'status': 'healthy'" in capsys.readouterr().out

    def test_invalid_or_missing_api_key(self, guide, guide_env, monkeypatch):
        monkeypatch.setenv("TASKMANAGER_API_KEY", "placeholder-not-a-real-key")
        with pytest.raises(AuthenticationError, match="Invalid or missing API key"):
            guide.run_all(REGISTER, "register_task_type")
        monkeypatch.delenv("TASKMANAGER_API_KEY")
        with pytest.raises(AuthenticationError, match="Invalid or missing API key"):
            guide.run_all(REGISTER, "register_task_type")

    def test_connection_error(self, guide, guide_env, monkeypatch):
        down = "http://127.0.0.1:%d/api" % free_port()
        monkeypatch.setenv("TASKMANAGER_API_URL", down)
        with pytest.raises(TaskManagerError, match="^Connection error") as info:
            guide.run_all(TROUBLESHOOTING, "health_check")
        assert down in str(info.value) and guide_env.api_key not in str(info.value)
