"""Data-parallel training: two CPU processes with the gloo backend end with the same parameters."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sandglass.training.trainer
from sandglass.training import TrainingCallbacks, train_in_process_group
from sandglass.training.distributed import DistributedContext, leaving_process_group
from tests.training.runs import SPLITS, assert_same_weights, resume_weights, run_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FinishCounter(TrainingCallbacks):
    """Writes how many times this rank was told that training finished."""

    def __init__(self, path) -> None:
        self.path = path
        self.path.write_text("0")

    def training_finished(self, result) -> None:
        self.path.write_text(str(int(self.path.read_text()) + 1))


def _train_rank(rank: int, world_size: int, port: int, run_dir, data_cache, out_dir) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    trainer_class = sandglass.training.trainer.Trainer
    original_run = trainer_class.run

    def run_and_keep_parameters(self, resume):
        result = original_run(self, resume)
        torch.save(self.model.state_dict(), out_dir / f"rank{rank}.pt")
        torch.save(result.steps, out_dir / f"steps{rank}.pt")
        return result

    trainer_class.run = run_and_keep_parameters
    with leaving_process_group():
        config = run_config(dropout=0.1, max_steps=4, checkpoint_every=2)
        callbacks = FinishCounter(out_dir / f"finished{rank}.txt")
        train_in_process_group(config, run_dir, splits=SPLITS, data_cache=data_cache, callbacks=callbacks)


def test_two_gloo_ranks_end_with_identical_parameters(tmp_path, data_cache):
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    mp.spawn(_train_rank, args=(2, free_port(), run_dir, data_cache, out_dir), nprocs=2, join=True)

    first, second = (torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(2))
    assert [torch.load(out_dir / f"steps{rank}.pt") for rank in range(2)] == [4, 4]
    assert_same_weights(first, second)
    saved = resume_weights(run_dir)  # written by rank 0 alone; tied weights are stored once
    assert_same_weights({name: value for name, value in first.items() if name in saved}, saved)
    assert (run_dir / "metrics.jsonl").is_file()
    # Only rank 0 reports, so `sandglass train` under torchrun prints its closing lines once.
    assert [(out_dir / f"finished{rank}.txt").read_text() for rank in range(2)] == ["1", "0"]


def test_each_rank_takes_every_world_size_th_batch():
    batches = [[index] for index in range(7)]
    shards = [DistributedContext(rank, 3, rank).shard(batches) for rank in range(3)]
    assert shards == [[[0], [3]], [[1], [4]], [[2], [5]]]
    assert DistributedContext().shard(batches) == batches
