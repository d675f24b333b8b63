"""Min-Max Similarity (MMS) semi-supervised segmentation as an ssl-bench method plugin."""

from __future__ import annotations

from ssl_bench_mms.method import MMSConfig, MMSMethod

__all__ = ["MMSConfig", "MMSMethod"]
