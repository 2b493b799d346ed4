"""Cold-start data stage: R1-Zero output parsing and rewriting, verification filters, builder stats, atomic write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from datasets import Dataset, load_from_disk

from r1_trl.configs import RecipeError
from r1_trl.data.reasoning import SPECIAL_TOKEN
from r1_trl.data.tasks.arithmetic import check_steps, derivation, parse_steps, solve, translate_question
from r1_trl.data.templates import R1_ZERO_TEMPLATE
from r1_trl.models import random_tiny_model
from r1_trl.recipes import load_recipe
from r1_trl.stages import cold_start_data
from r1_trl.stages.cold_start_data import (
    ColdStartDataConfig,
    refine_r1_zero_output,
    rejection_reasons,
    save_dataset_atomic,
)
from reward_funcs.formatting import has_r1_format

REPO = Path(__file__).resolve().parents[1]
TASK_KWARGS = {"levels": [2], "languages": ["en", "zh"]}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_tiny_model(tmp_path_factory.mktemp("random-tiny"))


def r1_zero_output(steps: list[str], answer: object) -> str:
    body = "\n".join(steps)
    return f" <think>\n{body}\n</think>\n<answer>\n{answer}\n</answer>"


# --- parsing and rewriting -----------------------------------------------------------------------------


def test_refine_rewrites_correct_steps_in_the_prompt_language() -> None:
    output = r1_zero_output(["9 * 3 = 27", "27 - 6 = 21"], 21)
    english, reason = refine_r1_zero_output(output, "What is 9 * 3 - 6?", "21", "en", "think", derivation)
    assert reason is None
    assert english == (
        "<think>\nFirst, 9 * 3 = 27.\nThen, 27 - 6 = 21.\nCheck: 21 + 6 = 27, so it holds.\n"
        "So the answer is 21.\n</think>\n<answer>\n21\n</answer>"
    )
    chinese, _ = refine_r1_zero_output(output, "9 * 3 - 6 等于多少？", "21", "zh", "think", derivation)
    assert chinese is not None and "首先，9 * 3 = 27。" in chinese and "So the answer" not in chinese
    assert has_r1_format(english) and has_r1_format(chinese)


def test_refine_special_token_format() -> None:
    text, reason = refine_r1_zero_output(r1_zero_output(["2 + 3 = 5"], 5), "What is 2 + 3?", "5", "en",
                                         "special_token", derivation)
    assert reason is None and text is not None
    assert text.startswith(SPECIAL_TOKEN) and text.count(SPECIAL_TOKEN) == 2
    assert text.endswith("Summary: the answer is 5.") and "<think>" not in text


@pytest.mark.parametrize(
    ("output", "problem", "answer", "reason"),
    [
        ("no tags at all, 3 * 4 = 12", "What is 3 * 4?", "12", "unparsable"),
        (r1_zero_output(["the product is twelve"], 12), "What is 3 * 4?", "12", "unparsable"),
        (r1_zero_output(["3 * 4 = 13"], 12), "What is 3 * 4?", "12", "invalid_step"),
        (r1_zero_output(["6 * 2 = 12"], 12), "What is 3 * 4?", "12", "steps_not_grounded"),
        (r1_zero_output(["3 * 4 = 12", "12 + 1 = 13"], 12), "What is 3 * 4 + 1?", "12", "steps_do_not_reach_answer"),
    ],
)
def test_refine_discards_outputs_that_do_not_check_out(output: str, problem: str, answer: str, reason: str) -> None:
    assert refine_r1_zero_output(output, problem, answer, "en", "think", derivation) == (None, reason)


def test_parse_steps_reads_negative_numbers_and_ignores_other_text() -> None:
    assert parse_steps("2 - 9 = -7\nso -7 * 3 = -21, done; version 1.2 = 3") == [(2, "-", 9, -7), (-7, "*", 3, -21)]
    assert check_steps(parse_steps("2 - 9 = -7\n-7 * 3 = -21"), "What is (2 - 9) * 3?", "-21") is None


def test_prefilled_think_is_restored_before_parsing() -> None:
    text, reason = refine_r1_zero_output("\n1 + 1 = 2\n</think>\n<answer>\n2\n</answer>", "What is 1 + 1?", "2",
                                         "en", "think", derivation, think_prefilled=True)
    assert reason is None and text is not None and "First, 1 + 1 = 2." in text


def test_translate_question_between_known_forms() -> None:
    assert translate_question("(2 + 3) * 4 等于多少？", "en") == "What is (2 + 3) * 4?"
    assert translate_question("What is 7 - 1?", "zh") == "7 - 1 等于多少？"
    assert translate_question("Compute 7 - 1.", "en") is None


# --- verification --------------------------------------------------------------------------------------


def test_rejection_reasons_name_the_first_failed_check() -> None:
    good_en = "<think>\nFirst, 2 + 3 = 5.\nSo the answer is 5.\n</think>\n<answer>\n5\n</answer>"
    good_zh = "<think>\n首先，2 + 3 = 5。\n所以答案是 5。\n</think>\n<answer>\n5\n</answer>"
    texts = [
        good_en,
        good_zh,
        "First, 2 + 3 = 5. <answer>5</answer>",  # no think block
        good_en.replace("<answer>\n5", "<answer>\n6"),
        good_en,  # English reasoning for a Chinese prompt
        "<think>\n2 + 3 = 5\n</think>\n<answer>\n5\n</answer>",  # correct but bare: no step structure
    ]
    languages = ["en", "zh", "en", "en", "zh", "en"]
    reasons = rejection_reasons(texts, ["5"] * len(texts), languages, "think")
    assert reasons == [None, None, "ill_formed", "wrong_answer", "mixed_language", "no_step_structure"]


def test_special_token_outputs_are_checked_in_their_own_layout() -> None:
    good = f"{SPECIAL_TOKEN}首先，2 + 3 = 5。\n所以答案是 5。{SPECIAL_TOKEN}总结：答案是 5。"
    missing_summary = f"{SPECIAL_TOKEN}First, 2 + 3 = 5.{SPECIAL_TOKEN}  "
    assert rejection_reasons([good, missing_summary], ["5", "5"], ["zh", "en"], "special_token") == [
        None, "ill_formed"
    ]


# --- the builder end to end ----------------------------------------------------------------------------

_QUESTION_IN_R1_ZERO_PROMPT = re.compile(re.escape(R1_ZERO_TEMPLATE.split("{prompt}")[0]) + r"(.*)\. Assistant:",
                                         re.DOTALL)


class FakeSampler:
    """Stands in for the models: R1-Zero style outputs for R1-Zero prompts, chatter for the other methods.

    For each R1-Zero prompt, by the expression's first operand: a correct derivation (odd), a wrong answer
    (2 or 4), a correct answer with a wrong step (6), no reasoning block (8).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.questions: list[str] = []

    def __call__(self, model_path: str, prompts: list, max_new_tokens: int) -> list[list[str]]:
        self.calls.append((model_path, len(prompts), max_new_tokens))
        outputs = []
        for prompt in prompts:
            if not isinstance(prompt, str) or not prompt.startswith(R1_ZERO_TEMPLATE[:40]):
                outputs.append(["I think the answer is maybe 3"])
                continue
            question = _QUESTION_IN_R1_ZERO_PROMPT.match(prompt).group(1)
            self.questions.append(question)
            expression = question.removeprefix("What is ").rstrip("?")
            tokens = expression.replace("(", "( ").replace(")", " )").split()
            answer, steps = solve(tokens)
            first = int(tokens[0].strip("()") or tokens[1])
            if first % 2:
                outputs.append([r1_zero_output(steps, answer)])
            elif first in (2, 4):
                outputs.append([r1_zero_output(steps, answer + 1)])
            elif first == 6:
                outputs.append([r1_zero_output([steps[0].replace("=", "= 1 +")] + steps[1:], answer)])
            else:
                outputs.append([f"The answer is {answer}."])
        return outputs


def cold_start_config(tmp_path: Path, model: Path, **overrides: object) -> ColdStartDataConfig:
    fields = {
        "output_dir": str(tmp_path / "cold-start-data"),
        "model_name_or_path": str(model),
        "task_kwargs": TASK_KWARGS,
        "train_size": 300,
        "eval_size": 20,
        "target_size": 40,
        "num_samples": 1,
        "few_shot_pool_size": 8,
        "batch_problems": 16,
        "problem_budget": {"few_shot": 16, "direct": 16},
        "refine_sampling_language": "en",
        "seed": 3,
        "torch_num_threads": 1,
    }
    fields.update(overrides)
    return ColdStartDataConfig(**fields)


def test_builder_keeps_only_verified_readable_examples(tmp_path: Path, tiny_model: Path) -> None:
    sampler = FakeSampler()
    config = cold_start_config(tmp_path, tiny_model, refine_max_new_tokens=48)
    results = cold_start_data.run(config, sampler=sampler)

    path = Path(results["datasets"]["cold_start"])
    assert path == (tmp_path / "cold-start-data" / "datasets" / "cold_start").resolve()
    dataset = load_from_disk(str(path))
    stats = json.loads((path / "stats.json").read_text())
    assert len(dataset) == 40 == stats["rows"] and stats["shortfall"] == 0
    assert len(set(dataset["problem"])) == len(dataset)  # deduplicated by problem
    assert set(dataset["method"]) == {"refine"}
    assert not any(Path(tmp_path / "cold-start-data" / "datasets").glob(".cold_start*"))  # no staging left

    for row in dataset:
        assert row["prompt"] == [{"role": "user", "content": row["problem"]}]
        (message,) = row["completion"]
        assert message["role"] == "assistant" and has_r1_format(message["content"])
        assert message["content"].rstrip().endswith(f"<answer>\n{row['solution']}\n</answer>")
        if row["language"] == "zh":
            assert "首先，" in message["content"] and "First" not in message["content"]
        else:
            assert "First, " in message["content"]
    assert set(dataset["language"]) == {"en", "zh"}

    # Chinese problems were shown to R1-Zero in English, the readable text stays Chinese.
    assert sampler.questions and all(q.startswith("What is ") for q in sampler.questions)

    by_method = stats["methods"]
    for method in ("few_shot", "direct"):
        assert by_method[method]["generated"] == 16 and by_method[method]["kept"] == 0
        assert by_method[method]["rejected"] == {"ill_formed": 16}
    refine = by_method["refine"]
    assert refine["kept"] == 40 and refine["quota"] == 40
    assert set(refine["rejected"]) <= {"wrong_answer", "invalid_step", "unparsable"}
    assert refine["rejected"]["wrong_answer"] > 0 and refine["rejected"]["invalid_step"] > 0
    assert refine["rejected"]["unparsable"] > 0
    assert refine["generated"] == refine["verified"] + sum(refine["rejected"].values())
    assert refine["kept"] == refine["verified"] - sum(refine["verified_not_kept"].values())
    assert stats["source_checkpoint"] == str(tiny_model)
    assert results["metrics"]["rows"] == 40 and results["checkpoint"] is None
    assert (tmp_path / "cold-start-data" / "results.json").exists()
    assert (tmp_path / "cold-start-data" / "recipe.yaml").exists()
    budgets = [max_new_tokens for _, _, max_new_tokens in sampler.calls]
    assert budgets[:2] == [config.max_new_tokens] * 2 and set(budgets[2:]) == {48}  # few_shot, direct, refine...


def test_builder_without_translation_records_the_language_gap(tmp_path: Path, tiny_model: Path) -> None:
    """Shown the Chinese question, the fake R1-Zero cannot answer: only English examples, a shortfall."""

    def english_only(model_path: str, prompts: list, max_new_tokens: int) -> list[list[str]]:
        outputs = []
        for prompt in prompts:
            question = _QUESTION_IN_R1_ZERO_PROMPT.match(prompt).group(1)
            if not question.startswith("What is "):
                outputs.append(["What is 11 - 7 + 7? 1 - 7 = 7."])
                continue
            tokens = question.removeprefix("What is ").rstrip("?").replace("(", "( ").replace(")", " )").split()
            answer, steps = solve(tokens)
            outputs.append([r1_zero_output(steps, answer)])
        return outputs

    config = cold_start_config(tmp_path, tiny_model, methods=["refine"], refine_sampling_language=None,
                               train_size=60, target_size=50, output_format="special_token")
    results = cold_start_data.run(config, sampler=english_only)
    stats = json.loads((Path(results["datasets"]["cold_start"]) / "stats.json").read_text())
    assert stats["rows_by_language"] == {"en": stats["rows"]} and stats["shortfall"] > 0
    assert stats["methods"]["refine"]["rejected"]["wrong_answer"] > 0
    dataset = load_from_disk(results["datasets"]["cold_start"])
    assert all(row["completion"][0]["content"].startswith(SPECIAL_TOKEN) for row in dataset)


def test_real_sampling_with_an_untrained_model_keeps_nothing(tmp_path: Path, tiny_model: Path) -> None:
    """No fake outputs: an untrained model yields nothing, the stats say why and an empty dataset is written."""
    config = cold_start_config(tmp_path, tiny_model, methods=["direct", "refine"], target_size=4,
                               problem_budget={"direct": 4, "refine": 4}, batch_problems=4, max_new_tokens=12)
    results = cold_start_data.run(config)
    stats = json.loads((Path(results["datasets"]["cold_start"]) / "stats.json").read_text())
    assert stats["rows"] == 0 and stats["shortfall"] == 4
    assert stats["methods"]["direct"]["generated"] == 4 and stats["methods"]["refine"]["generated"] == 4
    assert sum(stats["methods"]["refine"]["rejected"].values()) == 4
    assert len(load_from_disk(results["datasets"]["cold_start"])) == 0


# --- atomic write, recipe, validation ------------------------------------------------------------------


def test_save_dataset_atomic_replaces_whole_folders(tmp_path: Path) -> None:
    target = tmp_path / "datasets" / "cold_start"
    save_dataset_atomic(Dataset.from_dict({"x": [1, 2]}), target, {"rows": 2})
    save_dataset_atomic(Dataset.from_dict({"x": [3]}), target, {"rows": 1})
    assert load_from_disk(str(target))["x"] == [3]
    assert json.loads((target / "stats.json").read_text()) == {"rows": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["cold_start"]


def test_save_dataset_atomic_keeps_the_old_dataset_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cold_start"
    save_dataset_atomic(Dataset.from_dict({"x": [1]}), target, {"rows": 1})

    def broken_save(self: Dataset, path: str, *args: object, **kwargs: object) -> None:
        Path(path, "partial.arrow").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(Dataset, "save_to_disk", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_dataset_atomic(Dataset.from_dict({"x": [2]}), target, {"rows": 1})
    monkeypatch.undo()
    assert load_from_disk(str(target))["x"] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cold_start"]


def test_tiny_recipe_parses() -> None:
    config = load_recipe(REPO / "recipes" / "tiny" / "cold_start_data.yaml", config_class=ColdStartDataConfig)
    assert config.methods == ["few_shot", "direct", "refine"] and config.prompt_template == "chat"
    assert config.task_kwargs == {**TASK_KWARGS, "language_weights": [0.99, 0.01]}  # English-heavy cold start
    assert config.problem_budget == {"few_shot": 64, "direct": 64}
    assert cold_start_data.CONFIG_CLASS is ColdStartDataConfig and cold_start_data.STAGE == "cold-start-data"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"methods": ["few_shot", "magic"]}, "methods"),
        ({"methods": []}, "methods"),
        ({"output_format": "xml"}, "output_format"),
        ({"target_size": 0}, "target_size"),
        ({"few_shot_k": 9, "few_shot_pool_size": 4}, "few_shot_k"),
        ({"problem_budget": {"guessing": 3}}, "problem_budget"),
        ({"refine_sampling_language": "fr"}, "refine_sampling_language"),
        ({"dataset_name": "gsm8k", "methods": ["direct", "refine"]}, "methods"),
        ({"dataset_name": "gsm8k", "methods": ["direct"], "refine_sampling_language": "en"}, "refine_sampling_language"),
        ({"min_language_consistency": 1.5}, "min_language_consistency"),
    ],
)
def test_invalid_fields_are_named(overrides: dict, field: str) -> None:
    with pytest.raises(RecipeError, match=f"^{field}:"):
        ColdStartDataConfig(**overrides)
