"""Process-group hygiene for multi-process runs (``accelerate launch``, ``torchrun``)."""

from __future__ import annotations

import sys


def finish_distributed() -> None:
    """Let every rank leave together, then tear the process group down explicitly.

    Call it at the end of a multi-process script. Rank 0 often still works (evaluation, saving) when the
    other ranks are done; a rank whose interpreter exits with a live gloo/NCCL group can abort ("terminate
    called without an active exception", SIGABRT), failing the whole launch. A no-op when no process group
    was started.
    """
    if "torch" not in sys.modules:  # nothing ran that could have started a process group
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
