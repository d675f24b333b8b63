"""``python -m ssl_bench``: the ``ssl-bench`` command."""

from ssl_bench.cli import main

main()
