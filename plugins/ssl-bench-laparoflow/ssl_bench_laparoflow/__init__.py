"""Laparoflow-SSL (Moens et al., MIDL 2024) as an ssl-bench method plugin."""

from __future__ import annotations

from ssl_bench_laparoflow.method import LaparoflowConfig, LaparoflowModel, LaparoflowSSL

__all__ = ["LaparoflowConfig", "LaparoflowModel", "LaparoflowSSL"]
