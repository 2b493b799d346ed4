"""The machine and launch a recipe is validated for (``r1-trl check-recipe --target gpu --num_processes N``).

Recipe dataclasses validate in ``__post_init__``. By default they validate for this process: this machine's
devices and packages, this launch's process count. Inside `validating_for`, they validate for another
machine instead: with ``target="gpu"`` the probes of this machine's GPU and vLLM package are answered as a
GPU machine with vLLM would answer them (nothing else is skipped), and with ``num_processes`` every
process-count rule (TRL's batch and generation-batch divisibility, vLLM tensor parallelism) is checked for
that many processes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import torch

TARGETS = ("local", "gpu")

# `accelerate launch ... --num_processes 8` (or `--num_processes=8`) in a recipe's header comment.
_HEADER_NUM_PROCESSES = re.compile(r"--num_processes[ =](\d+)\b")


@dataclass(frozen=True)
class ValidationTarget:
    gpu: bool = False
    num_processes: int | None = None  # None: this launch's own


THIS_PROCESS = ValidationTarget()
_TARGET: ContextVar[ValidationTarget] = ContextVar("validation_target", default=THIS_PROCESS)


def current_target() -> ValidationTarget:
    return _TARGET.get()


def expects_gpu() -> bool:
    """Whether the recipe will run on a GPU: the target's answer, else this machine's."""
    return current_target().gpu or torch.cuda.is_available()


def planned_num_processes() -> int | None:
    """The process count being validated for, or None outside `validating_for` (this launch's count then)."""
    return current_target().num_processes


@contextmanager
def validating_for(target: str = "local", num_processes: int | None = None) -> Iterator[ValidationTarget]:
    """Recipes parsed inside validate for ``target`` ('local': this machine, 'gpu': a GPU machine with vLLM)
    launched with ``num_processes`` processes (None: this launch's)."""
    if target not in TARGETS:
        raise ValueError(f"--target: must be one of {', '.join(TARGETS)}, got {target!r}")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num_processes: must be >= 1, got {num_processes}")
    chosen = ValidationTarget(gpu=target == "gpu", num_processes=num_processes)
    token = _TARGET.set(chosen)
    try:
        if chosen.gpu:
            with _bf16_gpu_probe_answers_yes():
                yield chosen
        else:
            yield chosen
    finally:
        _TARGET.reset(token)


@contextmanager
def _bf16_gpu_probe_answers_yes() -> Iterator[None]:
    """transformers' TrainingArguments rejects bf16 unless its module-level probe finds a bf16 GPU; a GPU
    target has one. Only the probe changes: every other bf16 rule (not with fp16, ...) still applies."""
    import transformers.training_args as training_args

    probe = training_args.is_torch_bf16_gpu_available
    training_args.is_torch_bf16_gpu_available = lambda *args, **kwargs: True
    try:
        yield
    finally:
        training_args.is_torch_bf16_gpu_available = probe


def header_num_processes(path: str | Path) -> int | None:
    """The ``--num_processes N`` of the launch command in a recipe's leading comment block, if it states one."""
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            break
        match = _HEADER_NUM_PROCESSES.search(line)
        if match:
            return int(match.group(1))
    return None
