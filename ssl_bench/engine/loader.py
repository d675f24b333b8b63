"""The pretraining DataLoader handed to mmengine's Runner, and the worker settings of every
DataLoader the harness builds (:func:`loader_options`)."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from ssl_bench.environment import available_cores

#: batches each loader worker prepares ahead (torch's ``prefetch_factor``): with 8 workers 16
#: batches are in flight, enough to hide uneven decode times; more would cost host memory (a
#: paper-profile batch of 256 two-view 224 px frames is about 300 MB in fp32)
PREFETCH_FACTOR = 2


def loader_workers(requested: int) -> int:
    """``requested`` loader worker processes, capped by the CPU cores this process may run on
    (:func:`ssl_bench.environment.available_cores`): a profile's ``num_workers`` (8 under
    ``paper``) on a 2-core machine would only add processes that wait for a core, and torch
    warns about it."""
    return max(0, min(int(requested), available_cores()))


def loader_options(num_workers: int, cuda: bool | None = None) -> dict[str, Any]:
    """Keyword arguments of a ``torch.utils.data.DataLoader``: the capped worker count
    (:func:`loader_workers`); with workers, ``persistent_workers`` (an endless loader would
    otherwise start its workers again every epoch) and :data:`PREFETCH_FACTOR`; on CUDA
    (``cuda``, default: whether a CUDA device is available) ``pin_memory``, so host-to-device
    copies of the batches can overlap compute."""
    workers = loader_workers(num_workers)
    on_cuda = torch.cuda.is_available() if cuda is None else cuda
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": on_cuda}
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=PREFETCH_FACTOR)
    return options


class EndlessLoader(torch.utils.data.DataLoader):
    """A DataLoader whose iterator runs epoch after epoch and never ends.

    mmengine's ``IterBasedTrainLoop`` restarts a finished loader itself, but its
    ``_InfiniteDataloaderIterator`` sleeps 2 s at every epoch boundary ("prevent possible
    deadlock"). On the small pools of the ``smoke`` and ``cpu`` profiles (a few batches per
    epoch) that sleep was most of a pretraining's wall time. The batches are the same, in the
    same order: each epoch is a fresh pass of the parent iterator, and a sampler with
    ``set_epoch`` (``DistributedSampler``) is told the new epoch where mmengine would tell it.
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch = 0
        while True:
            yield from super().__iter__()
            epoch += 1
            for sampler in (self.sampler, getattr(self.batch_sampler, "sampler", None)):
                set_epoch = getattr(sampler, "set_epoch", None)
                if set_epoch is not None:
                    set_epoch(epoch)
                    break
