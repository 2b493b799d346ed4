"""Every docstring example in the package runs and prints what it shows."""

import doctest
import importlib

import pytest

MODULES = [
    "reward_funcs.extraction",
    "r1_trl.data.tasks.arithmetic",
    "r1_trl.data.tasks.countdown",
    "r1_trl.data.reasoning",
    "r1_trl.data.templates",
    "r1_trl.data.decontaminate",
    "r1_trl.data.general",
    "r1_trl.models.corpus",
    "r1_trl.evaluation",
    "r1_trl.data.tasks.reasoning_gym",
    "r1_trl.data.benchmarks",
    "r1_trl.data.builders",
    "r1_trl.metrics",
    "reward_funcs.reasoning_gym",
    "reward_funcs._call_trace",
    "reward_funcs.code_exec",
    "r1_trl.cards",
    "r1_trl.stages.cold_start_data",
    "r1_trl.stages.rejection_sampling",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0, f"{name} has no examples"
    assert failures == 0
