"""Downstream heads shared by the built-in tasks."""

from __future__ import annotations

from ssl_bench.heads.fpn import EncoderDecoder, FPNDecoder
from ssl_bench.heads.mstcn import CausalMSTCN, mstcn_loss

__all__ = ["CausalMSTCN", "mstcn_loss", "FPNDecoder", "EncoderDecoder"]
