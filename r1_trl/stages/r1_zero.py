"""R1-Zero: GRPO straight from a base model, rule-based rewards only (accuracy + format)."""

from __future__ import annotations

from typing import Any

from r1_trl.configs import R1GRPOConfig
from r1_trl.stages.grpo import run_grpo_stage

STAGE = "r1-zero"
CONFIG_CLASS = R1GRPOConfig


def run(config: R1GRPOConfig) -> dict[str, Any]:
    return run_grpo_stage(config, STAGE, language_metric="languages" in (config.task_kwargs or {}))
