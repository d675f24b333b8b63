"""SimSiam as an ssl-bench method plugin."""

from ssl_bench_simsiam.method import SimSiam

__all__ = ["SimSiam"]
