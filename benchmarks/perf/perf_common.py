"""Helpers shared by the performance scripts of ``benchmarks/perf/``: machine description,
JSON output, the synthetic pretraining pool, methods at a profile, the matmul peak, and the
marker-delimited README sections that ``run_all.py`` refreshes.

The matmul peak is the best FLOP/s of a large square ``torch.mm`` (2 n^3 FLOPs per product,
the textbook count) timed in the calling process, so it shares the machine's load with the
figures it normalises.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from ssl_bench import atomic

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
REPO = HERE.parents[1]
_SCRATCH: Any = None


def scratch(prefix: str) -> Path:
    """A fresh folder under one per-process temporary directory, removed at exit."""
    import tempfile

    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="ssl-bench-perf-")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH.name))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on (the 1-min load average says how shared it was)."""
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(), "cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
        "loadavg_1min": round(load[0], 2), "loadavg_5min": round(load[1], 2),
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, result)
    return path


def read_result(name: str) -> dict[str, Any] | None:
    import json

    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A markdown table; ``columns`` are (key, header, format spec)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            cells.append("n/a" if value is None else format(value, spec))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    return (f"machine: `nproc` {m['nproc']}, {m['cpu']}, torch {m['torch']} "
            f"({m['torch_threads']} threads); 1-min load average {m['loadavg_1min']} during the "
            f"run; {m['date']}")


# ---- data and methods ---------------------------------------------------------------------

def sweep_context(benchmarks: list[str], size: str, results: Path, methods: list[str] | None = None,
                  profile: str = "cpu", device: str = "cpu") -> Any:
    """A sweep context over the embedded synthetic suite (written once if missing)."""
    from ssl_bench.engine.context import SweepContext
    from ssl_bench.engine.plan import RunOptions, resolve_data
    from ssl_bench.plugins import get_registries

    regs = get_registries()
    options = RunOptions(methods=methods or [], benchmarks=benchmarks, label_fracs=None,
                         seeds=[0], profile=profile, data_root=None, synthetic_size=size,
                         results=results, device=device, quiet=True)
    sources = resolve_data(options, [regs.benchmarks.get(b) for b in benchmarks], regs)
    return SweepContext(options, regs, sources, log=lambda _m: None)


def surgical_pool(size: str, image_size: int, fps: float = 1.0) -> Any:
    """The surgical pretraining pool of the synthetic suite (Cholec80 + CholecSeg8k train units
    outside val/test recordings), as ``ssl-bench run`` builds it."""
    ctx = sweep_context(["cholec80-phase", "cholecseg8k-seg"], size, scratch("pool-"))
    return ctx.pool("surgical", image_size, fps)


def pretraining_methods(domain: str = "surgical") -> list[str]:
    from ssl_bench.plugins import get_registries

    regs = get_registries()
    out = []
    for method_id in regs.methods.resolve("all"):
        meta = regs.methods.get(method_id).meta
        if meta.kind == "pretrain" and meta.pretrain_input != "none" and domain in meta.domains:
            out.append(method_id)
    return out


def make_method(method_id: str, profile: str = "cpu", device: str = "cpu",
                **overrides: Any) -> Any:
    from ssl_bench.api import MethodContext
    from ssl_bench.plugins import get_registries

    cls = get_registries().methods.get(method_id)
    ctx = MethodContext(profile=profile, device=torch.device(device), seed=0,
                        cache_dir=scratch(f"{method_id}-"),
                        log=lambda _m: None)
    return cls(cls.make_config(profile, overrides), ctx)


# ---- batches -------------------------------------------------------------------------------

def map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``fn`` applied to every tensor of a collated batch (a tensor, a list / tuple of
    them, or a dict of fields); anything else is returned as it is."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_tensors(b, fn) for b in batch)
    if isinstance(batch, dict):
        return {k: map_tensors(v, fn) for k, v in batch.items()}
    return batch


# ---- timing -------------------------------------------------------------------------------

def matmul_peak(n: int = 2048, repeats: int = 8, device: str = "cpu",
                dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of an (n x n) @ (n x n) ``torch.mm`` (2 n^3 FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


class StepClock:
    """Records the start time of every ``training_step`` call of a method instance; the gap
    between consecutive starts is one full iteration (data loading, step, optimiser, hooks),
    measured the same way for the harness and for the plain loop."""

    def __init__(self, method: Any) -> None:
        self.starts: list[float] = []
        inner: Callable[..., Any] = method.training_step

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.starts.append(time.perf_counter())
            return inner(*args, **kwargs)

        method.training_step = timed

    def intervals(self, skip: int) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])][skip:]


# ---- README sections ----------------------------------------------------------------------

def replace_section(name: str, body: str, title: str, readme: Path = README) -> None:
    """Write ``body`` between ``<!-- perf:NAME -->`` markers (appended under ``## title`` the
    first time); sections of other scripts are left as they are."""
    begin, end = f"<!-- perf:{name} -->", f"<!-- /perf:{name} -->"
    text = readme.read_text() if readme.exists() else "# Performance measurements\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n{block}\n"
    atomic.write_text(readme, text)


def python() -> str:
    return sys.executable
