"""A stand-in for vLLM (tests only): what real vLLM does with device memory, on machines without a GPU.

Every engine reserves ``gpu_memory_utilization`` of its device when it is built, on ``cuda:LOCAL_RANK``
with ``distributed_executor_backend="external_launcher"`` and on ``cuda:0`` otherwise (where a plain
``LLM(model)`` lands in every process of a launch), and fails the way vLLM does when less is free. The
ledger of reservations is a JSON file shared by all processes of a test (``FAKE_VLLM_LEDGER``), so ranks
of a launch see each other's engines; ``allocate`` lets a test put other tenants (a trainer's state) on a
device. Generation decodes the prompt ids with the model's tokenizer and answers arithmetic questions
with a readable, correct completion (anything else gets a fixed refusal).

Under a launch, building an ``external_launcher`` engine is collective, as in vLLM (whose engine sets up its
model-parallel groups over every rank of the launch): a rank that builds one while the others do not waits
for them, here for ``FAKE_VLLM_JOIN_SECONDS`` (default 60) and then fails, where vLLM would wait forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

GIB = 2**30
DEVICE_BYTES = int(float(os.environ.get("FAKE_VLLM_DEVICE_GIB", "80")) * GIB)


def ledger_path() -> Path:
    return Path(os.environ.get("FAKE_VLLM_LEDGER", "/tmp/fake-vllm-ledger.json"))


@contextlib.contextmanager
def ledger() -> Iterator[dict[str, Any]]:
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        book = json.loads(path.read_text()) if path.is_file() else {"live": {}, "events": [], "peak": {}}
        yield book
        path.write_text(json.dumps(book))


def _used(book: dict[str, Any], device: int) -> int:
    return sum(entry["bytes"] for entry in book["live"].values() if entry["device"] == device)


def allocate(owner: str, device: int, fraction: float, kind: str) -> str:
    """Reserve ``fraction`` of ``device``; raises like vLLM when it does not fit. Returns the reservation id."""
    request = int(fraction * DEVICE_BYTES)
    with ledger() as book:
        free = DEVICE_BYTES - _used(book, device)
        if request > free:
            raise ValueError(
                f"Free memory on device cuda:{device} ({free / GIB:.2f}/{DEVICE_BYTES / GIB:.2f} GiB) on startup is "
                f"less than desired GPU memory utilization ({fraction}, {request / GIB:.2f} GiB). Decrease GPU "
                "memory utilization or reduce GPU memory used by other processes."
            )
        key = uuid.uuid4().hex
        book["live"][key] = {"owner": owner, "device": device, "bytes": request, "kind": kind, "pid": os.getpid()}
        book["events"].append({"event": "allocate", "kind": kind, "owner": owner, "device": device, "bytes": request,
                               "stage": os.environ.get("FAKE_VLLM_STAGE", "")})
        used = _used(book, device)
        book["peak"][str(device)] = max(book["peak"].get(str(device), 0), used)
    return key


def release(key: str) -> None:
    with ledger() as book:
        entry = book["live"].pop(key, None)
        if entry is not None:
            book["events"].append({"event": "release", "kind": entry["kind"], "owner": entry["owner"],
                                   "device": entry["device"], "stage": os.environ.get("FAKE_VLLM_STAGE", "")})


def live(kind: str | None = None) -> list[dict[str, Any]]:
    with ledger() as book:
        return [entry for entry in book["live"].values() if kind is None or entry["kind"] == kind]


class SamplingParams(SimpleNamespace):
    def __init__(self, n: int = 1, max_tokens: int = 16, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, **kwargs)


class LLM:
    built: list[dict[str, Any]] = []  # the arguments of every engine this process built, for the tests

    def __init__(self, model: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, dtype: str = "auto", distributed_executor_backend: str | None = None,
                 seed: int = 0, **kwargs: Any) -> None:  # fmt: skip
        from transformers import AutoTokenizer

        self.kwargs = {"model": model, "tensor_parallel_size": tensor_parallel_size,
                       "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len,
                       "dtype": dtype, "distributed_executor_backend": distributed_executor_backend, "seed": seed,
                       **kwargs}  # fmt: skip
        external = distributed_executor_backend == "external_launcher"
        if external:
            _join_launch()
        self.device = int(os.environ.get("LOCAL_RANK", "0")) if external else 0
        self.reservation = allocate(model, self.device, gpu_memory_utilization, "vllm")
        weakref.finalize(self, release, self.reservation)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.requests: list[tuple[list[Any], SamplingParams]] = []
        LLM.built.append(self.kwargs)

    def generate(self, prompts: list[Any], sampling_params: SamplingParams, use_tqdm: bool = True) -> list[Any]:
        if sampling_params.seed is not None:  # what vLLM's CPU sampler does with a per-request seed
            raise RuntimeError("CPU Generator does not use offset")
        self.requests.append((list(prompts), sampling_params))
        results = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            outputs = [SimpleNamespace(text=_answer(text)) for _ in range(sampling_params.n)]
            results.append(SimpleNamespace(prompt_token_ids=ids, outputs=outputs))
        return results


_ENGINES_JOINED = [0]


def _join_launch() -> None:
    """Wait until every rank of the launch builds its n-th engine (the n-th collective engine set-up)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    _ENGINES_JOINED[0] += 1
    store = dist.distributed_c10d._get_default_store()
    key = f"fake_vllm/engine-{_ENGINES_JOINED[0]}"
    store.add(key, 1)
    deadline = time.monotonic() + float(os.environ.get("FAKE_VLLM_JOIN_SECONDS", "60"))
    while (joined := store.add(key, 0)) < dist.get_world_size():
        if time.monotonic() > deadline:
            raise RuntimeError(f"engine set-up on rank {dist.get_rank()}: {joined} of {dist.get_world_size()} ranks "
                               "built an engine (vLLM's set-up is collective over the launch; it would hang)")
        time.sleep(0.05)


def _answer(prompt: str) -> str:
    from r1_trl.data.reasoning import readable_completion
    from r1_trl.data.tasks.arithmetic import solve

    question = re.findall(r"\d+(?: [-+*] \d+)+", prompt)
    if not question:
        return "<think>I cannot tell.</think><answer>0</answer>"
    answer, steps = solve(question[-1].split())
    return readable_completion(steps, str(answer))
