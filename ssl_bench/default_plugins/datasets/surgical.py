"""Surgical video and image dataset readers (one module per dataset beside this one)."""

from __future__ import annotations

from ssl_bench.api import Dataset
from ssl_bench.default_plugins.datasets.cholec80 import Cholec80
from ssl_bench.default_plugins.datasets.cholecseg8k import CholecSeg8k
from ssl_bench.default_plugins.datasets.endovis2017 import EndoVis2017
from ssl_bench.default_plugins.datasets.kvasir_instrument import KvasirInstrument
from ssl_bench.default_plugins.datasets.m2cai16 import M2CAI16Workflow
from ssl_bench.default_plugins.datasets.m2caiseg import M2CAISeg

SURGICAL_DATASETS: list[type[Dataset]] = [
    Cholec80, M2CAI16Workflow, CholecSeg8k, M2CAISeg, EndoVis2017, KvasirInstrument,
]
