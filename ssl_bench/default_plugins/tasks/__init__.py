"""Built-in downstream tasks, registered through the ``register_tasks`` hook.

They are registered by import path with their metadata (:mod:`.metas`), so loading this plugin
imports no torch; ``ssl-bench run`` imports a task's module when it needs the class.
"""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.default_plugins.tasks import metas
from ssl_bench.lazy import LazyClass
from ssl_bench.meta import PROFILES

_PACKAGE = "ssl_bench.default_plugins.tasks"

TASKS: tuple[LazyClass, ...] = (
    LazyClass(f"{_PACKAGE}.phase:PhaseRecognition", metas.PHASE_RECOGNITION_META, PROFILES),
    LazyClass(f"{_PACKAGE}.segmentation:SemanticSegmentation",
              metas.SEMANTIC_SEGMENTATION_META, PROFILES),
    LazyClass(f"{_PACKAGE}.organ:OrganSegmentation", metas.ORGAN_SEGMENTATION_META, PROFILES),
    LazyClass(f"{_PACKAGE}.tools:ToolPresence", metas.TOOL_PRESENCE_META, PROFILES),
)


@hookimpl
def register_tasks(register: Callable[[Any], None]) -> None:
    for task in TASKS:
        register(task)
