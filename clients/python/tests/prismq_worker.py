"""A worker written the way PrismQ's family A BaseWorker uses the client.

Family A is the YouTube/core ``BaseWorker`` (spec/taskmanager-api.md section
12): ``TaskManagerClient()`` with no arguments, ``ValueError("task_type_ids is
required. ...")`` for an empty list, ``claim_task()`` mapping the strategy to
a sort order (FIFO created_at ASC, LIFO created_at DESC, PRIORITY priority
DESC, unknown -> LIFO with a warning) and trying each task type id in order
(``ResourceNotFoundError`` -> the next type, any other exception -> logged, the
next type), and ``report_result()`` -> ``complete_task(task_id, worker_id,
success, result={"items_processed", "data_summary"} or None, error)`` with
failures only logged as a warning.
"""

import logging
from datetime import datetime, timezone
from typing import Any, Dict, Optional

try:
    from TaskManager import TaskManagerClient

    _taskmanager_available = True
except ImportError:  # pragma: no cover - the point of PrismQ's guard
    _taskmanager_available = False

logger = logging.getLogger("prismq.worker")

SORT_ORDERS = {
    "FIFO": ("created_at", "ASC"),
    "LIFO": ("created_at", "DESC"),
    "PRIORITY": ("priority", "DESC"),
}


class Task:
    def __init__(self, id, task_type, parameters, priority=5, status="pending", retry_count=0, max_retries=3,
                 created_at="", claimed_at=""):
        self.id = id
        self.task_type = task_type
        self.parameters = parameters
        self.priority = priority
        self.status = status
        self.retry_count = retry_count
        self.max_retries = max_retries
        self.created_at = created_at
        self.claimed_at = claimed_at


class TaskResult:
    def __init__(self, success: bool, data: Optional[Dict[str, Any]] = None, error: Optional[str] = None,
                 items_processed: int = 0):
        self.success = success
        self.data = data
        self.error = error
        self.items_processed = items_processed


class FamilyAWorker:
    """``process_task`` is given as a callable: task -> TaskResult."""

    def __init__(self, worker_id: str, task_type_ids: list, process, strategy: str = "LIFO") -> None:
        self.worker_id = worker_id
        self.task_type_ids = task_type_ids
        self.strategy = strategy
        self.process = process
        self.tasks_processed = 0
        self.tasks_failed = 0
        self.reported = []  # (task, result) pairs whose complete_task call returned
        if not _taskmanager_available:
            raise ImportError("TaskManager module is required. Install with: pip install -e Source/TaskManager")
        if not task_type_ids:
            raise ValueError("task_type_ids is required. Register task types and provide their IDs.")
        try:
            self.taskmanager_client = TaskManagerClient()
        except Exception as e:
            raise RuntimeError(
                f"Failed to initialize TaskManager client: {e}. "
                "Check TASKMANAGER_API_URL and TASKMANAGER_API_KEY configuration."
            ) from e

    def claim_task(self) -> Optional[Task]:
        try:
            if self.strategy in SORT_ORDERS:
                sort_by, sort_order = SORT_ORDERS[self.strategy]
            else:
                logger.warning(f"Unknown strategy '{self.strategy}', falling back to LIFO")
                sort_by, sort_order = SORT_ORDERS["LIFO"]

            from TaskManager import ResourceNotFoundError

            for task_type_id in self.task_type_ids:
                try:
                    claimed = self.taskmanager_client.claim_task(
                        worker_id=self.worker_id,
                        task_type_id=task_type_id,
                        sort_by=sort_by,
                        sort_order=sort_order,
                    )
                    return Task(
                        id=claimed["id"],
                        task_type=claimed["type"],
                        parameters=claimed.get("params", {}),
                        priority=claimed.get("priority", 5),
                        status="claimed",
                        retry_count=claimed.get("attempts", 0),
                        max_retries=claimed.get("max_attempts", 3),
                        created_at=claimed.get("created_at", ""),
                        claimed_at=claimed.get("claimed_at", ""),
                    )
                except ResourceNotFoundError:
                    continue  # no task of this type: try the next one
                except Exception as e:
                    logger.error(f"Error claiming task from TaskManager API (type_id {task_type_id}): {e}")
                    continue
            return None
        except Exception as e:
            logger.error(f"Error claiming task from TaskManager API: {e}")
            return None

    def report_result(self, task: Task, result: TaskResult) -> None:
        try:
            if result.success:
                self.tasks_processed += 1
            else:
                self.tasks_failed += 1
            self._update_task_manager(task, result)
        except Exception as e:
            logger.error(f"Error reporting result: {e}")

    def _update_task_manager(self, task: Task, result: TaskResult) -> None:
        try:
            result_data = None
            if result.success and result.data:
                result_data = {
                    "items_processed": result.items_processed,
                    "data_summary": {
                        "total_items": result.items_processed,
                        "processed_at": datetime.now(timezone.utc).isoformat(),
                    },
                }
            self.taskmanager_client.complete_task(
                task_id=task.id,
                worker_id=self.worker_id,
                success=result.success,
                result=result_data,
                error=result.error,
            )
            self.reported.append((task, result))
        except Exception as e:
            logger.warning(
                f"Failed to report task {task.id} to TaskManager API: {e}. "
                "Task completed locally but not synced to central system."
            )

    def run_once(self) -> bool:
        task = self.claim_task()
        if not task:
            return False
        try:
            result = self.process(task)
            self.report_result(task, result)
            return True
        except Exception as e:
            logger.error(f"Unexpected error processing task {task.id}: {e}")
            self.report_result(task, TaskResult(success=False, error=str(e)))
            return False
