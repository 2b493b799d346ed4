"""Prompt formats: the R1-Zero plain template for base models, and chat messages for instruct models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from datasets import Dataset

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>. User: {prompt}. Assistant:"
)

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. First think about the reasoning process, then give the answer. "
    "Enclose the reasoning in <think> </think> and the answer in <answer> </answer> tags."
)

TemplateName = Literal["r1_zero", "chat", "none"]
TEMPLATES: tuple[str, ...] = ("r1_zero", "chat", "none")


def r1_zero_prompt(problem: str, prefill_think: bool = False) -> str:
    """The paper's R1-Zero prompt for a base model.

    >>> r1_zero_prompt("What is 2 + 3 * 4?").endswith("User: What is 2 + 3 * 4?. Assistant:")
    True
    >>> r1_zero_prompt("What is 1 + 1?", prefill_think=True).endswith("Assistant: <think>")
    True
    """
    prompt = R1_ZERO_TEMPLATE.format(prompt=problem)
    return prompt + " <think>" if prefill_think else prompt


def chat_prompt(problem: str, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """Conversational prompt (TRL's conversational format); the tokenizer's chat template renders it.

    >>> chat_prompt("What is 1 + 1?", system_prompt=None)
    [{'role': 'user', 'content': 'What is 1 + 1?'}]
    """
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": problem}]


def format_prompt(
    problem: str,
    template: TemplateName = "r1_zero",
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    prefill_think: bool = False,
) -> str | list[dict[str, str]]:
    if template == "r1_zero":
        return r1_zero_prompt(problem, prefill_think)
    if template == "chat":
        if prefill_think:
            raise ValueError(
                "template='chat' with prefill_think: use a chat template that opens <think> in its "
                "generation prompt (R1-Distill style) and the format reward with think_prefilled=True"
            )
        return chat_prompt(problem, system_prompt)
    if template == "none":
        return problem + (" <think>" if prefill_think else "")
    raise ValueError(f"unknown prompt template {template!r}; known: {', '.join(TEMPLATES)}")


def apply_template(
    dataset: Dataset,
    template: TemplateName = "r1_zero",
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    prefill_think: bool = False,
    problem_column: str = "prompt",
) -> Dataset:
    """Rewrite the ``prompt`` column with the template; the raw problem is kept in ``problem``."""

    def render(row: dict[str, Any]) -> dict[str, Any]:
        problem = row.get("problem") or row[problem_column]
        return {"problem": problem, "prompt": format_prompt(problem, template, system_prompt, prefill_think)}

    return dataset.map(render, desc=f"template {template}")


THINK_OPEN = "<think>"


def _opened_think(rendered: Any) -> str:
    if not isinstance(rendered, str) or not rendered.rstrip().endswith(THINK_OPEN):
        return ""
    return rendered[rendered.rstrip().rfind(THINK_OPEN):]


def chat_template_opened_think(tokenizer: Any) -> str:
    """The ``<think>`` (with what follows it, e.g. ``"<think>\\n"``) the tokenizer's chat template ends its
    generation prompt with, as DeepSeek-R1-Distill's does; ``""`` when it opens none.

    >>> class Template:
    ...     def __init__(self, suffix): self.chat_template, self.suffix = "...", suffix
    ...     def apply_chat_template(self, messages, **kwargs): return "<|user|>q<|assistant|>" + self.suffix
    >>> chat_template_opened_think(Template("<think>\\n")), chat_template_opened_think(Template(""))
    ('<think>\\n', '')
    """
    if not getattr(tokenizer, "chat_template", None):
        return ""
    return _opened_think(tokenizer.apply_chat_template([{"role": "user", "content": "What is 1 + 1?"}],
                                                       add_generation_prompt=True, tokenize=False))


def chat_template_prefills_think(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template opens ``<think>`` in its generation prompt: the model's completion
    then starts inside the reasoning block (see `chat_template_opened_think`)."""
    return bool(chat_template_opened_think(tokenizer))


def opened_think(prompts: Sequence[Any], tokenizer: Any) -> str:
    """The ``<think>`` text the rendered prompts end with (``""``: none), decided by the first prompt: what a
    stage puts back in front of a sampled completion to store it whole, so that the prompt plus the stored
    completion renders as the model saw it.

    >>> opened_think([r1_zero_prompt("q", prefill_think=True)], None), opened_think(["q"], None)
    ('<think>', '')
    """
    if not len(prompts):
        return ""
    first = prompts[0]
    if isinstance(first, str):
        return _opened_think(first)
    return chat_template_opened_think(tokenizer) if tokenizer is not None else ""


def prompts_prefill_think(prompts: Sequence[Any], tokenizer: Any) -> bool:
    """Whether the rendered prompts end inside an opened ``<think>`` block, so that completions sampled after
    them start with the reasoning and carry no ``<think>`` of their own: plain-text prompts that end with it
    (``prefill_think``), or conversational prompts when the chat template opens it (see
    `chat_template_prefills_think`). Decided by the first prompt (a stage renders all of them alike).

    >>> prompts_prefill_think([r1_zero_prompt("q", prefill_think=True)], None), prompts_prefill_think(["q"], None)
    (True, False)
    """
    return bool(opened_think(prompts, tokenizer))


def think_prefill_reward_kwargs(
    names: Sequence[str], reward_kwargs: dict[str, dict[str, Any]] | None, prefilled: bool
) -> dict[str, dict[str, Any]]:
    """``reward_kwargs`` with ``think_prefilled=True`` added to every reward in ``names`` that takes it (the
    format rewards) when the prompts open ``<think>``; a value the recipe sets itself is kept.

    >>> think_prefill_reward_kwargs(["accuracy", "format"], {}, True)
    {'format': {'think_prefilled': True}}
    >>> think_prefill_reward_kwargs(["format"], {"format": {"think_prefilled": False}}, True)
    {'format': {'think_prefilled': False}}
    """
    import reward_funcs

    updated = {name: dict(kwargs) for name, kwargs in (reward_kwargs or {}).items()}
    if not prefilled:
        return updated
    for name in names:
        if "think_prefilled" in reward_funcs.accepted_kwargs(name):
            updated.setdefault(name, {}).setdefault("think_prefilled", True)
    return updated
