"""DistillSelf for ssl-bench: MoCo v2 distilled from a frozen ImageNet teacher (method id
``distill-self``)."""

from ssl_bench_distill.method import DistillSelf, DistillSelfConfig

__all__ = ["DistillSelf", "DistillSelfConfig"]
