"""Built-in benchmarks over the built-in datasets and tasks."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.api import Benchmark

BENCHMARKS = [
    Benchmark(
        id="cholec80-phase",
        dataset="cholec80",
        task="phase-recognition",
        protocol="linear",
        description="Cholec80 phase recognition: frozen encoder, per-frame features at 1 fps, "
        "causal MS-TCN; splits 40/8/32 by video",
    ),
    Benchmark(
        id="cholecseg8k-seg",
        dataset="cholecseg8k",
        task="semantic-segmentation",
        protocol="linear",
        description="CholecSeg8k 13-class scene segmentation: frozen encoder + FPN decoder; "
        "split by video",
    ),
    Benchmark(
        id="btcv-organ",
        dataset="btcv",
        task="organ-segmentation",
        protocol="linear",
        description="BTCV 13-organ CT segmentation, 2-D slice protocol, Dice/HD95 per volume",
    ),
]


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    for benchmark in BENCHMARKS:
        register(benchmark)
