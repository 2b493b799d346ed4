"""Helpers shared by every reward: turn TRL completions into text and slice per-row kwargs."""

from __future__ import annotations

from typing import Any

Completion = str | list[dict[str, Any]]


def completion_to_text(completion: Completion) -> str:
    """Return the text of one completion in either TRL format.

    Standard format is a plain string. Conversational format is a list of messages; the assistant
    turns are joined (a completion normally holds a single assistant message).

    >>> completion_to_text("<answer>4</answer>")
    '<answer>4</answer>'
    >>> completion_to_text([{"role": "assistant", "content": "<answer>4</answer>"}])
    '<answer>4</answer>'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _message_text(completion)
    if isinstance(completion, list | tuple):
        parts = [_message_text(m) for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        if not parts:
            parts = [_message_text(m) for m in completion if isinstance(m, dict)]
        return "\n".join(parts)
    return "" if completion is None else str(completion)


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content blocks
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return "" if content is None else str(content)


def row_kwargs(kwargs: dict[str, Any], index: int, batch_size: int) -> dict[str, Any]:
    """The keyword arguments of one row: per-row lists are indexed, everything else passes through."""
    return {
        key: [value[index]] if isinstance(value, list) and len(value) == batch_size else value
        for key, value in kwargs.items()
    }


def column(kwargs: dict[str, Any], name: str, batch_size: int, default: Any = None) -> list[Any]:
    """A dataset column from the reward kwargs, broadcast to the batch size when it is a scalar."""
    value = kwargs.get(name, default)
    if isinstance(value, list) and len(value) == batch_size:
        return value
    return [value] * batch_size
