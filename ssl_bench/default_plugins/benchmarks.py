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
        # the paper profile keeps the MONAI BTCV recipe (1.5 x 1.5 x 2.0 mm); the smaller
        # profiles' slices (32 / 64 px over a ~400 mm field of view) are 6-12 mm per pixel
        # anyway, so they resample to coarser voxels instead of resizing 1.5 mm slices down
        profile_dataset_options={"smoke": {"spacing": "6,6,8"}, "cpu": {"spacing": "3,3,4"}},
        description="BTCV 13-organ CT segmentation, 2-D slice protocol, Dice/HD95 per volume",
    ),
    Benchmark(
        id="cholec80-tools",
        dataset="cholec80",
        task="tool-presence",
        protocol="linear",
        default=False,
        description="Cholec80 tool presence (7 tools, 1 fps): frozen encoder, linear head with "
        "BCE on per-frame features (shared with cholec80-phase); splits 40/8/32 by video; "
        "main score video-wise mAP, frame-pooled mAP (SelfSupSurg's Cholec80 figure) alongside",
    ),
]


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    for benchmark in BENCHMARKS:
        register(benchmark)
