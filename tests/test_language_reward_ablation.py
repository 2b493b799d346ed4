"""The language-consistency reward does what R1 adds it for, in the tiny bilingual world.

A cold-start model trained on English-heavy readable data (1% Chinese) reads Chinese prompts but is weaker
when it reasons in Chinese. Reasoning RL without the language reward drifts to English reasoning on Chinese
prompts; with it, the reasoning stays in the prompt's language. Both arms: same start, prompts, seed, steps
and held-out set (benchmarks/language_reward.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset

from r1_trl.data.reasoning import readable_completion
from r1_trl.data.tasks.arithmetic import arithmetic_dataset
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages import sft

REPO = Path(__file__).resolve().parents[1]
ZH_SHARE = 0.01


def english_heavy_cold_start(path: Path, rows: int = 800) -> Path:
    problems = arithmetic_dataset(rows, seed=3, levels=2, languages=("en", "zh"), language_weights=(1 - ZH_SHARE, ZH_SHARE))
    records = [
        {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "completion": [{"role": "assistant",
                            "content": readable_completion(row["steps"], row["solution"], row["language"]).strip()}],
            "solution": row["solution"],
            "language": row["language"],
        }
        for row in problems
    ]
    assert sum(r["language"] == "zh" for r in records) == round(rows * ZH_SHARE)
    Dataset.from_list(records).save_to_disk(path)
    return path


@pytest.mark.slow
def test_language_reward_keeps_chinese_reasoning_that_rl_alone_abandons(tmp_path: Path) -> None:
    data = english_heavy_cold_start(tmp_path / "cold-start")
    config = load_recipe(recipe_path("tiny/cold_start_sft.yaml"), [
        "--sft_dataset", str(data), "--output_dir", str(tmp_path / "cold-start-sft"), "--eval_size", "16",
        "--eval_num_samples", "2"])
    sft.run(config)
    start = tmp_path / "cold-start-sft" / "checkpoint"

    run_dir = tmp_path / "ablation"
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "language_reward.py"), "--start", str(start), "--run-dir",
         str(run_dir), "--seeds", "42", "--set", "--max_steps", "60", "--eval_size", "100", "--learning_rate", "1e-4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| 42 | language_consistency/zh |" in completed.stdout
    arms = {row["arm"]: row for row in json.loads((run_dir / "summary.json").read_text())}
    before = arms["with"]["before"]
    with_reward, without = arms["with"]["after"], arms["without"]["after"]
    assert arms["without"]["before"] == before  # same start, same held-out set, same sampling seed

    # The cold-start model mostly answers Chinese prompts in Chinese, but is weaker there than in English.
    assert before["language_consistency/zh"] >= 0.5
    assert before["accuracy/zh"] < before["accuracy/en"]
    # Without the reward, RL drifts towards English reasoning on Chinese prompts; with it, the reasoning stays
    # Chinese. At lr 1e-4 (twice the recipe's, to make the drift quick) this held for RL seeds 1, 3, 7 and 42:
    # drops of 0.06-0.40 without the reward, none with it. At the recipe's 5e-5 the drift within 60 steps
    # was smaller for some seeds (0.03-0.04).
    assert without["language_consistency/zh"] <= before["language_consistency/zh"] - 0.05
    assert with_reward["language_consistency/zh"] >= before["language_consistency/zh"]
    assert with_reward["language_consistency/zh"] >= without["language_consistency/zh"] + 0.05
    # English prompts are unaffected either way.
    assert with_reward["language_consistency/en"] >= 0.95 and without["language_consistency/en"] >= 0.95
    assert (run_dir / "language_curves.png").stat().st_size > 10_000
