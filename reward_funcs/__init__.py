"""Rule-based reward functions for R1-style training, with TRL's reward signature.

    >>> import reward_funcs
    >>> accuracy = reward_funcs.get("accuracy")
    >>> accuracy(["<think>3*4=12, 2+12=14</think><answer>14</answer>"], solution=["14"])
    [1.0]
"""

# Importing a reward module registers its rewards.
from reward_funcs import (  # noqa: F401
    accuracy,
    code_exec,
    countdown,
    formatting,
    language,
    length,
    model_based,
    reasoning_gym,
    repetition,
)
from reward_funcs.registry import (
    RewardFunc,
    UnknownRewardError,
    accepted_kwargs,
    check,
    get,
    guarded,
    is_import_path,
    names,
    register,
)

__all__ = ["RewardFunc", "UnknownRewardError", "accepted_kwargs", "check", "get", "guarded", "is_import_path", "names", "register"]
