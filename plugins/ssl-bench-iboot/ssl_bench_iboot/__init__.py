"""iBoot for ssl-bench: a causal video encoder bootstrapped from a frozen image model (method id
``iboot``)."""

from ssl_bench_iboot.method import IBoot, IBootConfig

__all__ = ["IBoot", "IBootConfig"]
