"""Test-session set-up shared by the core and plugin test suites.

* ``sys._called_from_test`` makes plugin loading take only the core's own entry points, so
  tests never pick up whatever happens to be installed (unless a test means to).
* ``SSL_BENCH_CACHE`` points at a session temp dir: tests never write the user's cache.
* ``SSL_BENCH_JOBS=1``: ``ssl-bench run`` stays in one process (spawning workers would cost
  more than the tiny runs of the tests); the tests of the worker processes pass ``--jobs``.
* ``testing_plugin`` registers ``ssl_bench.testing.TestingPlugin`` (tiny datasets, dummy
  methods, tiny benchmarks) for one test and resets the plugin manager around it.
* Every test starts from the same seeds (python, numpy and torch), whatever ran before it, so
  no test depends on draws it did not make itself (a flaky test blocks landings at random).
"""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

sys._called_from_test = True  # type: ignore[attr-defined]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["SSL_BENCH_CACHE"] = str(tmp_path_factory.mktemp("ssl-bench-cache"))
    os.environ["SSL_BENCH_JOBS"] = "1"


@pytest.fixture(autouse=True)
def _seeded() -> None:
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """One torch thread for tests of tiny convolutions (OpenMP spin-up dominates them, and
    on a loaded machine two threads made them tens of times slower); restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def testing_plugin() -> Iterator[None]:
    from ssl_bench import plugins
    from ssl_bench.testing import TestingPlugin

    plugins.reset()
    plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
    yield
    plugins.reset()
