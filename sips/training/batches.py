"""Step-indexed training batches: made in the loop, or ahead of it by worker processes.

Both training loops (:mod:`sips.train` for priors, :mod:`sips.fit` for predictors) draw the batch
of step ``n`` from a function of ``n`` alone (its random draws are seeded with the step), so a
resumed run sees exactly the batches an uninterrupted one would. That also makes batches free to
prepare ahead: with ``workers > 0`` a ``torch.utils.data.DataLoader`` runs the function for the
next steps in worker processes (forked, so the audio held in memory is shared, not copied),
while the accelerator trains on the current one. The batches are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch


class _Steps(torch.utils.data.Dataset):
    def __init__(self, make: Callable[[int], Any], start: int, stop: int) -> None:
        self.make, self.start, self.stop = make, start, stop

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __getitem__(self, index: int) -> Any:
        return self.make(self.start + index)


def step_batches(make: Callable[[int], Any], start: int, stop: int, workers: int = 0) -> Iterator[Any]:
    """Yield ``make(step)`` for ``step`` in ``range(start, stop)``, in order.

    Args:
        make: the batch of a step (tensors or tuples of tensors, on the CPU).
        start, stop: the steps.
        workers: processes preparing batches ahead (0: each batch is made when it is needed).
    """
    if workers <= 0:
        for step in range(start, stop):
            yield make(step)
        return
    loader = torch.utils.data.DataLoader(
        _Steps(make, start, stop),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        prefetch_factor=4,
        pin_memory=torch.cuda.is_available(),
        multiprocessing_context="fork",
    )
    yield from loader


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (a tensor, or a tuple/list of them) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch
