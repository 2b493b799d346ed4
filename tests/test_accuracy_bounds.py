"""Time bounds of the accuracy reward: a batch of any content returns by its deadline, rows judged in parallel,
extraction included; and the recipe fields that set the bound and the pool size."""

from __future__ import annotations

import threading
import time

import pytest

import reward_funcs
from r1_trl.configs import R1GRPOConfig, RecipeError
from r1_trl.trainers import build_reward_funcs
from reward_funcs import _verify_client
from reward_funcs.accuracy import accuracy

MARGIN = 2.5  # seconds of slack for a loaded 2-core machine (killing and restarting workers, scheduling)


def gamma(k: int) -> str:
    """An answer SymPy grinds on for far longer than any timeout here; each k is a distinct job."""
    return f"\\boxed{{\\Gamma(10^{{10}}+{k})}}"


@pytest.fixture(autouse=True)
def warm_pool() -> None:
    assert _verify_client.start_workers(4, timeout=120)


def adversarial_batch() -> tuple[list[str], list[str], list[float]]:
    """64 completions, their golds and their right scores: 16 distinct answers SymPy grinds on (each scores 0
    when judged at all), then ordinary answers, then huge and deeply nested ones."""
    rows = [(gamma(k), "x+1", 0.0) for k in range(16)]
    rows += [(f"<answer>{k}</answer>", "7", float(k == 7)) for k in range(38)]
    rows += [("<answer>1" + " ." * 200_000 + "</answer>", "1", 1.0)] * 4  # 400 KB: was 8 s of extraction
    rows += [("<answer>" + "\\text{" * 10_000 + "A" + "}" * 10_000 + "</answer>", "B", 0.0)] * 4
    rows += [(("so we get 12 apples " * 50_000) + "14", "14", 1.0)] * 2  # a megabyte of prose
    return [row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows]


def test_a_batch_of_anything_returns_by_its_deadline_with_the_rest_none() -> None:
    completions, golds, right = adversarial_batch()
    metrics: dict[str, float] = {}
    started = time.monotonic()
    scores = accuracy(completions, solution=golds, timeout=5.0, batch_timeout=4.0, num_workers=4,
                      log_metric=metrics.__setitem__)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0 + MARGIN
    assert [score for score in scores if score is not None] == [r for r, s in zip(right, scores, strict=True) if s is not None]
    # every row had a quick attempt before the slow ones got their full timeout: the ordinary rows behind the
    # 16 slow ones were all judged (the huge ones may need more than a quick attempt on a loaded machine)
    assert scores[16:54] == right[16:54]
    assert metrics["accuracy/unfinished"] == sum(score is None for score in scores) > 0  # 16 x 4 s cannot fit
    assert _verify_client.start_workers(4, timeout=120)  # the workers killed at the deadline were replaced


def test_without_a_deadline_every_row_is_judged() -> None:
    completions = ["<answer>1" + " ." * 200_000 + "</answer>", "<answer>" + "\\text{" * 10_000 + "B" + "}" * 10_000
                   + "</answer>", ("so we get 12 apples " * 50_000) + "14", "<answer>B or C</answer>"]
    metrics: dict[str, float] = {}
    started = time.monotonic()
    scores = accuracy(completions, solution=["1", "B", "14", "B"], log_metric=metrics.__setitem__)
    assert scores == [1.0, 1.0, 1.0, 0.0]
    assert time.monotonic() - started < 5.0  # extraction is linear: these take milliseconds
    assert metrics == {"accuracy/timeouts": 0.0}  # no deadline, no unfinished metric


def test_independent_completions_are_judged_in_parallel() -> None:
    timeout = 2.0
    soft = timeout * _verify_client.SOFT_TIMEOUT_FRACTION  # each slow answer is cut off after this (wall clock)
    metrics: dict[str, float] = {}
    started = time.monotonic()
    scores = accuracy([gamma(100 + k) for k in range(4)], solution=["x+1"] * 4, timeout=timeout, num_workers=4,
                      log_metric=metrics.__setitem__)
    elapsed = time.monotonic() - started
    assert scores == [0.0] * 4 and metrics["accuracy/timeouts"] == 4.0
    assert elapsed < 2 * soft + MARGIN < 4 * soft  # one after another would take 4 soft timeouts


def test_waiting_for_a_busy_pool_counts_against_the_deadline() -> None:
    slow: list[list[float | None]] = []
    holder = threading.Thread(target=lambda: slow.append(
        accuracy([gamma(200 + k) for k in range(4)], solution=["x+1"] * 4, timeout=3.0, num_workers=2)))
    holder.start()
    time.sleep(0.3)  # the holder has the pool
    metrics: dict[str, float] = {}
    started = time.monotonic()
    scores = accuracy(["<answer>7</answer>"] * 3, solution=["7", "8", "7"], batch_timeout=1.0,
                      log_metric=metrics.__setitem__)
    assert time.monotonic() - started < 1.0 + MARGIN
    assert scores == [None] * 3 and metrics["accuracy/unfinished"] == 3.0  # the pool stayed busy past 1 s
    holder.join(timeout=60)
    assert slow == [[0.0] * 4]


def test_worker_start_up_counts_against_the_deadline() -> None:
    _verify_client.shutdown()
    metrics: dict[str, float] = {}
    started = time.monotonic()
    scores = accuracy(["<answer>7</answer>", "<answer>8</answer>"], solution=["7", "7"], batch_timeout=0.05,
                      log_metric=metrics.__setitem__)
    assert time.monotonic() - started < 0.05 + MARGIN
    assert scores == [None, None] and metrics["accuracy/unfinished"] == 2.0
    assert accuracy(["<answer>7</answer>"], solution=["7"], batch_timeout=60.0) == [1.0]


def test_bad_bounds_are_refused() -> None:
    for bad in (0, -1.0, float("inf"), float("nan"), True, "10"):
        with pytest.raises(ValueError, match="batch_timeout"):
            reward_funcs.get("accuracy", batch_timeout=bad)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="num_workers"):
            reward_funcs.get("accuracy", num_workers=bad)


# --- recipe fields -----------------------------------------------------------------------------------------


def grpo(**overrides: object) -> R1GRPOConfig:
    settings: dict[str, object] = {"output_dir": "/tmp/r1-trl-test-bounds", "model_name_or_path": "tiny",
                                   "dataset_name": "arithmetic", "use_cpu": True, "report_to": "none",
                                   "per_device_train_batch_size": 8, "num_generations": 8}
    return R1GRPOConfig(**{**settings, **overrides})


@pytest.mark.parametrize(("field", "value"), [("reward_batch_timeout", 0), ("reward_batch_timeout", -3.0),
                                              ("reward_batch_timeout", float("inf")), ("reward_num_workers", 0),
                                              ("reward_num_workers", 2.5)])
def test_recipe_fields_are_validated_by_name(field: str, value: object) -> None:
    with pytest.raises(RecipeError, match=field):
        grpo(**{field: value})


def test_recipe_fields_reach_every_reward_that_accepts_them() -> None:
    config = grpo(reward_funcs=["accuracy", "format", "cosine_scaled", "length"], reward_batch_timeout=7.0,
                  reward_num_workers=3, reward_kwargs={"length": {"batch_timeout": 2.0}})
    assert config.reward_settings("accuracy") == {"batch_timeout": 7.0, "num_workers": 3}
    assert config.reward_settings("format") == {}
    assert config.reward_settings("cosine_scaled") == {"batch_timeout": 7.0, "num_workers": 3}
    assert config.reward_settings("length") == {"batch_timeout": 2.0, "num_workers": 3}  # explicit kwargs win
    accuracy_reward, format_reward, cosine, length = build_reward_funcs(
        config.reward_funcs, config.reward_kwargs, config.reward_batch_timeout, config.reward_num_workers)
    assert accuracy_reward.func.keywords == {"timeout": 5.0, "batch_timeout": 7.0, "num_workers": 3}
    assert cosine.func.keywords["correctness"].keywords == {"batch_timeout": 7.0, "num_workers": 3}
    assert length.func.keywords["correctness"].keywords == {"batch_timeout": 2.0, "num_workers": 3}
    assert accuracy_reward(["<answer>7</answer>"], solution=["7"]) == [1.0]


def test_reward_settings_examples() -> None:
    import doctest

    import r1_trl.configs

    results = doctest.testmod(r1_trl.configs, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 2 and results.failed == 0


def test_default_recipe_bounds_every_batch() -> None:
    config = grpo()
    assert config.reward_batch_timeout is not None and config.reward_batch_timeout > 0
    assert config.reward_settings("accuracy")["batch_timeout"] == config.reward_batch_timeout
