"""``from src.exceptions import ...`` (see ``src/__init__.py``)."""

from TaskManager.exceptions import *  # noqa: F401,F403
from TaskManager.exceptions import __all__  # noqa: F401
