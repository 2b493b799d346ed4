"""R1 stage 2: reasoning-oriented RL from the cold-start checkpoint, with the language-consistency reward.

The same GRPO machinery as R1-Zero; the recipe adds ``language_consistency`` to the rewards (paper:
accuracy + language, e.g. weights 1.0 / 0.2) and the held-out metrics include language consistency.
"""

from __future__ import annotations

from typing import Any

from r1_trl.configs import R1GRPOConfig
from r1_trl.stages.grpo import run_grpo_stage

STAGE = "reasoning-rl"
CONFIG_CLASS = R1GRPOConfig


def run(config: R1GRPOConfig) -> dict[str, Any]:
    return run_grpo_stage(config, STAGE, language_metric=True)
