"""Process topology of an evaluation run: shard scenes by rank, gather rows on rank 0.

The library only needs rank, world size, a gather of Python objects and a barrier; :func:`from_accelerate`
builds them from an ``accelerate.Accelerator`` (one process per GPU via ``accelerate launch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    gather: Callable[[list], list] = lambda items: list(items)
    """Concatenates every rank's list (in rank order) on every rank."""
    barrier: Callable[[], None] = lambda: None
    device: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[Any]) -> list[Any]:
        """This rank's share: every world_size-th item starting at rank (balanced, deterministic)."""
        return list(items[self.rank :: self.world_size])


def from_accelerate(accelerator: Any = None) -> Distributed:
    """Topology of the current ``accelerate`` launch (a new Accelerator when none is given)."""
    from accelerate import Accelerator
    from accelerate.utils import gather_object

    accelerator = accelerator if accelerator is not None else Accelerator()
    if accelerator.num_processes == 1:
        return Distributed(device=accelerator.device)
    return Distributed(
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        gather=lambda items: list(gather_object(list(items))),
        barrier=accelerator.wait_for_everyone,
        device=accelerator.device,
    )
