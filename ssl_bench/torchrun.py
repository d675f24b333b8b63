"""``python -m ssl_bench.torchrun [run options]``: ``ssl-bench run`` with ``--launcher pytorch``
unless another launcher is given, for ``torchrun`` command lines::

    torchrun --nproc_per_node 4 -m ssl_bench.torchrun --methods moco-v2

(See docs/cluster.md.) It lives outside the engine: it is a command-line entry point.
"""

from __future__ import annotations

import sys

from ssl_bench.cli import main as cli_main


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--launcher" not in args:
        args += ["--launcher", "pytorch"]
    cli_main(["run", *args])


if __name__ == "__main__":
    main()
