"""Process-group hygiene for multi-process runs (``accelerate launch``, ``torchrun``).

Why a multi-process r1-trl program ends with `exit_distributed` instead of returning to the interpreter:
a gloo worker thread (``c10d::ProcessGroupGloo::runLoop``) releases a finished collective a moment
*after* the rank that waited on it has moved on. When that work item holds the last reference to a
tensor that Python created, releasing it needs the GIL. If the rank is already in ``Py_FinalizeEx``,
taking the GIL makes the worker thread exit (``PyThread_exit_thread``) by a forced unwind through a
``noexcept`` destructor, and C++ calls ``std::terminate``: the rank dies with SIGABRT and "terminate called
without an active exception" (native stack of such a rank, from a core dump: ``runLoop`` ->
``~AsyncBarrierWork`` -> ``~AsyncAllgatherWork`` -> ``TensorImpl::decref_pyobject`` -> ``take_gil`` ->
``PyThread_exit_thread`` -> ``std::terminate``). ``destroy_process_group`` does not prevent it: groups that
DeepSpeed, accelerate or TRL still reference (and their worker threads) outlive it. The window is short,
so it shows under load, when the worker thread is descheduled at the wrong moment.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import Any


def launch_state() -> Any:
    """accelerate's shared `PartialState` of this launch: with several processes (``accelerate launch``,
    ``torchrun``) creating it starts the process group, so a stage calls it before anything that shards
    work or writes once. CPU-only processes of a launch use gloo; a single process starts no group (with
    ``cpu=True`` accelerate would start a one-process group and reset the torch thread count)."""
    import torch
    from accelerate import PartialState

    if launched_with_several_processes():
        return PartialState(cpu=not torch.cuda.is_available())
    return PartialState()


def process_group_active() -> bool:
    if "torch" not in sys.modules:  # nothing ran that could have started a process group
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def leave_together() -> bool:
    """Let every rank arrive here, then destroy the process group. Returns whether there was one."""
    if not process_group_active():
        return False
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()
    return True


def exit_without_finalizing(status: int) -> None:
    """End the process the way interpreter shutdown would, minus the step that can abort it.

    Non-daemon threads are joined (and executors shut down) and ``atexit`` handlers run, as at a normal
    exit, then the process ends with ``os._exit`` before ``Py_FinalizeEx`` can race live gloo worker
    threads (see the module docstring).
    """
    shutdown_threads = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx calls first
    if shutdown_threads is not None:
        shutdown_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken pipe: nothing left to save
            stream.flush()
    os._exit(status)


def launched_with_several_processes() -> bool:
    """Whether a launcher (``accelerate launch``, ``torchrun``) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def exit_distributed(status: int = 0) -> int:
    """The last call of a multi-process script: every rank leaves together, then the process ends.

    With a process group: barrier and ``destroy_process_group``. Then, in a process a launcher started as
    one of several, `exit_without_finalizing` (this call does not return). Otherwise (a single-process run,
    or a test calling the CLI in-process) it returns ``status``, so ``sys.exit(exit_distributed(main()))``
    works everywhere.
    """
    leave_together()
    if launched_with_several_processes():
        exit_without_finalizing(status)
    return status
