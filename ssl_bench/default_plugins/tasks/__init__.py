"""Built-in downstream tasks, registered through the ``register_tasks`` hook."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl

TASKS: list = []


@hookimpl
def register_tasks(register: Callable[[Any], None]) -> None:
    for task in TASKS:
        register(task)
