"""The stage registry: the one list of the pipeline's stages, in pipeline order.

The CLI, the pipeline runner, the model/dataset cards and the recipe checks all read `STAGES`; each stage
module exposes ``CONFIG_CLASS`` (its recipe dataclass) and ``run(config) -> results``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

Kind = Literal["training", "generation"]
Trainer = Literal["grpo", "sft"]


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # import path of the module with CONFIG_CLASS and run()
    kind: Kind  # training stages leave a checkpoint; generation stages leave datasets
    trainer: Trainer | None  # the TRL trainer a training stage extends
    help: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def config_class(self) -> type:
        return self.load().CONFIG_CLASS


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("r1-zero", "r1_trl.stages.r1_zero", "training", "grpo",
              "R1-Zero: GRPO from a base model with rule-based rewards."),
        Stage("cold-start-data", "r1_trl.stages.cold_start_data", "generation", None,
              "Stage 1 data: readable long-CoT examples (few-shot, direct prompting, refined R1-Zero outputs)."),
        Stage("cold-start-sft", "r1_trl.stages.sft", "training", "sft", "Stage 1: SFT on the cold-start data."),
        Stage("reasoning-rl", "r1_trl.stages.reasoning_rl", "training", "grpo",
              "Stage 2: GRPO with accuracy + format + language-consistency rewards."),
        Stage("rejection-sampling", "r1_trl.stages.rejection_sampling", "generation", None,
              "Stage 3: sample, keep correct/readable/single-language answers, mix non-reasoning data."),
        Stage("sft-2", "r1_trl.stages.sft", "training", "sft", "Stage 3: SFT on the rejection-sampled mix."),
        Stage("rl-all", "r1_trl.stages.rl_all", "training", "grpo",
              "Stage 4: GRPO on reasoning (rules) + general prompts (reward models)."),
        Stage("distill", "r1_trl.stages.distill", "training", "sft",
              "Distillation: teacher dataset + student SFT (optionally on-policy distillation)."),
    )
}  # fmt: skip

# Stages that are not steps of the pipeline but have recipes of their own.
AUXILIARY_STAGES: dict[str, Stage] = {
    "reward-model": Stage("reward-model", "r1_trl.stages.reward_model", "training", None,
                          "Reward model for rl-all (helpfulness or harmlessness), trained on preference pairs."),
}  # fmt: skip

SFT_STAGES: tuple[str, ...] = tuple(name for name, stage in STAGES.items() if stage.module == "r1_trl.stages.sft")


def get_stage(name: str) -> Stage:
    stage = STAGES.get(name) or AUXILIARY_STAGES.get(name)
    if stage is None:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return stage
