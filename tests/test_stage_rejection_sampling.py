"""Rejection sampling (R1 stage 3): the rules, dedupe, judge, mixing, stats, atomic write, and a real run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset, load_from_disk

import reward_funcs
from r1_trl.configs import RecipeError
from r1_trl.data.general import (
    CATEGORIES,
    GENERAL_LANGUAGES,
    format_reply,
    general_dataset,
    general_examples,
    sample_examples,
)
from r1_trl.data.reasoning import readable_completion
from r1_trl.data.tasks.arithmetic import solve
from r1_trl.models import random_tiny_model
from r1_trl.recipes import load_recipe
from r1_trl.stages import rejection_sampling as rs

REPO = Path(__file__).resolve().parents[1]
EXPRESSION = re.compile(r"\d+(?: [-+*] \d+)+")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_tiny_model(tmp_path_factory.mktemp("rs-model"))


def make_config(model: Path, output_dir: Path, **overrides) -> rs.RejectionSamplingConfig:
    fields = {
        "model_name_or_path": str(model),
        "output_dir": str(output_dir),
        "dataset_name": "arithmetic",
        "task_kwargs": {"levels": [2], "languages": ["en", "zh"]},
        "train_size": 6,
        "eval_size": 20,
        "decontaminate": False,
        "prompt_template": "chat",
        "num_generations": 4,
        "max_new_tokens": 256,  # the random tiny tokenizer spends ~3 tokens per Chinese character
        "language_candidates": ["en", "zh"],
        "seed": 3,
    }
    return rs.RejectionSamplingConfig(**{**fields, **overrides})


def solved(problem: str) -> tuple[list[str], str]:
    expression = EXPRESSION.search(problem).group()
    answer, steps = solve(expression.split())
    return steps, str(answer)


def problem_of(prompt) -> str:
    return prompt[-1]["content"] if isinstance(prompt, list) else prompt


def language_of(problem: str) -> str:
    return "zh" if "等于多少" in problem else "en"


def fake_generate(make_group, calls: list | None = None):
    """A stand-in for ``r1_trl.generation.generate`` whose outputs ``make_group(prompt, k)`` decides."""

    def generate(model, tokenizer, prompts, settings, engine=None, show_progress=False, **kwargs):
        if calls is not None:
            calls.append({"model": model, "prompts": list(prompts), "settings": settings})
        return [make_group(prompt, settings.num_samples) for prompt in prompts]

    return generate


def patch_generation(monkeypatch, generate) -> None:
    """Sample with ``generate`` for the policy and for the judge (both sharded over a launch)."""
    monkeypatch.setattr(rs, "generate_sharded", generate)


def crafted_group(prompt, k: int) -> list[str]:
    """Per prompt: a correct readable answer, its exact duplicate, a whitespace variant, a wrong answer, no format."""
    problem = problem_of(prompt)
    steps, answer = solved(problem)
    good = readable_completion(steps, answer, language_of(problem))
    wrong = readable_completion(steps, str(int(answer) + 1), language_of(problem))
    return [good, good, good.replace("\n", "\n\n"), wrong, f"The answer is {answer}."][:k]


# ---------------------------------------------------------------------------------------------------------
# The rules


SETTINGS = rs.FilterSettings(min_tokens=4, max_tokens=40, language_candidates=("en", "zh"))
EN_GOOD = "<think>First, 3 * 4 = 12. Then, 2 + 12 = 14.</think><answer>14</answer>"
ZH_GOOD = readable_completion(["3 * 4 = 12", "2 + 12 = 14"], "14", "zh")
WORDLESS = "<think>\n3 * 4 = 12\n2 + 12 = 14\n</think>\n<answer>\n14\n</answer>"
# (completion, language, solution, token count, expected first failing rule)
RULE_TABLE = [
    (EN_GOOD, "en", "14", 20, None),
    (ZH_GOOD, "zh", "14", 30, None),
    (WORDLESS, "zh", "14", 20, None),
    (EN_GOOD, "en", "14", 3, "too_short"),
    (EN_GOOD, "en", "14", 41, "too_long"),
    ("The answer is 14.", "en", "14", 10, "format"),
    ("<think>a</think><answer>14</answer><answer>14</answer>", "en", "14", 10, "format"),
    ("<think>First, 3 * 4 = 12. Then, 2 + 12 = 15.</think><answer>15</answer>", "en", "14", 20, "incorrect"),
    (EN_GOOD, "zh", "14", 20, "language"),
    ("<think>首先，3 * 4 = 12。Then we add two and get fourteen.</think><answer>14</answer>", "zh", "14", 20,
     "language"),
    ("<think>2 + 12 = 14 2 + 12 = 14 2 + 12 = 14 2 + 12 = 14</think><answer>14</answer>", "en", "14", 30,
     "repetition"),
    (EN_GOOD, "en", "", 20, "unverifiable"),
    # first failing rule wins
    ("The answer is 15, the answer is 15, the answer is 15.", "zh", "14", 50, "too_long"),
    ("The answer is 15.", "zh", "14", 10, "format"),
    ("<think>We add and get fifteen.</think><answer>15</answer>", "zh", "14", 10, "incorrect"),
    ("<think>First we add. First we add. First we add. First we add.</think><answer>14</answer>", "zh", "14", 20,
     "language"),
]


def test_each_rule_rejects_what_it_should():
    completions, languages, solutions, tokens, expected = zip(*RULE_TABLE, strict=True)
    checks = rs.check_completions(completions, solutions, languages, ["What is 2 + 3 * 4?"] * len(completions),
                                  tokens, SETTINGS)
    assert [check.reason for check in checks] == list(expected)
    # every rule the table names is a documented rule, and the table covers all but the judge's
    assert set(expected) - {None} == set(rs.REJECTION_RULES) - {"judge_rejected"}
    # failures() lists every failing rule in order; its head is the reason
    assert checks[-4].failures(SETTINGS) == ["too_long", "format", "incorrect", "language", "repetition"]
    for check in checks:
        assert (check.failures(SETTINGS) or [None])[0] == check.reason


def test_rule_thresholds_are_configurable():
    strict = rs.FilterSettings(min_tokens=4, max_tokens=40, language_candidates=("en", "zh"),
                               allow_wordless_reasoning=False, max_repetition=0.0)
    wordless, repetitive = rs.check_completions(
        [WORDLESS, RULE_TABLE[10][0]], ["14", "14"], ["en", "en"], ["q", "q"], [20, 20],
        rs.FilterSettings(min_tokens=4, max_tokens=40, allow_wordless_reasoning=False, max_repetition=0.7),
    )
    assert wordless.reason == "language" and repetitive.reason == "language"  # wordless both
    mild = "<think>First, 3 * 4 = 12. Then, 2 + 12 = 14. So 2 + 12 = 14 holds.</think><answer>14</answer>"
    (check,) = rs.check_completions([mild], ["14"], ["en"], ["q"], [20], strict)
    assert check.reason == "repetition" and 0 < check.repetition < 0.2
    assert rs.check_completions([mild], ["14"], ["en"], ["q"], [20], SETTINGS)[0].reason is None
    (prefilled,) = rs.check_completions(["First, 3 * 4 = 12.</think><answer>12</answer>"], ["12"], ["en"], ["q"],
                                        [10], rs.FilterSettings(think_prefilled=True, language_candidates=("en",)))
    assert prefilled.reason is None and prefilled.format == 1.0
    with pytest.raises(ValueError, match="solutions"):
        rs.check_completions(["a", "b"], ["1"], ["en", "en"], ["q", "q"], [1, 1], SETTINGS)


def test_language_is_detected_from_the_problem_without_a_language_column():
    checks = rs.check_completions([EN_GOOD, EN_GOOD], ["14", "14"], [None, None],
                                  ["What is 2 + 3 * 4?", "2 + 3 * 4 等于多少？"], [20, 20], SETTINGS)
    assert [c.reason for c in checks] == [None, "language"]


# ---------------------------------------------------------------------------------------------------------
# Deduplication and mixing


def test_dedupe_exact_then_whitespace_then_cap_per_prompt():
    candidates = [(0, "a b"), (0, "a b"), (0, " a\n b "), (0, "c"), (0, "d"), (1, "a b"), (1, "a b")]
    assert rs.select_unique(candidates) == ([0, 3, 4, 5], rs.SelectionCounts(2, 1, 0))
    kept, counts = rs.select_unique(candidates, max_per_prompt=2)
    assert kept == [0, 3, 5] and counts == rs.SelectionCounts(2, 1, 1)


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 0.9])
def test_general_share_is_the_closest_achievable(share):
    for reasoning in range(0, 150):
        general = rs.general_rows_needed(reasoning, share)
        error = abs(general / (reasoning + general) - share) if reasoning + general else 0.0
        best = min(abs(g / (reasoning + g) - share) for g in range(0, 20 * reasoning + 2) if reasoning + g)
        assert error <= best + 1e-12, (reasoning, general)
    assert rs.general_rows_needed(600_000, 0.25) == 200_000
    with pytest.raises(ValueError):
        rs.general_rows_needed(10, 1.0)


# ---------------------------------------------------------------------------------------------------------
# A whole run on controlled outputs: stats, dataset, results


def test_run_stats_dataset_and_results(tiny_model, tmp_path, monkeypatch):
    calls: list = []
    patch_generation(monkeypatch, fake_generate(crafted_group, calls))
    config = make_config(tiny_model, tmp_path / "stage", num_generations=5)
    results = rs.run(config)

    (call,) = calls
    assert call["model"] == str(tiny_model) and call["settings"].num_samples == 5
    stats = results["stats"]
    prompts = stats["prompts"]
    assert prompts == 6
    assert stats["generated"] == 30
    assert stats["rejected"] == {**dict.fromkeys(rs.REJECTION_RULES, 0), "incorrect": 6, "format": 6}
    assert stats["passed_filters"] == 18
    assert stats["duplicates_removed"] == {"exact": 6, "whitespace": 6}
    assert stats["kept_reasoning"] == 6 and stats["general_rows"] == 2 and stats["final_size"] == 8
    assert stats["general_share"] == 0.25
    assert stats["languages"] == {"en": {"prompts": 3, "generated": 15, "kept": 3},
                                  "zh": {"prompts": 3, "generated": 15, "kept": 3}}
    assert stats["source_checkpoint"] == str(tiny_model)
    assert stats["generation"]["num_generations"] == 5 and stats["generation"]["max_new_tokens"] == 256
    assert stats["filters"]["order"] == list(rs.REJECTION_RULES)
    assert results["metrics"]["acceptance_rate"] == pytest.approx(6 / 30)
    assert results["metrics"]["accuracy"] == pytest.approx(24 / 30)  # "The answer is N." is right, unformatted
    assert results["metrics"]["format_rate"] == pytest.approx(24 / 30)
    assert results["metrics"]["prompt_coverage"] == 1.0
    assert results["checkpoint"] is None

    path = Path(results["datasets"]["sft_mix"])
    assert path == (tmp_path / "stage" / "datasets" / "sft_mix").absolute()
    assert json.loads((path / "stats.json").read_text()) == json.loads(json.dumps(stats, default=str))
    on_disk = json.loads((tmp_path / "stage" / "results.json").read_text())
    assert on_disk["datasets"] == results["datasets"] and on_disk["metrics"] == results["metrics"]
    assert (tmp_path / "stage" / "recipe.yaml").is_file()

    mix = load_from_disk(str(path))
    assert len(mix) == 8 and Counter(mix["source"]) == {"reasoning": 6, "general": 2}
    assert {"prompt", "completion", "source", "language", "problem", "solution"} <= set(mix.column_names)
    for row in mix:
        assert row["prompt"][-1]["role"] == "user" and row["completion"][0]["role"] == "assistant"
        content = row["completion"][0]["content"]
        assert reward_funcs.get("format")([content]) == [1.0]
        if row["source"] == "reasoning":
            assert row["prompt"] == [{"role": "user", "content": row["problem"]}]
            assert content == crafted_group(row["prompt"], 1)[0].strip()
            assert reward_funcs.get("accuracy")([content], solution=[row["solution"]]) == [1.0]
        else:
            assert row["solution"] is None and "<think>\n</think>" in content


def test_r1_zero_prompts_become_chat_prompts_and_per_prompt_cap(tiny_model, tmp_path, monkeypatch):
    def two_distinct(prompt, k):
        assert isinstance(prompt, str) and prompt.startswith("A conversation between User and Assistant")
        steps, answer = solved(prompt)
        return [readable_completion(steps, answer, "en"), readable_completion(steps[::-1], answer, "en")] * (k // 2)

    patch_generation(monkeypatch, fake_generate(two_distinct))
    config = make_config(tiny_model, tmp_path / "stage", prompt_template="r1_zero", max_per_prompt=1,
                         task_kwargs={"levels": [2]}, general_share=0.5, system_prompt="Be brief.")
    stats = rs.run(config)["stats"]
    assert stats["over_per_prompt_cap"] == 6 and stats["kept_reasoning"] == 6 and stats["general_rows"] == 6
    assert stats["general_languages"] == ["en"]
    mix = load_from_disk(stats_path(tmp_path))
    assert {row["prompt"][0]["content"] for row in mix} == {"Be brief."}
    assert all(row["prompt"][1]["content"] == row["problem"] for row in mix)


def stats_path(tmp_path: Path) -> str:
    return str(tmp_path / "stage" / "datasets" / "sft_mix")


def test_too_few_survivors_fail_before_writing(tiny_model, tmp_path, monkeypatch):
    patch_generation(monkeypatch, fake_generate(lambda prompt, k: ["no format"] * k))
    with pytest.raises(RuntimeError, match=r"only 0 reasoning completions.*'format': 24"):
        rs.run(make_config(tiny_model, tmp_path / "stage"))
    assert not (tmp_path / "stage" / "datasets").exists()


# ---------------------------------------------------------------------------------------------------------
# The generative judge


def test_parse_verdict():
    table = {
        "Yes.": True, " yes, it matches": True, "NO": False, "No, 15 is not 14.": False,
        "<think>the reference says 14, yes</think> no": False, "正确": True, "不正确。": False, "是的": True,
        "不是": False, "maybe": None, "": None, "yesterday": None, "Nope": None,
        "<answer>yes</answer>": True, "Verdict: no": False, "**Yes**": True, '"no"': False,
        "这是错的": None, "The response is wrong, yes?": None, "I think yes": None,
    }
    assert {text: rs.parse_verdict(text) for text in table} == table


def test_apply_judge():
    reasons = ["format", "unverifiable", "unverifiable", "unverifiable", None]
    assert rs.apply_judge(reasons, {1: True, 2: False, 3: None}) == [
        "format", None, "judge_rejected", "judge_rejected", None]
    with pytest.raises(ValueError, match="judged"):
        rs.apply_judge(reasons, {0: True})


OPEN_PROBLEMS = [
    {"prompt": "Name a primary color.", "solution": ""},
    {"prompt": "What is 2 + 3?", "solution": "5"},
]
POLICY_OUTPUTS = {
    "Name a primary color.": [
        "<think>Red is one of the three primary colors.</think><answer>red</answer>",
        "<think>Green is a nice color.</think><answer>green</answer>",
        "<think>I am not sure about this.</think><answer>purple</answer>",
    ],
    "What is 2 + 3?": [
        "<think>We add two and three.</think><answer>5</answer>",
        "<think>We add two and three.</think><answer>6</answer>",
        "no format here",
    ],
}
JUDGE_REPLIES = {"red": "Yes, red is a primary color.", "green": "No.", "purple": "It depends."}


def judged_run(
    tiny_model: Path, tmp_path: Path, monkeypatch, judge: str | None, real_judge: bool = False
) -> tuple[dict, list]:
    data = tmp_path / "open.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in OPEN_PROBLEMS))
    calls: list = []
    real_generate = rs.generate_sharded

    def outputs(prompt, k):
        text = problem_of(prompt)
        if "Reference answer:" in text:
            answer = re.search(r"<answer>(\w+)</answer>", text).group(1)
            return [JUDGE_REPLIES[answer]] * k
        return POLICY_OUTPUTS[text][:k]

    policy_only = fake_generate(outputs, calls)

    def generate(model, tokenizer, prompts, settings, engine=None, show_progress=False, **kwargs):
        if real_judge and "Reference answer:" in problem_of(prompts[0]):
            calls.append({"model": model, "prompts": list(prompts), "settings": settings})
            return real_generate(model, tokenizer, prompts, settings, show_progress=show_progress)
        return policy_only(model, tokenizer, prompts, settings)

    patch_generation(monkeypatch, generate)
    config = make_config(tiny_model, tmp_path / "stage", dataset_name=str(data), task_kwargs=None, train_size=None,
                         eval_size=2, num_generations=3, judge_model_name_or_path=judge)
    return rs.run(config), calls


def test_judge_decides_only_what_the_rules_cannot(tiny_model, tmp_path, monkeypatch):
    results, calls = judged_run(tiny_model, tmp_path, monkeypatch, judge=str(tiny_model))
    policy_call, judge_call = calls
    assert judge_call["model"] == str(tiny_model) and judge_call["settings"].temperature == 0.0
    judge_texts = [problem_of(p) for p in judge_call["prompts"]]
    assert len(judge_texts) == 3  # only the three answers to the open question
    assert all("Problem: Name a primary color." in t and "Reference answer: (none given)" in t for t in judge_texts)
    assert all("<think>" not in t for t in judge_texts)  # the judge sees the final answer, not the reasoning
    stats = results["stats"]
    assert stats["judge"] == {"model": str(tiny_model), "judged": 3, "yes": 1, "no": 1, "unclear": 1}
    assert stats["rejected"]["judge_rejected"] == 2 and stats["rejected"]["unverifiable"] == 0
    assert stats["rejected"]["incorrect"] == 1 and stats["rejected"]["format"] == 1
    assert stats["kept_reasoning"] == 2
    mix = load_from_disk(stats_path(tmp_path))
    kept = sorted(row["completion"][0]["content"] for row in mix if row["source"] == "reasoning")
    assert kept == sorted([POLICY_OUTPUTS["Name a primary color."][0], POLICY_OUTPUTS["What is 2 + 3?"][0]])


def test_a_real_judge_model_is_sampled_greedily_and_its_verdicts_parsed(tiny_model, tmp_path, monkeypatch):
    results, calls = judged_run(tiny_model, tmp_path, monkeypatch, judge=str(tiny_model), real_judge=True)
    judge = results["stats"]["judge"]
    assert judge["judged"] == 3 and judge["yes"] + judge["no"] + judge["unclear"] == 3
    assert results["stats"]["kept_reasoning"] == 1 + judge["yes"]
    assert results["stats"]["rejected"]["judge_rejected"] == 3 - judge["yes"]
    verdicts, raw = rs.run_judge(rs.JudgeSettings(str(tiny_model), max_new_tokens=6), ["Name a color."], [""],
                                 ["<answer>red</answer>"])
    assert verdicts == [rs.parse_verdict(raw[0])] and isinstance(raw[0], str)
    plain = rs.judge_prompt("Name a color.", "red", "<think>hm</think><answer>blue</answer>", conversational=False)
    assert plain.endswith("Verdict:") and "Reference answer: red" in plain and "hm" not in plain


def test_without_a_judge_uncheckable_answers_are_rejected(tiny_model, tmp_path, monkeypatch):
    results, calls = judged_run(tiny_model, tmp_path, monkeypatch, judge=None)
    assert len(calls) == 1
    assert results["stats"]["rejected"]["unverifiable"] == 3 and results["stats"]["judge"] is None
    assert results["stats"]["kept_reasoning"] == 1


# ---------------------------------------------------------------------------------------------------------
# Atomic write and interruption


def test_interrupted_save_leaves_no_dataset_and_a_rerun_succeeds(tiny_model, tmp_path, monkeypatch):
    patch_generation(monkeypatch, fake_generate(crafted_group))
    config = make_config(tiny_model, tmp_path / "stage")
    target = Path(stats_path(tmp_path))
    original_save = Dataset.save_to_disk

    def crash_half_way(self, dataset_path, *args, **kwargs):
        original_save(self, dataset_path, *args, **kwargs)
        assert Path(dataset_path).parent == target.parent and Path(dataset_path) != target
        raise KeyboardInterrupt("interrupted half way")

    monkeypatch.setattr(Dataset, "save_to_disk", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        rs.run(config)
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert not (tmp_path / "stage" / "results.json").exists()

    monkeypatch.setattr(Dataset, "save_to_disk", original_save)
    results = rs.run(config)
    assert len(load_from_disk(str(target))) == results["stats"]["final_size"] == 6 + 2


KILL_SCRIPT = """
import json, os, re, signal, sys
from datasets import Dataset
from r1_trl.data.reasoning import readable_completion
from r1_trl.data.tasks.arithmetic import solve
from r1_trl.stages import rejection_sampling as rs

def generate(model, tokenizer, prompts, settings, engine=None, show_progress=False, **kwargs):
    solved = [solve(re.search(r"\\d+(?: [-+*] \\d+)+", p).group().split()) for p in prompts]
    return [[readable_completion(steps, str(answer))] * settings.num_samples for answer, steps in solved]

def save_then_die(self, path, *args, **kwargs):
    original(self, path, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # dies after the data files, before stats.json and the rename

original = Dataset.save_to_disk
rs.generate_sharded = generate
Dataset.save_to_disk = save_then_die
rs.run(rs.RejectionSamplingConfig(**json.loads(sys.argv[1])))
"""


def test_killed_process_leaves_no_partial_dataset(tiny_model, tmp_path, monkeypatch):
    target = Path(stats_path(tmp_path))
    fields = {"model_name_or_path": str(tiny_model), "output_dir": str(tmp_path / "stage"), "train_size": 4,
              "eval_size": 4, "decontaminate": False, "num_generations": 2, "language_candidates": ["en"],
              "max_new_tokens": 256}
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(fields)], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    staged = list(target.parent.glob(".sft_mix.staging-*"))
    assert len(staged) == 1 and any(staged[0].glob("*.arrow"))  # it really died half way through the write
    assert not target.exists()

    patch_generation(monkeypatch, fake_generate(crafted_group))
    results = rs.run(rs.RejectionSamplingConfig(**fields))
    assert not list(target.parent.glob(".sft_mix.*"))  # the stale staging folder is gone
    assert (target / "stats.json").is_file() and results["stats"]["generated"] == 8
    assert results["stats"]["kept_reasoning"] == 4 and len(load_from_disk(str(target))) == 4 + 1


DISTRIBUTED_WORKER = """
import json, os, re, sys
from pathlib import Path
from r1_trl.data.reasoning import readable_completion
from r1_trl.data.tasks.arithmetic import solve
from r1_trl.distributed import exit_distributed
from r1_trl import generation
from r1_trl.stages import rejection_sampling as rs

out = Path(sys.argv[2])

def generate(model, tokenizer, prompts, settings, engine=None, show_progress=False, first_batch=0):
    problems = [p[-1]["content"] if isinstance(p, list) else p for p in prompts]
    (out / f"prompts{os.environ['RANK']}.json").write_text(json.dumps(problems))
    solved = [solve(re.search(r"\\d+(?: [-+*] \\d+)+", p).group().split()) for p in problems]
    return [[readable_completion(steps, str(answer))] * settings.num_samples for answer, steps in solved]

generation.generate = generate  # generate_sharded shares the prompts out and calls it on each rank's share
results = rs.run(rs.RejectionSamplingConfig(**json.loads(sys.argv[1])))
(out / f"results{os.environ['RANK']}.json").write_text(json.dumps(sorted(results)))
exit_distributed(0)
"""


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_share_the_prompts_and_the_main_one_writes(tiny_model, tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"
    worker.write_text(DISTRIBUTED_WORKER)
    fields = {"model_name_or_path": str(tiny_model), "output_dir": str(tmp_path / "stage"), "train_size": 7,
              "eval_size": 4, "decontaminate": False, "num_generations": 2, "language_candidates": ["en"],
              "max_new_tokens": 256, "prompt_template": "chat", "generation_batch_size": 2}  # one prompt per batch
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(worker), json.dumps(fields), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    shards = [json.loads((tmp_path / f"prompts{rank}.json").read_text()) for rank in (0, 1)]
    assert len(shards[0]) == 4 and len(shards[1]) == 3 and not set(shards[0]) & set(shards[1])
    assert json.loads((tmp_path / "results1.json").read_text()) == ["stage"]
    assert "datasets" in json.loads((tmp_path / "results0.json").read_text())
    distributed = load_from_disk(stats_path(tmp_path))

    patch_generation(monkeypatch, fake_generate(lambda prompt, k: [crafted_group(prompt, 1)[0]] * k))
    single = rs.run(rs.RejectionSamplingConfig(**{**fields, "output_dir": str(tmp_path / "single")}))
    assert {row["problem"] for row in distributed if row["source"] == "reasoning"} == set(shards[0] + shards[1])
    assert sorted(distributed["problem"]) == sorted(load_from_disk(single["datasets"]["sft_mix"])["problem"])
    stats = json.loads((Path(stats_path(tmp_path)) / "stats.json").read_text())
    assert stats["generation"]["processes"] == 2 and stats["generated"] == 14 and stats["kept_reasoning"] == 7


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_rewrite_replaces_an_existing_dataset(tmp_path):
    target = tmp_path / "sets" / "sft_mix"
    rs.save_dataset_atomic(Dataset.from_dict({"x": [1, 2]}), target, {"rows": 2})
    rs.save_dataset_atomic(Dataset.from_dict({"x": [3]}), target, {"rows": 1})
    assert load_from_disk(str(target))["x"] == [3]
    assert json.loads((target / "stats.json").read_text()) == {"rows": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["sft_mix"]


# ---------------------------------------------------------------------------------------------------------
# A real run: random tiny model, real sampling


def test_end_to_end_on_a_random_tiny_model(tiny_model, tmp_path):
    config = make_config(tiny_model, tmp_path / "stage", train_size=4, num_generations=2, max_new_tokens=12,
                         min_reasoning_rows=0, general_share=0.25)
    results = rs.run(config)
    stats = results["stats"]
    assert stats["generated"] == 8 and stats["generation"]["backend"] == "transformers"
    assert stats["rejected_total"] + stats["passed_filters"] == 8
    duplicates = sum(stats["duplicates_removed"].values())
    assert stats["passed_filters"] == stats["kept_reasoning"] + duplicates + stats["over_per_prompt_cap"]
    assert stats["general_rows"] == rs.general_rows_needed(stats["kept_reasoning"], 0.25)
    assert len(load_from_disk(results["datasets"]["sft_mix"])) == stats["final_size"]
    assert 0.0 <= results["metrics"]["acceptance_rate"] <= 1.0


# ---------------------------------------------------------------------------------------------------------
# Recipe and config


def test_tiny_recipe_loads_within_budget():
    config = load_recipe(REPO / "recipes" / "tiny" / "rejection_sampling.yaml", [], rs.CONFIG_CLASS)
    assert isinstance(config, rs.RejectionSamplingConfig)
    assert config.task_kwargs == {"levels": [2], "languages": ["en", "zh"]}
    # readable cold-start style answers take ~90-110 tokens: the budget must not truncate them
    assert config.train_size * config.num_generations <= 4800 and 128 <= config.max_new_tokens <= 160
    assert config.general_share == 0.25 and config.torch_num_threads == 1
    assert config.completion_token_limit == config.max_new_tokens - 1  # a completion that hit the budget is cut off


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_generations": 0}, "num_generations"),
        ({"top_p": 0.0}, "top_p"),
        ({"language_threshold": 1.5}, "language_threshold"),
        ({"max_repetition": -0.1}, "max_repetition"),
        ({"general_share": 1.0}, "general_share"),
        ({"general_think_style": "long"}, "general_think_style"),
        ({"general_languages": ["fr"]}, "general_languages"),
        ({"max_per_prompt": 0}, "max_per_prompt"),
        ({"min_completion_tokens": 10, "max_completion_tokens": 5}, "max_completion_tokens"),
        ({"language_candidates": ["klingon"]}, "language_candidates"),
        ({"prompt_template": "fancy"}, "prompt_template"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(RecipeError, match=f"^{field}:"):
        rs.RejectionSamplingConfig(**overrides)


# ---------------------------------------------------------------------------------------------------------
# General (non-reasoning) data


def test_general_pool_covers_both_languages_and_all_categories_without_reasoning():
    pool = general_examples()
    assert len(pool) == len(set(pool)) > 300
    assert {(e.language, e.category) for e in pool} == {(lang, c) for lang in GENERAL_LANGUAGES for c in CATEGORIES}
    for example in pool:
        is_chinese = bool(re.search(r"[\u4e00-\u9fff]", example.prompt.split("：")[0].split(":")[0]))
        assert is_chinese == (example.language == "zh"), example
    replies = [format_reply(e.reply) for e in pool]
    assert all(r.startswith("<think>\n</think>") for r in replies)
    assert set(reward_funcs.get("format")(replies)) == {1.0}
    translation = {e.prompt: e.reply for e in pool if e.category == "translation"}
    assert translation["把这句话翻译成中文：“The cat is sleeping.”"] == "猫在睡觉。"
    assert translation['Translate into English: "猫在睡觉。"'] == "The cat is sleeping."


def test_general_sampling_is_balanced_deterministic_and_repeats_only_past_the_pool():
    first = sample_examples(48, ["en", "zh"], seed=1)  # 6 rounds over the 8 strata (6 greetings each)
    assert first == sample_examples(48, ["en", "zh"], seed=1) != sample_examples(48, ["en", "zh"], seed=2)
    assert Counter(e.language for e in first) == {"en": 24, "zh": 24}
    assert set(Counter(e.category for e in first).values()) == {12}
    assert len(set(first)) == 48
    pool_size = len(general_examples())
    assert len(set(sample_examples(pool_size, seed=0))) == pool_size
    assert len(sample_examples(pool_size + 5, seed=0)) == pool_size + 5
    rows = general_dataset(6, ["zh"], think_style="none", system_prompt="S")
    assert set(rows["language"]) == {"zh"} and rows[0]["prompt"][0] == {"role": "system", "content": "S"}
    assert "<think>" not in rows[0]["completion"][0]["content"]
    with pytest.raises(ValueError, match="languages"):
        general_examples(["fr"])


def test_a_chat_template_that_opens_think_is_counted_and_restored(tiny_model, tmp_path, monkeypatch):
    """A DeepSeek-R1-Distill-style template ends the generation prompt with "<think>\\n": samples start inside
    the reasoning. The rules count the opened <think> and the stored completion carries it again."""
    import shutil

    from transformers import AutoTokenizer

    model = tmp_path / "prefilled"
    shutil.copytree(tiny_model, model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = tokenizer.chat_template.replace("Assistant:{%- endif -%}",
                                                              "Assistant: <think>\n{%- endif -%}")
    tokenizer.save_pretrained(model)

    def inside_think(prompt, k):
        return [text.strip().removeprefix("<think>") for text in crafted_group(prompt, k)]

    patch_generation(monkeypatch, fake_generate(inside_think))
    results = rs.run(make_config(model, tmp_path / "stage", num_generations=5))
    assert results["stats"]["kept_reasoning"] == 6, results["stats"]["rejected"]
    mix = load_from_disk(results["datasets"]["sft_mix"])
    for row in mix.filter(lambda r: r["source"] == "reasoning"):
        assert row["completion"][0]["content"] == crafted_group(row["prompt"], 1)[0].strip()
