"""Built-in dataset readers, registered through the ``register_datasets`` hook.

Surgical video and image readers (Cholec80, M2CAI16 workflow, CholecSeg8k, m2caiSeg, EndoVis
2017, Kvasir-Instrument) and CT volume readers (BTCV, any Medical Segmentation Decathlon task,
AMOS22), one module each; the shared NIfTI loading, MONAI preprocessing and volume cache are in
:mod:`.volume`. They are registered by import path with their metadata (:mod:`.metas`), so
loading this plugin imports no torch or MONAI; a command imports a reader when it needs it.
"""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.default_plugins.datasets import metas
from ssl_bench.lazy import LazyClass

_PACKAGE = "ssl_bench.default_plugins.datasets"

DATASETS: tuple[LazyClass, ...] = (
    LazyClass(f"{_PACKAGE}.cholec80:Cholec80", metas.CHOLEC80_META),
    LazyClass(f"{_PACKAGE}.m2cai16:M2CAI16Workflow", metas.M2CAI16_WORKFLOW_META),
    LazyClass(f"{_PACKAGE}.cholecseg8k:CholecSeg8k", metas.CHOLECSEG8K_META),
    LazyClass(f"{_PACKAGE}.m2caiseg:M2CAISeg", metas.M2CAISEG_META),
    LazyClass(f"{_PACKAGE}.endovis2017:EndoVis2017", metas.ENDOVIS2017_META),
    LazyClass(f"{_PACKAGE}.kvasir_instrument:KvasirInstrument", metas.KVASIR_INSTRUMENT_META),
    LazyClass(f"{_PACKAGE}.btcv:Btcv", metas.BTCV_META),
    LazyClass(f"{_PACKAGE}.msd:Msd", metas.MSD_META),
    LazyClass(f"{_PACKAGE}.amos:Amos", metas.AMOS_META),
)


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    for dataset in DATASETS:
        register(dataset)
