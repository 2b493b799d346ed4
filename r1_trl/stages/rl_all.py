"""R1 stage 4, RL for all scenarios: GRPO on reasoning prompts (rule rewards) + general prompts (reward models).

The paper's last stage aligns the model with human preferences while keeping its reasoning: reasoning
prompts keep the rule rewards (accuracy, format, language consistency); general prompts are scored by a
helpfulness reward model (on the final summary only) and a harmlessness reward model (on the whole
output). Here:

* Training prompts are a mixture: ``general_share`` of ``train_size`` are general prompts (the offline
  synthetic ones of ``r1_trl.data.preferences``, or ``general_prompts_dataset``), the rest reasoning
  prompts of ``dataset_name``; all rendered with ``prompt_template`` (``chat`` for this stage) and tagged
  with a ``prompt_type`` column (``reasoning`` / ``general``).
* Routing: rewards named in ``general_reward_funcs`` score general rows only, every other reward in
  ``reward_funcs`` scores reasoning rows only; the rest get None, which TRL skips. Each reward is
  logged under its own name (``rewards/helpfulness_rm/mean``: mean over general rows).
* Reward models: ``helpfulness_model_path`` / ``harmlessness_model_path`` (or ``model_path`` in
  ``reward_kwargs``) when given; otherwise this stage trains them first, each from
  ``reward_model_recipe`` with its ``preference_kind``, into ``output_dir/reward_models/<kind>/`` (a rerun
  reuses finished ones, an interrupted one resumes from its checkpoint). A pipeline that prefers a separate
  step runs the ``reward-model`` stage (``r1_trl.stages.reward_model``) and passes the paths.
* Held-out metrics before/after: the reasoning metrics on the reasoning held-out set, plus the mean
  score of each general reward on completions for held-out general prompts (``general/<reward>``,
  also split by prompt category: ``general/<reward>/benign``, ``.../harmful``).
  The trained model's reasoning samples behind the "after" metrics are saved as ``datasets/eval_details``
  (one row per held-out reasoning prompt).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, concatenate_datasets, load_dataset
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, Trainer

from r1_trl.adapters import is_adapter
from r1_trl.configs import R1GRPOConfig, RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets, render
from r1_trl.data.preferences import (
    GENERAL_PROMPT,
    GENERAL_TASK,
    PROMPT_TYPE_COLUMN,
    REASONING_PROMPT,
    general_prompt_dataset,
)
from r1_trl.data.templates import prompts_prefill_think, think_prefill_reward_kwargs
from r1_trl.distributed import launch_state
from r1_trl.evaluation import EvalSettings, evaluate_model
from r1_trl.generation import EngineSettings, SamplingSettings, generate_sharded
from r1_trl.plotting import plot_training_curves
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.rundir import DATASETS_DIR, RESULTS_FILE, save_dataset_atomic
from r1_trl.stages.common import eval_settings, resolve_model
from r1_trl.stages.reward_model import RewardModelConfig
from r1_trl.stages.reward_model import run as run_reward_model
from r1_trl.stages.runner import TrainingStage, run_training_stage
from r1_trl.trainers import R1GRPOTrainer, build_reward_func
from reward_funcs.model_based import only_for_prompt_types

logger = logging.getLogger(__name__)

STAGE = "rl-all"
# Reward-model-backed rewards and the preference kind (reward-model recipe) each one needs.
REWARD_MODEL_KINDS = {"helpfulness_rm": "helpfulness", "harmlessness_rm": "harmlessness"}
SAMPLE_COMPLETIONS_KEPT = 4


@dataclass
class RLAllConfig(R1GRPOConfig):
    """GRPO recipe over a reasoning + general prompt mixture; reward models score the general prompts."""

    general_share: float = field(
        default=0.3,
        metadata={"help": "Share of general (non-reasoning) prompts among the train_size prompts."},
    )
    general_prompts_dataset: str | None = field(
        default=None,
        metadata={
            "help": "General prompts: a Hub dataset id or a local json/jsonl/parquet/csv file with a 'prompt' "
            "column (the bare user request). None: the offline synthetic general prompts."
        },
    )
    general_prompts_split: str = field(
        default="train", metadata={"help": "Split of general_prompts_dataset."}
    )
    general_eval_size: int = field(
        default=16, metadata={"help": "Held-out general prompts scored by the general rewards before/after."}
    )
    general_reward_funcs: list[str] = field(
        default_factory=lambda: list(REWARD_MODEL_KINDS),
        metadata={
            "help": "The rewards of reward_funcs that score general prompts; all others score reasoning "
            "prompts only."
        },
    )
    helpfulness_model_path: str | None = field(
        default=None,
        metadata={"help": "Trained helpfulness reward model; None: trained first by this stage."},
    )
    harmlessness_model_path: str | None = field(
        default=None,
        metadata={"help": "Trained harmlessness reward model; None: trained first by this stage."},
    )
    reward_model_recipe: str = field(
        default="tiny/reward_model.yaml",
        metadata={
            "help": "Recipe (a path, or relative to the bundled recipes/) for reward models this stage trains."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.general_share <= 1.0:
            raise RecipeError(f"general_share: must be in [0, 1], got {self.general_share}")
        if self.general_eval_size < 1:
            raise RecipeError(f"general_eval_size: must be >= 1, got {self.general_eval_size}")
        for name in self.general_reward_funcs:
            if name not in self.reward_funcs:
                raise RecipeError(
                    f"general_reward_funcs: {name!r} is not one of reward_funcs {self.reward_funcs}"
                )
        general = [n for n in self.reward_funcs if n in self.general_reward_funcs]
        if self.general_share > 0 and not general:
            raise RecipeError("general_reward_funcs: general_share > 0 but no reward scores general prompts")
        if self.general_share < 1 and len(general) == len(self.reward_funcs):
            raise RecipeError(
                "reward_funcs: reasoning prompts are in the mixture but every reward is a general one"
            )


CONFIG_CLASS = RLAllConfig


# --- reward models ---------------------------------------------------------------------------------------


def reward_model_paths(config: RLAllConfig) -> dict[str, str]:
    """The reward model of every reward-model reward in use, training the missing ones (recorded in
    ``config.reward_kwargs`` so the trainer and ``recipe.yaml`` see them)."""
    paths: dict[str, str] = {}
    for name, kind in REWARD_MODEL_KINDS.items():
        if name not in config.reward_funcs:
            continue
        kwargs = dict(config.reward_kwargs.get(name, {}))
        path = kwargs.get("model_path") or getattr(config, f"{kind}_model_path")
        if not path:
            path = train_missing_reward_model(config, kind)
        kwargs["model_path"] = str(path)
        config.reward_kwargs[name] = kwargs
        paths[name] = str(path)
    return paths


def train_missing_reward_model(config: RLAllConfig, kind: str) -> str:
    """Train the ``kind`` reward model from ``reward_model_recipe``, or reuse the one an interrupted run of
    this stage already finished (its ``results.json`` is written last)."""
    output_dir = Path(config.output_dir) / "reward_models" / kind
    finished = output_dir / RESULTS_FILE
    if finished.is_file():
        checkpoint = json.loads(finished.read_text()).get("checkpoint")
        if checkpoint and (Path(checkpoint, "config.json").is_file() or is_adapter(checkpoint)):
            logger.info("reusing the %s reward model trained earlier: %s", kind, checkpoint)
            return checkpoint
    recipe = Path(config.reward_model_recipe)
    if not recipe.is_file():
        recipe = recipe_path(config.reward_model_recipe)
    overrides = ["--preference_kind", kind, "--output_dir", str(output_dir)]
    if config.torch_num_threads:
        overrides += ["--torch_num_threads", str(config.torch_num_threads)]
    rm_config = load_recipe(recipe, overrides, RewardModelConfig)
    logger.info("training the %s reward model (%s) into %s", kind, recipe, output_dir)
    return run_reward_model(rm_config)["checkpoint"]


def build_mixed_rewards(config: RLAllConfig) -> list:
    """One reward per ``reward_funcs`` name, routed to its prompt type and logged under its name."""
    funcs = []
    for name in config.reward_funcs:
        func = build_reward_func(name, config.reward_settings(name))  # an adapter: merged into its base
        prompt_type = GENERAL_PROMPT if name in config.general_reward_funcs else REASONING_PROMPT
        funcs.append(only_for_prompt_types(func, prompt_type, name))
    return funcs


# --- prompt mixture --------------------------------------------------------------------------------------


def load_general_prompts(config: RLAllConfig, spec: PromptSpec) -> tuple[Dataset, Dataset]:
    """(train, held-out) general prompts, rendered with the same template as the reasoning prompts."""
    if config.general_prompts_dataset is None:
        train = general_prompt_dataset(None, "train", config.seed)
        held_out = general_prompt_dataset(config.general_eval_size, "test", config.seed)
    else:
        source = config.general_prompts_dataset
        path = Path(source)
        if path.is_file():
            builder = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(
                path.suffix
            )
            if builder is None:
                raise ValueError(f"general_prompts_dataset: unsupported file type {path.suffix!r}")
            rows = load_dataset(builder, data_files=str(path), split="train")
        else:
            rows = load_dataset(source, split=config.general_prompts_split)
        if "prompt" not in rows.column_names or not all(isinstance(p, str) for p in rows["prompt"]):
            raise ValueError(
                f"general_prompts_dataset: {source!r} needs a 'prompt' column of bare user requests (strings)"
            )
        if len(rows) <= config.general_eval_size:
            raise ValueError(
                f"general_eval_size: {config.general_eval_size} held-out prompts leave none of the "
                f"{len(rows)} in {source!r} to train on"
            )
        rows = rows.select_columns(["prompt"]).shuffle(seed=config.seed)
        rows = rows.map(
            lambda row: {
                "problem": row["prompt"],
                "task": GENERAL_TASK,
                PROMPT_TYPE_COLUMN: GENERAL_PROMPT,
                "category": None,
            }
        )
        held_out = rows.select(range(config.general_eval_size))
        train = rows.select(range(config.general_eval_size, len(rows)))
    return render(train, spec), render(held_out, spec)


def mix_prompts(reasoning: Dataset, general: Dataset, general_share: float, seed: int) -> Dataset:
    """``len(reasoning)`` prompts of which ``general_share`` are general (cycling through them if needed),
    shuffled; columns are the union of both, missing values None."""
    total = len(reasoning)
    general_count = round(general_share * total)
    if general_count and not len(general):
        raise ValueError("general_share: general prompts are requested but there are none")
    parts = []
    if total - general_count:
        parts.append(reasoning.select(range(total - general_count)))
    if general_count:
        parts.append(general.select([i % len(general) for i in range(general_count)]))
    parts = _align_columns(parts)
    return concatenate_datasets(parts).shuffle(seed=seed)


def _align_columns(parts: list[Dataset]) -> list[Dataset]:
    features: dict[str, Any] = {}
    for part in parts:
        for name, feature in part.features.items():
            if features.setdefault(name, feature) != feature:
                raise ValueError(
                    f"{name}: reasoning and general prompts disagree on this column's type "
                    f"({features[name]} vs {feature}); render both with the same prompt_template"
                )
    aligned = []
    for part in parts:
        for name, feature in features.items():
            if name not in part.column_names:
                part = part.add_column(name, [None] * len(part), feature=feature)
        aligned.append(part.select_columns(list(features)).cast(Features(features)))
    return aligned


def _tag(dataset: Dataset, prompt_type: str) -> Dataset:
    if PROMPT_TYPE_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(PROMPT_TYPE_COLUMN)
    return dataset.add_column(PROMPT_TYPE_COLUMN, [prompt_type] * len(dataset))


# --- evaluation ------------------------------------------------------------------------------------------


def evaluate_general(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    held_out: Dataset,
    rewards: dict[str, Any],
    settings: EvalSettings,
    engine: EngineSettings | None = None,
) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Mean score of each general reward over sampled completions for the held-out general prompts, and a
    few of those completions to read. Every rank of a launch calls it: the sampling is sharded."""
    sampling = SamplingSettings(
        num_samples=settings.num_samples,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        batch_size=settings.batch_size,
        seed=settings.seed,
    )
    completions = generate_sharded(model, tokenizer, held_out["prompt"], sampling, engine or EngineSettings(),
                                   show_progress=False)
    k = settings.num_samples
    flat = [c for group in completions for c in group]
    kwargs = {
        "prompts": [p for p in held_out["prompt"] for _ in range(k)],
        PROMPT_TYPE_COLUMN: [GENERAL_PROMPT] * len(flat),
    }
    categories = (
        [c for c in held_out["category"] for _ in range(k)] if "category" in held_out.column_names else []
    )
    metrics: dict[str, float] = {}
    for name, reward in rewards.items():
        scores = reward(flat, **kwargs)
        metrics[f"general/{name}"] = _mean([s for s in scores if s is not None])
        for category in sorted({c for c in categories if c}):
            chosen = [s for s, c in zip(scores, categories, strict=True) if c == category and s is not None]
            metrics[f"general/{name}/{category}"] = _mean(chosen)
    metrics["general/mean_length"] = (
        _mean([float(len(ids)) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]])
        if flat
        else 0.0
    )
    samples = [
        {"prompt": _prompt_text(held_out["prompt"][i]), "completion": completions[i][0]}
        for i in range(min(SAMPLE_COMPLETIONS_KEPT, len(completions)))
    ]
    return metrics, samples


def _prompt_text(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(str(m.get("content", "")) for m in prompt)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def evaluate_all(
    model_path: str,
    tokenizer: PreTrainedTokenizerBase,
    reasoning_held_out: Dataset,
    general_held_out: Dataset,
    general_rewards: dict[str, Any],
    settings: EvalSettings,
    return_completions: bool = False,
    engine: EngineSettings | None = None,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Held-out metrics of one model (reasoning metrics + ``general/*`` reward means) and sample completions
    for general prompts. ``return_completions``: the metrics also carry the reasoning samples and their scores,
    as ``evaluate_model`` returns them (`split_eval_details` takes them out). Sampling is sharded across the
    ranks of a launch, on each rank's own device."""
    engine = engine or EngineSettings()
    metrics = evaluate_model(model_path, tokenizer, reasoning_held_out, settings, show_progress=True,
                             return_completions=return_completions, engine=engine, sharded=True)  # fmt: skip
    if not general_rewards:
        return metrics, []
    general, samples = evaluate_general(model_path, tokenizer, general_held_out, general_rewards, settings, engine)
    return {**metrics, **general}, samples


# --- the stage -------------------------------------------------------------------------------------------


def run(config: RLAllConfig) -> dict[str, Any]:
    """Train missing reward models, evaluate, run GRPO on the mixture, evaluate again, write artifacts."""
    started = time.perf_counter()
    config.apply_runtime_settings()
    output_dir = Path(config.output_dir)
    reward_models = reward_model_paths(config)
    rm_seconds = time.perf_counter() - started

    model_path, revision = resolve_model(config.model_name_or_path, config.model_revision)
    if revision:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    spec = PromptSpec.from_config(config)
    reasoning_train, reasoning_held_out = build_prompt_datasets(spec)
    general_train, general_held_out = load_general_prompts(config, spec)
    train = mix_prompts(
        _tag(reasoning_train, REASONING_PROMPT),
        _tag(general_train, GENERAL_PROMPT),
        config.general_share,
        config.seed,
    )
    type_counts = {t: train[PROMPT_TYPE_COLUMN].count(t) for t in (REASONING_PROMPT, GENERAL_PROMPT)}
    state = launch_state()
    mixture_path = output_dir / DATASETS_DIR / "rl_all_prompts"
    if state.is_main_process:
        save_dataset_atomic(train, mixture_path, {
            "rows": len(train),
            "by_prompt_type": type_counts,
            "general_share": config.general_share,
            "reasoning_source": config.dataset_name,
            "general_source": config.general_prompts_dataset or "synthetic",
            "prompt_template": config.prompt_template,
            "seed": config.seed,
        })  # fmt: skip
    state.wait_for_everyone()

    # Prompts that open <think> (a prefilling chat template): the format rewards count it as present.
    config.reward_kwargs = think_prefill_reward_kwargs(
        config.reward_funcs, config.reward_kwargs, prompts_prefill_think(reasoning_train["prompt"][:1], tokenizer))
    rewards = build_mixed_rewards(config)
    general_rewards = {
        name: func
        for name, func in zip(config.reward_funcs, rewards, strict=True)
        if name in config.general_reward_funcs
    }
    settings = eval_settings(config, language_metric=True)
    engine = EngineSettings.from_config(config)

    def evaluate(model: str, with_completions: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        metrics, samples = evaluate_all(model, tokenizer, reasoning_held_out, general_held_out, general_rewards,
                                        settings, return_completions=with_completions, engine=engine)  # fmt: skip
        return metrics, samples  # type: ignore[return-value]

    def build_trainer(args: RLAllConfig, callbacks: list) -> Trainer:
        return R1GRPOTrainer(model=model_path, args=args, reward_funcs=rewards, train_dataset=train,
                             processing_class=tokenizer, callbacks=callbacks)  # fmt: skip

    def describe(trainer: Trainer) -> dict[str, Any]:
        return {
            "reward_model_seconds": rm_seconds,
            "prompts": len(train),
            "prompts_by_type": type_counts,
            "reasoning_held_out_prompts": len(reasoning_held_out),
            "general_held_out_prompts": len(general_held_out),
            "reward_means_last": _last_reward_means(trainer.state.log_history),
        }

    def plot(history: list, path: Path, before: dict, after: dict) -> Any:
        return plot_training_curves(history, path, f"{STAGE}: GRPO rewards", held_out={"before": before, "after": after})

    return run_training_stage(TrainingStage(
        name=STAGE, config=config, model_path=model_path, tokenizer=tokenizer, held_out=reasoning_held_out,
        settings=settings, build_trainer=build_trainer, plot=plot, describe=describe, evaluate=evaluate,
        results={"reward_models": reward_models, "datasets": {"rl_all_prompts": str(mixture_path.resolve())}},
    ))  # fmt: skip


def _last_reward_means(history: list[dict[str, Any]]) -> dict[str, float]:
    """The latest logged (non-NaN) mean of every reward."""
    means: dict[str, float] = {}
    for row in history:
        for key, value in row.items():
            if key.startswith("rewards/") and key.endswith("/mean") and value == value:
                means[key] = value
    return means

