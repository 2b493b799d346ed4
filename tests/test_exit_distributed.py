"""`r1_trl.distributed`: ranks leave together and end without racing gloo's worker threads.

Run as a script under ``torchrun`` this file is the worker of
``test_ranks_end_cleanly_while_gloo_releases_python_tensors``: every rank posts an ``all_gather`` (rank 0
two seconds late) and drops its own references to the tensors, so gloo's worker threads hold the last ones
and release them (slowly: a weakref callback sleeps) around the final barrier, while a library-held
reference to the world group keeps ``destroy_process_group`` from joining those threads (as DeepSpeed,
accelerate and TRL do in a real run). That is the path of the CI abort explained in `r1_trl.distributed`.
The abort itself needs a worker thread descheduled at the wrong moment, so this test cannot force it; the
evidence that the fix holds is ``tests/stress_multiprocess.py`` (20 runs of every multi-process test).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch.distributed as dist

from r1_trl.distributed import exit_distributed, leave_together

REPO = Path(__file__).resolve().parents[1]
RUNS = 3


def test_outside_a_multi_process_launch_exit_distributed_returns_the_status(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not leave_together()
    assert exit_distributed(3) == 3
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert exit_distributed(4) == 4 and not dist.is_initialized()  # a group of its own: torn down, no exit


def test_leave_together_destroys_the_group(tmp_path: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert leave_together()
    assert not dist.is_initialized()


@pytest.mark.multiprocess
def test_ranks_end_cleanly_while_gloo_releases_python_tensors(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               __file__, str(tmp_path)]  # fmt: skip
    for run in range(RUNS):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        output = done.stdout + done.stderr
        assert done.returncode == 0 and "terminate called" not in output, f"run {run}:\n{output[-3000:]}"
        markers = sorted(tmp_path.glob("atexit-rank*"))
        assert [m.name for m in markers] == ["atexit-rank0", "atexit-rank1"]  # atexit handlers still ran
        for marker in markers:
            marker.unlink()


class _SlowTeardown:
    def __del__(self) -> None:
        time.sleep(2.0)


def _slow_release(_: object) -> None:
    print(f"gloo worker releases a Python tensor at {time.time():.2f}", file=sys.stderr, flush=True)
    time.sleep(1.0)


def _worker(output_dir: str) -> None:
    import atexit

    import torch

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    held_elsewhere = dist.group.WORLD  # noqa: F841  (libraries keep references to their groups)
    slow_teardown = _SlowTeardown()  # noqa: F841  (freed during interpreter shutdown)
    atexit.register(lambda: Path(output_dir, f"atexit-rank{rank}").touch())
    if rank == 0:
        time.sleep(2)
    gathered = [torch.empty(1000) for _ in range(2)]
    slow_releases = [weakref.ref(tensor, _slow_release) for tensor in gathered]  # noqa: F841
    work = dist.all_gather(gathered, torch.ones(1000), async_op=True)
    del gathered, work  # only the gloo worker threads hold these tensors now
    sys.exit(exit_distributed(0))


if __name__ == "__main__":
    _worker(sys.argv[1])
