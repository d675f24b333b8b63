"""The pretraining DataLoader handed to mmengine's Runner."""

from __future__ import annotations

from typing import Any, Iterator

import torch


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
