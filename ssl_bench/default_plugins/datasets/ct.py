"""CT volume dataset readers: BTCV, any Medical Segmentation Decathlon task, AMOS22 (CT).

Each reader lives in its own module; the shared NIfTI loading, MONAI preprocessing and volume
cache are in :mod:`ssl_bench.default_plugins.datasets.volume`.
"""

from __future__ import annotations

from ssl_bench.api import Dataset
from ssl_bench.default_plugins.datasets.amos import Amos
from ssl_bench.default_plugins.datasets.btcv import Btcv
from ssl_bench.default_plugins.datasets.msd import Msd

CT_DATASETS: list[type[Dataset]] = [Btcv, Msd, Amos]

__all__ = ["CT_DATASETS", "Amos", "Btcv", "Msd"]
