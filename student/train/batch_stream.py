"""The trainer's endless, resumable stream of shard batches.

Order is a pure function of (seed, rank, world size, loader workers, position): each epoch is one
`pipeline.shard_reader.make_loader` pass (deterministic in seed and epoch), and a position is (epoch, batches of
it already consumed). A resumed run rebuilds the epoch's loader and skips the consumed batches, so it sees
exactly the batches the uninterrupted run would have seen. The loader decodes only `views_per_sample` views of
each sample (which ones is a function of the seed, the epoch and the sample's key).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.shard_reader import ShardBatch, make_loader


@dataclass(frozen=True)
class DataPosition:
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already consumed


def rank_shards(shards: Sequence[Path], rank: int, world: int) -> list[Path]:
    """The shards data-parallel worker `rank` of `world` reads: every world-th, so ranks see disjoint data."""
    if len(shards) < world:
        raise ValueError(f"{len(shards)} shard(s) cannot feed {world} data-parallel workers; dump at least {world}")
    return list(shards[rank::world])


class BatchStream:
    def __init__(
        self,
        shards: Sequence[Path],
        batch_size: int,
        *,
        seed: int,
        num_workers: int,
        views_per_sample: int | None = None,
        prompt_group: int = 1,
        start: DataPosition = DataPosition(),
    ) -> None:
        self.shards, self.batch_size, self.seed, self.num_workers = list(shards), batch_size, seed, num_workers
        self.views_per_sample = views_per_sample  # None = decode every view
        self.prompt_group = prompt_group  # consecutive samples of one prompt (`make_loader`)
        self.position = start

    def __iter__(self) -> Iterator[ShardBatch]:
        """Yields batches forever; `self.position` counts the batches handed out."""
        while True:
            epoch, skip = self.position.epoch, self.position.batch
            loader = make_loader(
                self.shards,
                self.batch_size,
                num_workers=self.num_workers,
                seed=self.seed,
                epoch=epoch,
                drop_last=True,
                views_per_sample=self.views_per_sample,
                prompt_group=self.prompt_group,
            )
            produced = 0
            for index, batch in enumerate(loader):
                produced += 1
                if index < skip:
                    continue
                self.position = DataPosition(epoch, index + 1)
                yield batch
            if produced == 0:
                raise ValueError(f"{len(self.shards)} shard(s) hold fewer than one batch of {self.batch_size} samples")
            self.position = DataPosition(epoch + 1, 0)
