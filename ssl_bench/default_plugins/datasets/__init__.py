"""Built-in dataset readers, registered through the ``register_datasets`` hook."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.default_plugins.datasets.ct import CT_DATASETS
from ssl_bench.default_plugins.datasets.surgical import SURGICAL_DATASETS


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    for dataset in [*SURGICAL_DATASETS, *CT_DATASETS]:
        register(dataset)
