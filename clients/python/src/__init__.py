"""The ``src`` layout of PrismQ's ``Source/TaskManager`` package.

PrismQ's HackerNews and Reddit workers add the package folder to ``sys.path``
and import ``from src.client import ResourceNotFoundError, TaskManagerClient``.
With ``clients/python`` on ``sys.path`` that works here too; the implementation
lives in the ``TaskManager`` package next to this folder.
"""

from TaskManager import *  # noqa: F401,F403
from TaskManager import __all__, __version__  # noqa: F401
