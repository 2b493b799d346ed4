"""Rewards scored by trained reward models, and prompt-type routing for mixed RL batches.

R1's final RL stage trains on a mixture: reasoning prompts are scored by rules (accuracy, format,
language), general prompts by reward models. Each row's ``prompt_type`` column says which kind it is;
a reward that does not apply to a row returns None for it (TRL skips None). A row without the column
(or with None in it) is scored by every reward, so the rewards also work on unmixed data.

* ``helpfulness_rm`` scores only the final summary of an output: the text after ``</think>`` (or inside
  the last ``<answer>`` block, or after the last ``|special_token|``). Reasoning cannot buy helpfulness.
* ``harmlessness_rm`` scores the whole output, reasoning included: harmful content anywhere counts.

Both are factories (``reward_funcs.get("helpfulness_rm", model_path=...)``) around a sequence-classification
reward model with one label (as ``trl.RewardTrainer`` trains them). The model is loaded once per path and
device, scores in batches without gradients, and sees the prompt and the response rendered exactly as
``RewardTrainer`` rendered its training pairs: conversational prompts through the reward model's chat
template, plain prompts as ``prompt + response + eos``. System messages are dropped by default (the
synthetic and most public preference sets have none). Scores pass through a sigmoid by default, so they
read as preference probabilities in [0, 1] next to the rule rewards.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from reward_funcs._text import Completion, completion_to_text
from reward_funcs.registry import RewardFunc, register

PROMPT_TYPE_COLUMN = "prompt_type"
GENERAL_PROMPT_TYPES = ("general",)
REASONING_PROMPT_TYPES = ("reasoning",)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
SPECIAL_TOKEN = "|special_token|"
_CHARS_PER_TOKEN_BOUND = 32

Prompt = str | list[dict[str, Any]] | None
Scorer = Callable[[list[Prompt], list[str]], list[float]]


def final_summary(text: str) -> str:
    """The part of an output a helpfulness judge reads: the summary after the reasoning.

    After ``</think>`` (nothing if a ``<think>`` is never closed); inside the last ``<answer>`` block
    when there is one; after the last ``|special_token|`` in that layout; else the whole text.

    >>> final_summary("<think>I am so helpful</think>\\n<answer>\\nParis\\n</answer>")
    'Paris'
    >>> final_summary("<think>still thinking"), final_summary("Plain answer. "), final_summary("a</think> b")
    ('', 'Plain answer.', 'b')
    >>> final_summary("|special_token|reasoning|special_token|Summary: 14.")
    'Summary: 14.'
    """
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        text = text[close + len(THINK_CLOSE) :]
    elif THINK_OPEN in text:
        return ""
    elif text.count(SPECIAL_TOKEN) >= 2:
        text = text[text.rfind(SPECIAL_TOKEN) + len(SPECIAL_TOKEN) :]
    start = text.rfind(ANSWER_OPEN)
    if start >= 0:
        body = text[start + len(ANSWER_OPEN) :]
        end = body.find(ANSWER_CLOSE)
        text = body if end < 0 else body[:end]
    return text.strip()


def _as_types(prompt_types: str | Sequence[str] | None) -> frozenset[str] | None:
    if prompt_types is None:
        return None
    return frozenset([prompt_types] if isinstance(prompt_types, str) else prompt_types)


def applicable_rows(kwargs: dict[str, Any], size: int, prompt_types: str | Sequence[str] | None) -> list[int]:
    """Indices of the rows a reward for ``prompt_types`` scores (all rows when ``prompt_types`` is None).

    >>> applicable_rows({"prompt_type": ["general", "reasoning", None]}, 3, ["general"])
    [0, 2]
    >>> applicable_rows({}, 2, ["reasoning"])
    [0, 1]
    """
    wanted = _as_types(prompt_types)
    column = kwargs.get(PROMPT_TYPE_COLUMN)
    if wanted is None or not isinstance(column, list) or len(column) != size:
        return list(range(size))
    # A value that is not a string (None, junk) leaves the row untagged: every reward scores it.
    return [i for i, value in enumerate(column) if not isinstance(value, str) or value in wanted]


def _subset_kwargs(kwargs: dict[str, Any], rows: list[int], size: int) -> dict[str, Any]:
    """Per-row lists restricted to ``rows``; ``log_extra`` scatters its values back to the full batch."""
    subset = {
        key: [value[i] for i in rows] if isinstance(value, list) and len(value) == size else value
        for key, value in kwargs.items()
    }
    log_extra = kwargs.get("log_extra")
    if callable(log_extra):

        def scattered(column: str, values: list) -> None:
            full: list[Any] = [None] * size
            for row, value in zip(rows, values, strict=False):
                full[row] = value
            log_extra(column, full)

        subset["log_extra"] = scattered
    return subset


def only_for_prompt_types(
    func: RewardFunc, prompt_types: str | Sequence[str], name: str | None = None
) -> RewardFunc:
    """``func`` restricted to rows whose ``prompt_type`` is one of ``prompt_types``; other rows get None.

    >>> def length(completions, **kwargs):
    ...     return [float(len(c)) for c in completions]
    >>> only_for_prompt_types(length, "reasoning")(["ab", "abc"], prompt_type=["reasoning", "general"])
    [2.0, None]
    """
    return PromptTypeReward(func, prompt_types, name or getattr(func, "__name__", "reward"))


class PromptTypeReward:
    """A reward applied to some prompt types only (see :func:`only_for_prompt_types`); it pickles."""

    def __init__(self, func: RewardFunc, prompt_types: str | Sequence[str], name: str) -> None:
        self.func = func
        self.prompt_types = prompt_types
        self.__name__ = self.__qualname__ = name
        self.__doc__ = getattr(func, "__doc__", None)

    def __call__(self, completions: list[Completion], **kwargs: Any) -> list[float | None]:
        size = len(completions)
        rows = applicable_rows(kwargs, size, self.prompt_types)
        scores: list[float | None] = [None] * size
        if not rows:
            return scores
        if len(rows) == size:
            return list(self.func(completions, **kwargs))
        subset_scores = list(self.func([completions[i] for i in rows], **_subset_kwargs(kwargs, rows, size)))
        if len(subset_scores) != len(rows):
            raise ValueError(
                f"reward {self.__name__!r} returned {len(subset_scores)} scores for {len(rows)} completions"
            )
        for row, score in zip(rows, subset_scores, strict=True):
            scores[row] = score
        return scores


def encodable(text: str) -> str:
    """``text`` with what no tokenizer can encode (lone surrogates) replaced.

    >>> encodable("ok " + chr(0xD800))
    'ok ?'
    """
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _chat_messages(prompt: list[Any], include_system: bool) -> list[dict[str, str]]:
    """The prompt's messages as plain role/content strings (malformed entries dropped)."""
    messages = []
    for message in prompt:
        if not isinstance(message, dict):
            continue
        role = message.get("role") if isinstance(message.get("role"), str) else "user"
        if role == "system" and not include_system:
            continue
        messages.append({"role": role, "content": encodable(completion_to_text([message]))})
    return messages


def render_for_reward_model(
    tokenizer: Any, prompt: Prompt, response: str, include_system: bool = False
) -> list[int]:
    """Token ids of (prompt, response) as ``trl.RewardTrainer`` tokenizes a preference example:
    conversational prompts through the chat template, plain ones as ``prompt + response + eos``."""
    response = encodable(response)
    if isinstance(prompt, list):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the reward model's tokenizer has no chat template; conversational prompts need one"
            )
        messages = [*_chat_messages(prompt, include_system), {"role": "assistant", "content": response}]
        return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
    text = (encodable(prompt) if isinstance(prompt, str) else "") + response
    eos = tokenizer.eos_token or ""
    if not text.endswith(eos):
        text += eos
    return list(tokenizer(text=text)["input_ids"])


class RewardModelScorer:
    """Scores (prompt, response) pairs with a sequence-classification reward model: one float per pair."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 16,
        max_length: int | None = None,
        include_system: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if getattr(model.config, "num_labels", 1) != 1:
            raise ValueError(f"a reward model needs num_labels=1, got {model.config.num_labels}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        positions = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self.max_length = max_length or min(positions, getattr(tokenizer, "model_max_length", positions))
        self.include_system = include_system
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the reward model's tokenizer has neither a pad nor an eos token")
        self.pad_token_id = pad
        if model.config.pad_token_id is None:  # the model finds each sequence's last token through it
            model.config.pad_token_id = pad

    def __call__(self, prompts: list[Prompt], responses: list[str]) -> list[float]:
        import torch

        # The model reads the score at the last token, so overlong inputs keep their end. A response far
        # longer than the window is cut to its tail first (tokens rarely span more than a few characters,
        # so 32 per token still fills the window): no tokenizing of text that would be truncated anyway.
        tail = _CHARS_PER_TOKEN_BOUND * self.max_length
        encoded = [
            render_for_reward_model(self.tokenizer, p, r[-tail:], self.include_system)[-self.max_length :]
            for p, r in zip(prompts, responses, strict=True)
        ]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        scores = [0.0] * len(encoded)
        device = self.model.device
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                width = max(len(encoded[i]) for i in batch)
                ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, index in enumerate(batch):
                    ids[row, : len(encoded[index])] = torch.tensor(encoded[index])
                    mask[row, : len(encoded[index])] = 1
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0]
                for index, value in zip(batch, logits.float().cpu().tolist(), strict=True):
                    scores[index] = value
        return scores


def default_device() -> str:
    import torch

    return f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"


def load_reward_model(model_path: str, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a reward model in eval mode, loaded once per (path, device) and kept while the
    files at a local path stay unchanged (a retrained model at the same path is loaded anew)."""
    return _load_reward_model(str(model_path), device or default_device(), _files_stamp(str(model_path)))


def _files_stamp(model_path: str) -> int | None:
    path = Path(model_path)
    if not path.is_dir():
        return None  # a Hub id: its files do not change under us
    return max((item.stat().st_mtime_ns for item in path.iterdir() if item.is_file()), default=None)


@contextlib.contextmanager
def outside_zero3() -> Iterator[None]:
    """Load models as plain local copies even inside a DeepSpeed ZeRO-3 run.

    There ``from_pretrained`` partitions every model it loads across the ranks (zero.Init), and every
    forward then needs all ranks at once: a reward model scoring each rank's own completions, or one rank
    measuring a checkpoint, would deadlock. transformers keeps the active config behind a weakref; its
    set/unset functions are public, reading the object back is not.

    >>> with outside_zero3():
    ...     pass
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    reference = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    active = reference() if reference is not None else None
    if active is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(active)


@functools.lru_cache(maxsize=8)
def _load_reward_model(model_path: str, device: str, stamp: int | None) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        with outside_zero3():
            model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1)
    except (OSError, ValueError) as error:
        raise ValueError(f"model_path: cannot load a reward model from {model_path!r}: {error}") from None
    model.to(device).eval()
    return model, tokenizer


def reward_model_scorer(
    model_path: str,
    batch_size: int = 16,
    max_length: int | None = None,
    device: str | None = None,
    include_system: bool = False,
) -> RewardModelScorer:
    """A scorer around the reward model at ``model_path`` (loaded once, see :func:`load_reward_model`)."""
    model, tokenizer = load_reward_model(model_path, device)
    return RewardModelScorer(model, tokenizer, batch_size, max_length, include_system)


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))


def _resolve_scorer(model_path: str | None, scorer: Scorer | None, **load: Any) -> Scorer:
    if (model_path is None) == (scorer is None):
        raise ValueError("model_path: give exactly one of model_path (a reward model) or scorer (a callable)")
    return scorer if scorer is not None else reward_model_scorer(str(model_path), **load)


class ModelReward:
    """A reward model's score of one view of each output (a class, not a closure, so that it pickles)."""

    def __init__(self, name: str, view: Callable[[str], str], scorer: Scorer, prompt_types: Any, sigmoid: bool) -> None:
        self.view = view
        self.scorer = scorer
        self.prompt_types = prompt_types
        self.sigmoid = sigmoid
        self.__name__ = self.__qualname__ = name

    def __call__(
        self, completions: list[Completion], prompts: list[Prompt] | None = None, **kwargs: Any
    ) -> list[float | None]:
        size = len(completions)
        rows = applicable_rows(kwargs, size, self.prompt_types)
        scores: list[float | None] = [None] * size
        if not rows:
            return scores
        row_prompts = (
            [prompts[i] for i in rows]
            if isinstance(prompts, list) and len(prompts) == size
            else [None] * len(rows)
        )
        responses = [self.view(completion_to_text(completions[i])) for i in rows]
        for row, value in zip(rows, self.scorer(row_prompts, responses), strict=True):
            value = float(value)
            if math.isfinite(value):
                scores[row] = _sigmoid(value) if self.sigmoid else value
        return scores


def _whole_output(text: str) -> str:
    return text.strip()


@register("helpfulness_rm", factory=True)
def helpfulness_rm(
    model_path: str | None = None,
    *,
    scorer: Scorer | None = None,
    prompt_types: str | Sequence[str] | None = GENERAL_PROMPT_TYPES,
    sigmoid: bool = True,
    batch_size: int = 16,
    max_length: int | None = None,
    device: str | None = None,
    include_system: bool = False,
) -> RewardFunc:
    """Helpfulness reward: a reward model's score of the final summary only (the reasoning is cut off).

    ``model_path`` is a reward model (or ``scorer`` any callable ``(prompts, responses) -> scores``);
    rows whose ``prompt_type`` is not in ``prompt_types`` get None.

    >>> by_length = lambda prompts, responses: [float(len(r)) for r in responses]
    >>> reward = helpfulness_rm(scorer=by_length, sigmoid=False)
    >>> reward(["<think>a long and lovely reasoning</think><answer>ok</answer>", "ok"],
    ...        prompt_type=["general", "general"])
    [2.0, 2.0]
    >>> reward(["<answer>ok</answer>"], prompt_type=["reasoning"])
    [None]
    """
    return ModelReward(
        "helpfulness_rm",
        final_summary,
        _resolve_scorer(
            model_path,
            scorer,
            batch_size=batch_size,
            max_length=max_length,
            device=device,
            include_system=include_system,
        ),
        prompt_types,
        sigmoid,
    )


@register("harmlessness_rm", factory=True)
def harmlessness_rm(
    model_path: str | None = None,
    *,
    scorer: Scorer | None = None,
    prompt_types: str | Sequence[str] | None = GENERAL_PROMPT_TYPES,
    sigmoid: bool = True,
    batch_size: int = 16,
    max_length: int | None = None,
    device: str | None = None,
    include_system: bool = False,
) -> RewardFunc:
    """Harmlessness reward: a reward model's score of the whole output, reasoning and summary.

    >>> by_length = lambda prompts, responses: [float(len(r)) for r in responses]
    >>> reward = harmlessness_rm(scorer=by_length, sigmoid=False)
    >>> reward(["<think>ab</think>c", [{"role": "assistant", "content": "x"}]])
    [18.0, 1.0]
    """
    return ModelReward(
        "harmlessness_rm",
        _whole_output,
        _resolve_scorer(
            model_path,
            scorer,
            batch_size=batch_size,
            max_length=max_length,
            device=device,
            include_system=include_system,
        ),
        prompt_types,
        sigmoid,
    )
