"""Built-in downstream tasks, registered through the ``register_tasks`` hook."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.default_plugins.tasks.organ import OrganSegmentation
from ssl_bench.default_plugins.tasks.phase import PhaseRecognition
from ssl_bench.default_plugins.tasks.segmentation import SemanticSegmentation
from ssl_bench.default_plugins.tasks.tools import ToolPresence

TASKS: list = [PhaseRecognition, SemanticSegmentation, OrganSegmentation, ToolPresence]


@hookimpl
def register_tasks(register: Callable[[Any], None]) -> None:
    for task in TASKS:
        register(task)
