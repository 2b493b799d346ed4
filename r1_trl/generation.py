"""One sampling interface for every stage: transformers on CPU, vLLM on GPU when installed."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

Prompt = str | list[dict[str, str]]


@dataclass(frozen=True)
class SamplingSettings:
    num_samples: int = 1
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 64
    seed: int = 0


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> str:
    """Plain prompts pass through; conversational prompts go through the chat template."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def generate(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    settings: SamplingSettings = SamplingSettings(),
    backend: str = "auto",
    show_progress: bool = False,
) -> list[list[str]]:
    """``settings.num_samples`` completions per prompt, as decoded text (special tokens removed).

    ``backend="auto"`` picks vLLM when it is installed and a GPU is present (``model`` must then be a
    path or Hub id), else transformers.
    """
    if backend == "auto":
        backend = "vllm" if vllm_available() and isinstance(model, str) else "transformers"
    if backend == "vllm":
        return _generate_vllm(str(model), tokenizer, prompts, settings)
    if backend != "transformers":
        raise ValueError(f"unknown generation backend {backend!r}; use 'auto', 'transformers' or 'vllm'")
    if isinstance(model, str):
        from transformers import AutoModelForCausalLM

        with _outside_deepspeed_zero3():
            loaded = AutoModelForCausalLM.from_pretrained(model)
            return _generate_transformers(loaded, tokenizer, prompts, settings, show_progress)
    return _generate_transformers(model, tokenizer, prompts, settings, show_progress)


@contextlib.contextmanager
def _outside_deepspeed_zero3():
    """Treat a model loaded here as a plain local model even inside a DeepSpeed ZeRO-3 run.

    Otherwise ``from_pretrained`` partitions it across ranks (zero.Init) and ``generate`` all-reduces
    after every token with ranks that may not be generating (the main-process-only evaluation).
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


@torch.no_grad()
def _generate_transformers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    settings: SamplingSettings,
    show_progress: bool,
) -> list[list[str]]:
    texts = [render_prompt(tokenizer, p) for p in prompts for _ in range(settings.num_samples)]
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(settings.seed)
    outputs: list[str] = []
    try:
        starts = range(0, len(texts), settings.batch_size)
        for start in tqdm(starts, desc="generating", disable=not show_progress):
            batch = tokenizer(texts[start : start + settings.batch_size], return_tensors="pt", padding=True)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            sampled = settings.temperature > 0
            generated = model.generate(
                **batch,
                max_new_tokens=settings.max_new_tokens,
                do_sample=sampled,
                temperature=settings.temperature if sampled else None,
                top_p=settings.top_p if sampled else None,
                top_k=0 if sampled else None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = padding_side
        torch.random.set_rng_state(generator_state)
        model.train(was_training)
    k = settings.num_samples
    return [outputs[i * k : (i + 1) * k] for i in range(len(prompts))]


_VLLM_ENGINES: dict[str, Any] = {}


def vllm_engine(model: str) -> Any:
    """One vLLM engine per process, reused across calls for the same model (building one loads the weights
    and reserves most of the GPU memory); asking for another model releases the previous engine first."""
    from vllm import LLM

    if model not in _VLLM_ENGINES:
        for stale in list(_VLLM_ENGINES):
            del _VLLM_ENGINES[stale]
        import gc

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        _VLLM_ENGINES[model] = LLM(model=model)
    return _VLLM_ENGINES[model]


def _generate_vllm(
    model: str, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt], settings: SamplingSettings
) -> list[list[str]]:
    from vllm import SamplingParams

    params = SamplingParams(
        n=settings.num_samples,
        max_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=settings.seed,
    )
    results: list[Any] = vllm_engine(model).generate([render_prompt(tokenizer, p) for p in prompts], params)
    return [[choice.text for choice in result.outputs] for result in results]
