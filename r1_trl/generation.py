"""One sampling path for every stage: prompts tokenized once (as TRL tokenizes them for training), work
split across the ranks of a launch, vLLM engines built and released the way TRL builds its colocated ones.

* `generate`: this process samples ``num_samples`` completions for each of its prompts.
* `generate_sharded`: every rank of the launch calls it with the same prompts; each samples a share and
  all ranks get every group back, in prompt order. Prompts are cut into fixed batches of the global prompt
  list, each batch is seeded with ``seed + batch index``, and ranks take whole batches, so (with the
  transformers backend) 1 and N processes draw the same samples.
* `release_engines`: drop cached vLLM engines and free their memory; stages call it before building a
  trainer and when they end, and the pipeline after every stage.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reward_funcs.model_based import outside_zero3

logger = logging.getLogger(__name__)

Prompt = str | list[dict[str, str]]
BACKENDS = ("auto", "transformers", "vllm")
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass(frozen=True)
class SamplingSettings:
    num_samples: int = 1
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 64  # sequences (prompts x samples) per forward batch of the transformers backend
    seed: int = 0

    @property
    def prompts_per_batch(self) -> int:
        return max(1, self.batch_size // max(1, self.num_samples))


@dataclass(frozen=True)
class EngineSettings:
    """How samples are drawn: backend and, for vLLM, the engine's share of the device (recipe fields)."""

    backend: str = "auto"
    dtype: str = "auto"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    vllm_max_model_length: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"generation_backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"generation_dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not 0.0 < self.vllm_gpu_memory_utilization <= 1.0:
            raise ValueError(f"vllm_gpu_memory_utilization: must be in (0, 1], got {self.vllm_gpu_memory_utilization}")
        if self.vllm_tensor_parallel_size < 1:
            raise ValueError(f"vllm_tensor_parallel_size: must be >= 1, got {self.vllm_tensor_parallel_size}")
        if self.vllm_max_model_length is not None and self.vllm_max_model_length < 1:
            raise ValueError(f"vllm_max_model_length: must be >= 1, got {self.vllm_max_model_length}")

    @classmethod
    def from_config(cls, config: Any) -> EngineSettings:
        """The engine fields of a recipe (`r1_trl.configs.R1StageArguments`); defaults where it has none."""
        return cls(
            backend=getattr(config, "generation_backend", "auto"),
            dtype=getattr(config, "generation_dtype", "auto"),
            vllm_gpu_memory_utilization=getattr(config, "vllm_gpu_memory_utilization", 0.3),
            vllm_tensor_parallel_size=getattr(config, "vllm_tensor_parallel_size", 1),
            vllm_max_model_length=getattr(config, "vllm_max_model_length", None),
        )


def prompt_token_ids(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Token ids of each prompt exactly as TRL's trainers build them: conversational prompts through the
    chat template (``tokenize=True``, so a template that writes BOS gets one BOS), plain text through the
    tokenizer with its special tokens."""
    ids: list[list[int]] = [[] for _ in prompts]
    chats = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    texts = [i for i, p in enumerate(prompts) if isinstance(p, str)]
    if chats:
        encoded = tokenizer.apply_chat_template(
            [prompts[i] for i in chats], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        for i, row in zip(chats, encoded, strict=True):
            ids[i] = list(row)
    if texts:
        encoded = tokenizer([prompts[i] for i in texts])["input_ids"]
        for i, row in zip(texts, encoded, strict=True):
            ids[i] = list(row)
    return ids


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, model: Any = None) -> list[int]:
    """The tokens that end a completion: the tokenizer's EOS and every EOS of the model's generation config
    (chat models often list several, e.g. the end-of-turn and the end-of-text token), tokenizer's first.

    >>> from types import SimpleNamespace
    >>> model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[2, 7]))
    >>> stop_token_ids(SimpleNamespace(eos_token_id=7), model), stop_token_ids(SimpleNamespace(eos_token_id=7))
    ([7, 2], [7])
    """
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = configured if isinstance(configured, list | tuple) else [configured]
    ids = [tokenizer.eos_token_id, *configured]
    return [int(i) for i in dict.fromkeys(ids) if i is not None]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def resolve_backend(model: PreTrainedModel | str, engine: EngineSettings) -> str:
    if engine.backend == "auto":
        return "vllm" if vllm_available() and isinstance(model, str) else "transformers"
    if engine.backend == "vllm" and not isinstance(model, str):
        raise ValueError("generation_backend: vllm samples from a model path or Hub id, not a live model")
    return engine.backend


def generate(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    settings: SamplingSettings = SamplingSettings(),
    engine: EngineSettings = EngineSettings(),
    show_progress: bool = False,
    first_batch: int = 0,
) -> list[list[str]]:
    """``settings.num_samples`` completions per prompt, decoded (special tokens removed), in this process.

    ``first_batch``: global index of the first batch, which seeds it (see `generate_sharded`).
    """
    if not prompts:
        return []
    backend = resolve_backend(model, engine)
    ids = prompt_token_ids(tokenizer, prompts)
    if backend == "vllm":
        return _generate_vllm(str(model), ids, settings, engine)
    if isinstance(model, str):
        loaded = load_for_generation(model, engine)
        try:
            return _generate_transformers(loaded, tokenizer, ids, settings, show_progress, first_batch)
        finally:
            del loaded
            free_memory()
    return _generate_transformers(model, tokenizer, ids, settings, show_progress, first_batch)


def generate_sharded(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    settings: SamplingSettings = SamplingSettings(),
    engine: EngineSettings = EngineSettings(),
    show_progress: bool = True,
) -> list[list[str]]:
    """Every rank calls this with the same prompts; each samples its share; every rank gets all groups back
    in prompt order. An exception on one rank is raised there (and, through the launcher, ends the others).

    Ranks of one vLLM tensor-parallel group sample the same share (their engines work together).
    """
    shard, num_shards = _shard_of_this_process(engine)
    per_batch = settings.prompts_per_batch
    batches = [(start, min(start + per_batch, len(prompts))) for start in range(0, len(prompts), per_batch)]
    mine = _contiguous_share(len(batches), shard, num_shards)
    if num_shards > 1 and resolve_backend(model, engine) == "vllm":
        # Engines set up their process groups collectively over the launch: every rank builds its engine now,
        # also one without a share (alone, the others would wait for it forever).
        vllm_engine(str(model), engine)
    local: list[tuple[int, list[str]]] = []
    if mine:
        first, last = batches[mine.start][0], batches[mine.stop - 1][1]
        groups = generate(model, tokenizer, list(prompts[first:last]), settings, engine,
                          show_progress=show_progress and shard == 0, first_batch=mine.start)  # fmt: skip
        local = list(zip(range(first, last), groups, strict=True))
    if num_shards == 1:
        return [group for _, group in local]
    from accelerate.utils import gather_object

    indexed = {index: group for index, group in gather_object(local)}  # TP peers send the same groups
    if sorted(indexed) != list(range(len(prompts))):
        raise RuntimeError(f"sharded generation returned {len(indexed)} of {len(prompts)} prompt groups")
    return [indexed[i] for i in range(len(prompts))]


def _contiguous_share(count: int, shard: int, num_shards: int) -> range:
    base, extra = divmod(count, num_shards)
    start = shard * base + min(shard, extra)
    return range(start, start + base + (1 if shard < extra else 0))


def _shard_of_this_process(engine: EngineSettings) -> tuple[int, int]:
    """(shard, number of shards) of this process: one shard per rank, or per vLLM tensor-parallel group."""
    from r1_trl.distributed import launch_state

    state = launch_state()
    rank, world = state.process_index, state.num_processes
    tensor_parallel = engine.vllm_tensor_parallel_size if engine.backend != "transformers" else 1
    if world % tensor_parallel:
        raise ValueError(f"vllm_tensor_parallel_size: {tensor_parallel} does not divide the {world} processes")
    return rank // tensor_parallel, world // tensor_parallel


def generation_device() -> torch.device:
    """This process's accelerator (``cuda:LOCAL_RANK`` under a launcher), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return torch.device("cpu")


def sampling_dtype(engine: EngineSettings) -> str:
    """The recipe's dtype, with "auto" resolved as the field documents for both backends: bfloat16 with a GPU,
    float32 without (vLLM's own "auto" would run a float32 checkpoint in bfloat16 on CPU)."""
    if engine.dtype != "auto":
        return engine.dtype
    return "bfloat16" if torch.cuda.is_available() else "float32"


def load_for_generation(model: str, engine: EngineSettings) -> PreTrainedModel:
    """A plain (never ZeRO-3-partitioned) copy of ``model`` on this process's device, in the recipe dtype."""
    from r1_trl.checkpoints import load_causal_lm

    with outside_zero3():
        loaded = load_causal_lm(model, dtype=getattr(torch, sampling_dtype(engine)))  # an adapter: merged into its base
    return loaded.to(generation_device())


def is_zero3_partitioned(model: Any) -> bool:
    """Whether the model's parameters are partitioned across ranks by DeepSpeed ZeRO-3."""
    parameter = next(iter(model.parameters()), None)
    return parameter is not None and hasattr(parameter, "ds_id")


def _batches(count: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, count, size):
        yield start, min(start + size, count)


@torch.no_grad()
def _generate_transformers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: list[list[int]],
    settings: SamplingSettings,
    show_progress: bool,
    first_batch: int,
) -> list[list[str]]:
    k = settings.num_samples
    was_training = model.training
    model.eval()
    generator_state = torch.random.get_rng_state()
    stop_ids = stop_token_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    sampled = settings.temperature > 0
    outputs: list[list[str]] = []
    try:
        spans = list(_batches(len(prompt_ids), settings.prompts_per_batch))
        for offset, (start, stop) in enumerate(tqdm(spans, desc="generating", disable=not show_progress)):
            torch.manual_seed(settings.seed + first_batch + offset)
            rows = [ids for ids in prompt_ids[start:stop] for _ in range(k)]
            width = max(len(ids) for ids in rows)
            input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in rows], device=model.device)
            attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=model.device)
            generated = model.generate(
                input_ids=input_ids,
                # A ZeRO-3-partitioned model needs every rank in every forward (the ranks generate the same
                # batches); a plain copy must not wait for the others (transformers would sync whenever a
                # DeepSpeed ZeRO-3 config is active, and ranks with different shares would deadlock).
                synced_gpus=is_zero3_partitioned(model),
                attention_mask=attention,
                max_new_tokens=settings.max_new_tokens,
                do_sample=sampled,
                temperature=settings.temperature if sampled else None,
                top_p=settings.top_p if sampled else None,
                top_k=0 if sampled else None,
                pad_token_id=pad_id,
                eos_token_id=stop_ids,
            )
            texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            outputs.extend(texts[i * k : (i + 1) * k] for i in range(stop - start))
    finally:
        torch.random.set_rng_state(generator_state)
        model.train(was_training)
    return outputs


# ---- vLLM ------------------------------------------------------------------------------------------------
_VLLM_ENGINES: dict[tuple[str, EngineSettings], Any] = {}
_ON_LAUNCH_GROUP: set[tuple[str, EngineSettings]] = set()  # engines built inside a launch's process group


def vllm_engine(model: str, engine: EngineSettings) -> Any:
    """This process's vLLM engine for ``model``, built as TRL builds its colocated engines: one per rank on
    the rank's own device (``external_launcher``), with an explicit memory share, tensor-parallel size,
    context length and dtype. Reused across calls; another model or setting releases the previous one."""
    key = (model, engine)
    if key not in _VLLM_ENGINES:
        release_engines()
        from trl.trainer.utils import ensure_master_addr_port
        from vllm import LLM

        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        os.environ.setdefault("RANK", str(rank))
        os.environ.setdefault("LOCAL_RANK", str(rank))
        os.environ.setdefault("WORLD_SIZE", str(world))
        ensure_master_addr_port()  # TRL's: a free rendezvous port unless a launcher set one
        if torch.distributed.is_initialized():
            _ON_LAUNCH_GROUP.add(key)
        from r1_trl.checkpoints import full_model_path

        _VLLM_ENGINES[key] = LLM(
            model=full_model_path(model),  # vLLM loads full models: an adapter is merged into its base first
            tensor_parallel_size=engine.vllm_tensor_parallel_size,
            gpu_memory_utilization=engine.vllm_gpu_memory_utilization,
            max_model_len=engine.vllm_max_model_length,
            dtype=sampling_dtype(engine),
            distributed_executor_backend="external_launcher",
            seed=rank // engine.vllm_tensor_parallel_size,  # the same within a tensor-parallel group
        )
    return _VLLM_ENGINES[key]


def _generate_vllm(
    model: str, prompt_ids: list[list[int]], settings: SamplingSettings, engine: EngineSettings
) -> list[list[str]]:
    from vllm import SamplingParams

    # No per-request seed: the engine is seeded (a per-request seed crashes vLLM's CPU sampler).
    # Greedy decoding draws one completion per prompt (vLLM refuses n > 1 without sampling) and repeats it.
    greedy = settings.temperature == 0
    params = SamplingParams(n=1 if greedy else settings.num_samples, max_tokens=settings.max_new_tokens,
                            temperature=settings.temperature, top_p=settings.top_p)  # fmt: skip
    requests = [{"prompt_token_ids": ids} for ids in prompt_ids]
    results: list[Any] = vllm_engine(model, engine).generate(requests, params, use_tqdm=False)
    if greedy:
        return [[result.outputs[0].text] * settings.num_samples for result in results]
    return [[choice.text for choice in result.outputs] for result in results]


def release_engines() -> int:
    """Shut down this process's vLLM engines and free their memory; returns how many were released."""
    released = len(_VLLM_ENGINES)
    if released:
        for key, llm in _VLLM_ENGINES.items():
            _shut_down(llm, keep_default_group=key in _ON_LAUNCH_GROUP)
        _VLLM_ENGINES.clear()
        _ON_LAUNCH_GROUP.clear()
        try:
            from vllm.distributed.parallel_state import destroy_model_parallel

            destroy_model_parallel()
        except Exception as error:  # noqa: BLE001  (best effort: the engine objects are gone either way)
            logger.debug("vLLM model-parallel teardown: %s", error)
    free_memory()
    return released


def _shut_down(llm: Any, keep_default_group: bool) -> None:
    """Shut ``llm`` down now rather than whenever it is collected. vLLM's in-process engine then tears down
    the distributed environment, default process group included: under a launch that group is the launch's
    own (the engine joined it), and later collectives and trainers need it, so it is kept."""
    shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
    if shutdown is None:  # a vLLM without an in-process engine client: collection frees it
        return
    if not keep_default_group:
        shutdown()
        return
    destroy = torch.distributed.destroy_process_group

    def destroy_all_but_default(group: Any = None) -> None:
        if group is not None and group is not torch.distributed.GroupMember.WORLD:
            destroy(group)

    torch.distributed.destroy_process_group = destroy_all_but_default
    try:
        shutdown()
    finally:
        torch.distributed.destroy_process_group = destroy


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
