"""The software and hardware environment a record was made in.

Every record stores it, so a leaderboard can say which library versions made its numbers and
warn when one table mixes environments (different torch builds change scores). Gathered once
per process.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: distributions whose versions can change a score
LIBRARIES: tuple[str, ...] = ("torch", "torchvision", "timm", "mmengine", "lightly", "monai",
                              "numpy")


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    python: str
    libraries: dict[str, str] = Field(default_factory=dict)
    cuda: str | None = None
    cudnn: str | None = None
    device_name: str = ""
    threads: int = 0
    #: torch's determinism settings when the record was made
    deterministic_algorithms: bool = False
    cudnn_deterministic: bool = False
    cudnn_benchmark: bool = False
    #: the run's ``--precision`` (:mod:`ssl_bench.precision`); None in records made before it
    #: was kept (they ran in fp32)
    precision: str | None = None

    def key(self) -> tuple[Any, ...]:
        """What must match for two records to count as made in one environment (the thread
        count and determinism flags are recorded but do not split a table)."""
        return (self.python, tuple(sorted(self.libraries.items())), self.cuda, self.cudnn,
                self.device_name, self.precision or "fp32")

    def summary(self) -> str:
        """One line: python, the libraries, CUDA and cuDNN, the device and (when recorded)
        the precision."""
        libs = ", ".join(f"{k} {v}" for k, v in sorted(self.libraries.items()))
        gpu = f"CUDA {self.cuda}, cuDNN {self.cudnn}, " if self.cuda else ""
        precision = f"; {self.precision}" if self.precision else ""
        return f"python {self.python}, {libs}; {gpu}{self.device_name or 'cpu'}{precision}"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def memory_bytes() -> int | None:
    """This machine's physical memory (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def _static(device: str) -> dict[str, Any]:
    import torch

    cuda = torch.version.cuda if torch.cuda.is_available() else None
    cudnn = None
    if cuda and torch.backends.cudnn.is_available():
        cudnn = str(torch.backends.cudnn.version())
    if device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
    else:
        name = _cpu_name()
    return {"python": platform.python_version(),
            "libraries": {d: _version(d) for d in LIBRARIES},
            "cuda": cuda, "cudnn": cudnn, "device_name": name}


def current_environment(device: str = "cpu", precision: str | None = None) -> Environment:
    """The environment of this process for ``device`` (``cpu``, ``cuda`` or ``cuda:N``) and
    the run's ``precision``."""
    import torch

    return Environment(
        **_static(device), precision=precision,
        threads=torch.get_num_threads(),
        deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
        cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
    )


__all__ = ["Environment", "current_environment", "LIBRARIES"]
