"""Reward models for general prompts: ``trl.RewardTrainer`` on preference pairs, held-out pairwise accuracy.

R1's final RL stage scores general prompts with a helpfulness and a harmlessness reward model. Here
each one is a sequence-classification model with a single output (``Qwen2ForSequenceClassification``
from the starting checkpoint: its backbone plus a new score head) trained with TRL's ``RewardTrainer``
(Bradley-Terry loss: ``-log sigmoid(r_chosen - r_rejected)``).

Pairs come from a Hub or local preference set (``preference_dataset``, any TRL preference format:
standard or conversational, implicit or explicit prompt) or, offline, from the tiny synthetic pairs of
``r1_trl.data.preferences`` (``preference_kind``: helpfulness or harmlessness). Held-out pairwise
accuracy (share of held-out pairs whose chosen answer outscores the rejected one) is measured through
``reward_funcs.model_based.RewardModelScorer``, the very code that scores completions during RL, so it
also checks that RL renders inputs the way the model was trained on them.

With ``use_peft`` (TRL's ``ModelConfig`` fields, as in every training stage) the backbone is frozen and a
LoRA adapter of PEFT task type ``SEQ_CLS`` is trained: the LoRA matrices plus a trainable copy of the new score
head (PEFT's ``modules_to_save``), both saved in the adapter. ``checkpoint/`` is then that adapter (or, with
``merge_adapter``, the merged sequence classifier, the adapter kept in ``adapter/``); what scores with it (this
stage's held-out accuracy, rl-all's reward-model rewards) loads it merged into its base as a sequence classifier
(`r1_trl.checkpoints.full_model_path`).

It runs through the training-stage runner (`r1_trl.stages.runner`): held-out accuracy before (the backbone
with its new, seeded score head) and after, training that resumes after a kill, and the usual artifacts in
``output_dir``: ``checkpoint/`` (model + tokenizer), ``results.json``, ``curves.png``, ``recipe.yaml`` and,
for synthetic pairs, ``datasets/preferences_{train,test}/``. rl-all trains its missing reward models with
``run(config)``; ``r1-trl reward-model`` runs one alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
from trl import RewardConfig, RewardTrainer

from r1_trl.adapters import PeftArguments, apply_quantization, peft_config
from r1_trl.checkpoints import full_model_path
from r1_trl.configs import TINY_MODEL, RecipeError, check_training_fields
from r1_trl.data.preferences import PREFERENCE_KINDS, preference_pairs
from r1_trl.distributed import launch_state
from r1_trl.rundir import DATASETS_DIR, save_dataset_atomic
from r1_trl.stages.common import resolve_model
from r1_trl.stages.runner import TrainingStage, run_training_stage
from r1_trl.targets import expects_gpu
from reward_funcs.extraction import completion_to_text
from reward_funcs.model_based import (
    Prompt,
    RewardModelScorer,
    Scorer,
    default_device,
    outside_zero3,
    reward_model_scorer,
)

logger = logging.getLogger(__name__)

STAGE = "reward-model"
_DATA_SUFFIXES = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class RewardModelConfig(PeftArguments, RewardConfig):
    """A reward-model recipe: ``trl.RewardConfig`` + where the backbone and the preference pairs come from, and
    TRL's ``ModelConfig`` PEFT fields (a LoRA reward model: ``use_peft``; its task type is ``SEQ_CLS``)."""

    _VALID_DICT_FIELDS = RewardConfig._VALID_DICT_FIELDS

    model_name_or_path: str = field(
        default=TINY_MODEL,
        metadata={
            "help": "Backbone checkpoint (Hub id, local path, 'repo@revision' or 'tiny'); a causal LM gets a "
            "new one-output score head."
        },
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the backbone."})
    preference_kind: str = field(
        default="helpfulness",
        metadata={
            "help": f"What the model judges, one of {', '.join(PREFERENCE_KINDS)}: names the synthetic "
            "pairs and the model in results."
        },
    )
    preference_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Preference pairs (chosen/rejected columns): a Hub dataset id, a local dataset dir or a "
            "json/jsonl/parquet/csv file. None: the offline synthetic pairs of preference_kind."
        },
    )
    preference_dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset config name."})
    preference_data_dir: str | None = field(
        default=None,
        metadata={"help": "data_dir of the Hub dataset (e.g. 'harmless-base' of Anthropic/hh-rlhf)."},
    )
    preference_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    preference_test_split: str | None = field(
        default="test",
        metadata={
            "help": "Held-out split; None or absent: eval_size pairs are split off the training split."
        },
    )
    train_size: int | None = field(default=512, metadata={"help": "Training pairs (None: the whole split)."})
    eval_size: int = field(default=128, metadata={"help": "Held-out pairs for pairwise accuracy."})
    torch_num_threads: int | None = field(
        default=None, metadata={"help": "CPU threads for torch in this process (None: torch's default)."}
    )
    lora_task_type: str = field(
        default="SEQ_CLS",
        metadata={"help": "PEFT task type of the adapter: a reward model's is SEQ_CLS (LoRA + the score head "
                  "as a module to save). (TRL ModelConfig)"},
    )

    def __post_init__(self) -> None:
        if self.bf16 is None and not expects_gpu():
            self.bf16 = False
        if self.preference_kind not in PREFERENCE_KINDS:
            raise RecipeError(
                f"preference_kind: must be one of {PREFERENCE_KINDS}, got {self.preference_kind!r}"
            )
        if not self.model_name_or_path:
            raise RecipeError("model_name_or_path: a backbone is required (a Hub id, a path, or 'tiny')")
        if self.train_size is not None and self.train_size < 1:
            raise RecipeError(f"train_size: must be >= 1, got {self.train_size}")
        if self.eval_size < 1:
            raise RecipeError(f"eval_size: must be >= 1, got {self.eval_size}")
        check_training_fields(self)
        if self.lora_task_type != "SEQ_CLS":
            raise RecipeError(f"lora_task_type: a reward model's adapter is SEQ_CLS, got {self.lora_task_type!r}")
        self.validate_peft_fields()
        if self.torch_num_threads is not None and self.torch_num_threads < 1:
            raise RecipeError(f"torch_num_threads: must be >= 1, got {self.torch_num_threads}")
        try:
            super().__post_init__()
        except ValueError as error:
            raise RecipeError(str(error)) from None


CONFIG_CLASS = RewardModelConfig


def load_preference_splits(config: RewardModelConfig) -> tuple[Dataset, Dataset]:
    """(train, held-out) preference pairs named by the recipe."""
    if config.preference_dataset is None:
        return (
            preference_pairs(config.preference_kind, config.train_size or 512, "train", config.seed),
            preference_pairs(config.preference_kind, config.eval_size, "test", config.seed),
        )
    train = _load_split(config, config.preference_train_split)
    _check_columns(train, config.preference_dataset, config.preference_train_split)
    held_out = _load_split(config, config.preference_test_split) if config.preference_test_split else None
    if held_out is None:
        if len(train) <= config.eval_size:
            raise ValueError(
                f"eval_size: {config.eval_size} held-out pairs leave no training pairs "
                f"in the {len(train)} of {config.preference_dataset!r}"
            )
        parts = train.train_test_split(test_size=config.eval_size, seed=config.seed)
        train, held_out = parts["train"], parts["test"]
    _check_columns(held_out, config.preference_dataset, "held-out")
    train = train.shuffle(seed=config.seed)
    if config.train_size:
        train = train.select(range(min(config.train_size, len(train))))
    return train, held_out.select(range(min(config.eval_size, len(held_out))))


def _check_columns(dataset: Dataset, source: str, split: str) -> None:
    missing = {"chosen", "rejected"} - set(dataset.column_names)
    if missing:
        raise ValueError(
            f"preference_dataset: the {split} split of {source!r} lacks {sorted(missing)} "
            "(a preference set has chosen/rejected columns)"
        )


def _load_split(config: RewardModelConfig, split: str) -> Dataset | None:
    source = config.preference_dataset
    assert source is not None
    path = Path(source)
    try:
        if path.is_file():
            builder = _DATA_SUFFIXES.get(path.suffix)
            if builder is None:
                raise ValueError(
                    f"preference_dataset: unsupported file type {path.suffix!r} ({', '.join(_DATA_SUFFIXES)})"
                )
            # A single file holds one split: it is the training split, held-out pairs are split off it.
            if split != config.preference_train_split:
                return None
            return load_dataset(builder, data_files={split: str(path)}, split=split)
        return load_dataset(
            source, config.preference_dataset_config, data_dir=config.preference_data_dir, split=split
        )
    except ValueError as error:
        if "split" in str(error).lower() and split != config.preference_train_split:
            return None  # no such held-out split
        raise


def pair_views(example: dict[str, Any]) -> tuple[Prompt, str, Prompt, str]:
    """(prompt, chosen response, prompt, rejected response) of a preference example, in any TRL format.

    >>> pair_views({"prompt": "Q: ", "chosen": "good", "rejected": "bad"})
    ('Q: ', 'good', 'Q: ', 'bad')
    >>> pair_views({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    ...             "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]})[1:3]
    ('a', [{'role': 'user', 'content': 'q'}])
    """
    prompt = example.get("prompt")
    views: list[Any] = []
    for answer in (example["chosen"], example["rejected"]):
        if prompt is None and isinstance(answer, list) and len(answer) > 1:  # implicit conversational prompt
            views += [answer[:-1], completion_to_text(answer[-1:])]
        else:
            views += [prompt, completion_to_text(answer)]
    return views[0], views[1], views[2], views[3]


def pairwise_accuracy(scorer: Scorer, pairs: Dataset) -> dict[str, Any]:
    """Share of pairs whose chosen answer scores above the rejected one, overall and per ``rejection`` type."""
    prompts: list[Prompt] = []
    responses: list[str] = []
    for example in pairs:
        chosen_prompt, chosen, rejected_prompt, rejected = pair_views(example)
        prompts += [chosen_prompt, rejected_prompt]
        responses += [chosen, rejected]
    scores = scorer(prompts, responses)
    wins = [scores[2 * i] > scores[2 * i + 1] for i in range(len(pairs))]
    margins = [scores[2 * i] - scores[2 * i + 1] for i in range(len(pairs))]
    result: dict[str, Any] = {
        "pairwise_accuracy": sum(wins) / len(wins),
        "mean_margin": sum(margins) / len(margins),
        "pairs": len(wins),
    }
    if "rejection" in pairs.column_names:
        by_type: dict[str, list[bool]] = {}
        for win, kind in zip(wins, pairs["rejection"], strict=True):
            by_type.setdefault(kind, []).append(win)
        result["pairwise_accuracy_by_rejection"] = {k: sum(v) / len(v) for k, v in sorted(by_type.items())}
    return result


def run(config: RewardModelConfig) -> dict[str, Any]:
    """Train one reward model and measure it on held-out pairs; returns (and writes) ``results.json``'s content.

    Goes through the training-stage runner like every other training stage: a rerun after a kill resumes the
    trainer from the newest ``checkpoint-N`` (with ``save_strategy`` set). Under ``accelerate launch`` every
    process trains and measures; the main process writes the artifacts, the others return the checkpoint path.
    """
    if config.torch_num_threads:
        torch.set_num_threads(config.torch_num_threads)
    output_dir = Path(config.output_dir)
    model_path, revision = resolve_model(config.model_name_or_path, config.model_revision)
    if revision:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    train, held_out = load_preference_splits(config)
    state = launch_state()
    datasets: dict[str, str] = {}
    if config.preference_dataset is None:
        for name, split, pairs in (("preferences_train", "train", train), ("preferences_test", "test", held_out)):
            path = output_dir / DATASETS_DIR / name
            stats = {"rows": len(pairs), "kind": config.preference_kind, "split": split, "seed": config.seed,
                     "source": "r1_trl.data.preferences (synthetic)"}  # fmt: skip
            if state.is_main_process:
                save_dataset_atomic(pairs, path, stats)
            datasets[name] = str(path.resolve())
    state.wait_for_everyone()

    def evaluate(model: str, with_completions: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pairwise accuracy through the scorer the RL rewards use (so RL renders inputs as training did)."""
        if model == model_path:
            return pairwise_accuracy(untrained_scorer(model_path, tokenizer, config), held_out), {}
        return pairwise_accuracy(reward_model_scorer(full_model_path(model)), held_out), {}  # an adapter: merged

    def build_trainer(args: RewardModelConfig, callbacks: list) -> RewardTrainer:
        apply_quantization(args)
        return RewardTrainer(model=model_path, args=args, train_dataset=train, processing_class=tokenizer,
                             callbacks=callbacks, peft_config=peft_config(args))  # fmt: skip

    def describe(trainer: RewardTrainer) -> dict[str, Any]:
        history = trainer.state.log_history
        return {
            "train_pairs": len(train),
            "held_out_pairs": len(held_out),
            "final_train_accuracy": next((row["accuracy"] for row in reversed(history) if "accuracy" in row), None),
            # TRL's own evaluation of the held-out pairs; it agrees with "after" only if RL scoring renders
            # inputs the way training did.
            "trl_eval_accuracy": trainer.evaluate(eval_dataset=held_out).get("eval_accuracy"),
        }

    results = run_training_stage(TrainingStage(
        name=STAGE, config=config, model_path=model_path, tokenizer=tokenizer, held_out=held_out, settings=None,
        build_trainer=build_trainer, plot=plot_reward_model_curves, describe=describe, evaluate=evaluate,
        results={"kind": config.preference_kind, "preference_dataset": config.preference_dataset or "synthetic",
                 "datasets": datasets},
        publish=False,
    ))  # fmt: skip
    if state.is_main_process:
        logger.info("%s reward model: held-out pairwise accuracy %.3f (before training %.3f)",
                    config.preference_kind, results["after"]["pairwise_accuracy"],
                    results["before"]["pairwise_accuracy"])  # fmt: skip
    return results


def untrained_scorer(model_path: str, tokenizer: Any, config: RewardModelConfig) -> RewardModelScorer:
    """The backbone with the score head ``RewardTrainer`` starts from: the same seed is set before the new
    head is drawn. Loaded afresh (not through the scorer cache, which would keep it after training)."""
    set_seed(config.seed)
    with outside_zero3():
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=1, **(config.model_init_kwargs or {})
        )
    return RewardModelScorer(model.to(default_device()).eval(), tokenizer)


def plot_reward_model_curves(
    log_history: list[dict[str, Any]], path: Path, before: dict[str, Any], after: dict[str, Any]
) -> Path:
    """Left: training loss and pair accuracy per step. Right: held-out pairwise accuracy before/after."""
    from r1_trl.plotting import plt, save_figure, series  # the plotting module selects the Agg backend

    figure, (curve_axis, bar_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "accuracy"):
        steps, values = series(log_history, key)
        if steps:
            curve_axis.plot(steps, values, label=key)
    curve_axis.set_xlabel("step")
    curve_axis.set_title(f"{STAGE}: Bradley-Terry training")
    curve_axis.legend(fontsize=8)
    bars = {"before": before["pairwise_accuracy"], "after": after["pairwise_accuracy"]}
    bar_axis.bar(list(bars), list(bars.values()))
    bar_axis.set_ylim(0, 1)
    bar_axis.set_title("held-out pairwise accuracy")
    return save_figure(figure, path)


def train_reward_model(config: RewardModelConfig) -> str:
    """Train a reward model as the recipe says; returns the path of its checkpoint."""
    return run(config)["checkpoint"]
