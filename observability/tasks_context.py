"""Celery tasks' log lines carry the task's name and id (signals, so no task has to remember)."""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun, task_prerun

from portal import log_context


@task_prerun.connect
def bind_task(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """A task starts with only its own fields: a worker thread's previous task leaves nothing behind."""
    log_context.start(task=getattr(task, "name", None), task_id=task_id)


@task_postrun.connect
def clear_task(**kwargs: Any) -> None:
    log_context.start()
