"""Where the client finds ``TASKMANAGER_API_URL`` and ``TASKMANAGER_API_KEY``.

Order (first non-empty value wins, per variable):

1. the ``api_url=`` / ``api_key=`` keywords of the client;
2. the process environment;
3. a ``.env`` file, found the way PrismQ's ConfigLoad finds ``PrismQ_WD/.env``:
   the topmost directory named exactly ``PrismQ`` among the current working
   directory and its parents gives ``<its parent>/PrismQ_WD/.env``; when there
   is none, ``.env`` in the current working directory. ``env_file=`` names the
   file explicitly instead.

The ``.env`` file is only read, never created or written, and it does not
change ``os.environ`` (ConfigLoad's ``load_dotenv`` also lets the environment
win, so the outcome is the same). ConfigLoad itself is not needed.
"""

import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

URL_VARIABLE = "TASKMANAGER_API_URL"
KEY_VARIABLE = "TASKMANAGER_API_KEY"

PathLike = Union[str, "os.PathLike[str]"]


def find_env_file(cwd: Optional[PathLike] = None) -> Path:
    """The ``.env`` path PrismQ's convention gives for ``cwd`` (it may not exist)."""
    current = Path(cwd if cwd is not None else os.getcwd()).absolute()
    topmost = None
    for path in [current] + list(current.parents):
        if path.name == "PrismQ":
            topmost = path  # keep going: the topmost one wins
    if topmost is not None:
        return topmost.parent / "PrismQ_WD" / ".env"
    return current / ".env"


def parse_env_file(path: PathLike) -> Dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``export`` prefix, quotes, ``#`` comments.

    A missing or unreadable file gives an empty dict.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    values: Dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            end = 1
            while end < len(value) and not (value[end] == quote and (quote == "'" or value[end - 1] != "\\")):
                end += 1
            value = value[1:end]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            hash_at = value.find(" #")
            if hash_at != -1:
                value = value[:hash_at]
            value = value.strip()
        values[key] = value
    return values


def resolve_settings(
    api_url: Optional[str] = None,
    api_key: Optional[str] = None,
    env_file: Optional[PathLike] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> Dict[str, Optional[str]]:
    """Resolve URL and key: keywords, then the environment, then ``.env``.

    Returns ``{"api_url", "api_key", "env_file"}``; ``env_file`` is the path
    that was read, or None when the file was not needed or does not exist.
    """
    env = os.environ if environ is None else environ
    url = api_url or env.get(URL_VARIABLE) or None
    key = api_key or env.get(KEY_VARIABLE) or None
    used = None
    if not url or not key:
        path = Path(env_file) if env_file is not None else find_env_file()
        if path.is_file():
            values = parse_env_file(path)
            if not url and values.get(URL_VARIABLE):
                url = values[URL_VARIABLE]
                used = str(path)
            if not key and values.get(KEY_VARIABLE):
                key = values[KEY_VARIABLE]
                used = str(path)
    return {"api_url": url, "api_key": key, "env_file": used}
