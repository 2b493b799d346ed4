"""Model and dataset cards for pushed pipeline stages, rendered from the Jinja templates in `model_cards/`.

A card states where its artifact sits in the R1 pipeline and how to reproduce it: base model and datasets with
revisions, reward functions and weights, key hyperparameters, held-out metrics (also as `model-index` metadata,
so the Hub shows them), the exact command and recipe. This module only turns run-directory content into
`huggingface_hub` card objects; moving bytes to the Hub is `r1_trl.hub`'s job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from r1_trl.adapters import stage_adapter
from r1_trl.rundir import RESULTS_FILE
from r1_trl.stages import STAGES

PIPELINE_STAGES: tuple[str, ...] = tuple(STAGES)
STAGE_TRAINERS: dict[str, str] = {name: stage.trainer for name, stage in STAGES.items() if stage.trainer}
TRAINER_LABELS = {"grpo": "GRPO reinforcement learning", "sft": "supervised fine-tuning"}
# Config fields worth a line in the card, in display order; the full recipe is always included too.
KEY_HYPERPARAMETERS: tuple[str, ...] = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_generations",
    "generation_batch_size",
    "num_iterations",
    "beta",
    "epsilon",
    "epsilon_high",
    "loss_type",
    "scale_rewards",
    "temperature",
    "top_p",
    "max_prompt_length",
    "max_completion_length",
    "max_length",
    "mask_truncated_completions",
    "packing",
    "use_vllm",
    "bf16",
)
CARD_TEMPLATE_PACKAGE_DIR = "card_templates"  # inside the installed `r1_trl` package
MODEL_CARD_TEMPLATE = "model_card.md"
DATASET_CARD_TEMPLATE = "dataset_card.md"
DEFAULT_LICENSE = "apache-2.0"
NOT_RECORDED = "not recorded"
PAPER_TAGS = ("arxiv:2501.12948",)  # DeepSeek-R1
# What a generated set is, by the start of its name (the training stages' held-out samples: `eval_details`,
# and any `eval_details_<suffix>` set of further held-out samples).
SET_DESCRIPTIONS: dict[str, str] = {
    "eval_details": (
        "Held-out evaluation details: one row per held-out prompt with the prompt, problem, gold `solution` "
        "(and `language`), the `k` sampled `completions` and, per sample, whether it is `correct` and "
        "`formatted`, its extracted `answers`, `completion_tokens` and (when measured) `language_consistency`. "
        "The mean of `accuracy` over rows is the held-out accuracy in the statistics below."
    ),
}


@dataclass(frozen=True)
class Ref:
    """A model or dataset reference as the card shows it: a Hub repo id (with revision) or a local path."""

    ref: str
    revision: str | None = None
    local: bool = False
    config: str | None = None

    @property
    def hub_id(self) -> str | None:
        return None if self.local else self.ref

    def __str__(self) -> str:
        return self.ref if self.revision is None else f"{self.ref}@{self.revision}"


@dataclass(frozen=True)
class ModelCardContext:
    """Everything a stage's model card needs; built by `r1_trl.hub` from the run directory."""

    manifest: Mapping[str, Any]
    stage: str
    run_dir: Path
    pushed_ref: str
    base_model: Ref
    datasets: Mapping[str, Ref]
    stage_refs: Mapping[str, str]  # stage -> "repo@revision" its checkpoint (or data) is pushed to
    license: str = DEFAULT_LICENSE


@dataclass(frozen=True)
class GeneratedSet:
    """One generated dataset of a stage, pushed as its own config."""

    name: str
    repo_id: str
    revision: str
    split_rows: Mapping[str, int]
    features: Mapping[str, str]  # column -> type description
    stats: Mapping[str, Any] = field(default_factory=dict)
    source: Ref | None = None  # the checkpoint that generated this set, when it is not the stage's input model


@dataclass(frozen=True)
class DatasetCardContext:
    manifest: Mapping[str, Any]
    stage: str
    run_dir: Path
    pushed_ref: str
    source_model: Ref
    sets: tuple[GeneratedSet, ...]
    hub_metadata: Mapping[str, Any] = field(
        default_factory=dict
    )  # `configs` / `dataset_info` from push_to_hub
    license: str = DEFAULT_LICENSE


# ---- templates ------------------------------------------------------------------------------------------
def template_text(name: str) -> str:
    """The text of a card template: the copy shipped inside the package, else the repo's `model_cards/`."""
    packaged = resources.files("r1_trl").joinpath(CARD_TEMPLATE_PACKAGE_DIR, name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source_tree = Path(__file__).resolve().parent.parent / "model_cards" / name
    if source_tree.is_file():
        return source_tree.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"card template {name!r} not found: looked in the installed package (r1_trl/{CARD_TEMPLATE_PACKAGE_DIR}/) "
        f"and in the source tree ({source_tree})"
    )


# ---- model card -----------------------------------------------------------------------------------------
def trainer_kind(stage: str, entry: Mapping[str, Any]) -> str:
    """'grpo' or 'sft': from the config's `trainer` field, the stage name, or whether rewards are set."""
    config = entry.get("config") or {}
    declared = config.get("trainer")
    if isinstance(declared, str) and declared.lower() in TRAINER_LABELS:
        return declared.lower()
    if stage in STAGE_TRAINERS:
        return STAGE_TRAINERS[stage]
    return "grpo" if entry.get("reward_funcs") or "num_generations" in config else "sft"


def stage_metrics(
    run_dir: Path, stage: str, entry: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, before): the manifest's metrics completed by `results.json`; a contradiction is an error."""
    results_path = run_dir / (entry.get("output_dir") or stage) / RESULTS_FILE
    results: dict[str, Any] = {}
    if results_path.is_file():
        results = json.loads(results_path.read_text(encoding="utf-8"))
        if not isinstance(results, dict):
            raise ValueError(f"{results_path} must hold a JSON object, got {type(results).__name__}")
    manifest_metrics = dict(entry.get("metrics") or {})
    result_metrics = dict(results.get("metrics") or {})
    conflicts = {
        key: (manifest_metrics[key], value)
        for key, value in result_metrics.items()
        if key in manifest_metrics and not same_metric(manifest_metrics[key], value)
    }
    if conflicts:
        raise ValueError(
            f"stage {stage!r}: results.json metrics contradict manifest.json (manifest, results): {conflicts}"
        )
    return {**result_metrics, **manifest_metrics}, dict(results.get("before") or {})


def same_metric(a: Any, b: Any) -> bool:
    """Equal as recorded values, where NaN equals NaN: a metric that was NaN when the stage ended is NaN in
    both files (JSON round-trips it), and `nan != nan` must not read as a contradiction.

    >>> same_metric({"acc": float("nan"), "n": [1, 2]}, {"acc": float("nan"), "n": [1, 2]})
    True
    >>> same_metric(float("nan"), 0.5)
    False
    """
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_metric(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_metric(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """The metrics that can go into `model-index` (finite numbers, not booleans)."""
    return {
        key: value
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def build_model_card(context: ModelCardContext) -> ModelCard:
    entry = context.manifest["stages"][context.stage]
    kind = trainer_kind(context.stage, entry)
    metrics, before = stage_metrics(context.run_dir, context.stage, entry)
    adapter = stage_adapter(context.run_dir / (entry.get("output_dir") or context.stage))
    return ModelCard.from_template(
        _model_card_data(context, kind, metrics, adapter),
        template_str=template_text(MODEL_CARD_TEMPLATE),
        **_model_card_fields(context, kind, metrics, before),
        adapter=adapter,
    )


def _model_card_data(
    context: ModelCardContext, kind: str, metrics: Mapping[str, Any], adapter: Mapping[str, Any] | None = None
) -> ModelCardData:
    """The YAML metadata: lineage as Hub ids, tags, and the held-out metrics as `model-index`."""
    eval_dataset = _eval_dataset(context.datasets)
    eval_results = [
        EvalResult(
            task_type="text-generation",
            dataset_type=eval_dataset.hub_id or "held-out",
            dataset_name=eval_dataset.hub_id or "held-out split",
            dataset_revision=eval_dataset.revision,
            dataset_config=eval_dataset.config,
            metric_type=name,
            metric_value=value,
        )
        for name, value in numeric_metrics(metrics).items()
    ]
    hub_datasets = _unique(ref.hub_id for ref in context.datasets.values() if ref.hub_id)
    return ModelCardData(
        model_name=context.pushed_ref,
        base_model=context.base_model.hub_id,
        datasets=hub_datasets or None,
        library_name="peft" if adapter and not adapter["merged"] else "transformers",
        license=context.license,
        pipeline_tag="text-generation",
        tags=_unique(["r1-trl", "trl", kind, context.stage, "deepseek-r1", "reasoning", *PAPER_TAGS,
                      *(["lora", "peft"] if adapter else [])]),
        eval_results=eval_results or None,
    )


def _model_card_fields(
    context: ModelCardContext, kind: str, metrics: Mapping[str, Any], before: Mapping[str, Any]
) -> dict[str, Any]:
    """The values the model card template renders."""
    manifest, stage = context.manifest, context.stage
    entry = manifest["stages"][stage]
    config: Mapping[str, Any] = entry.get("config") or {}
    stage_dir = context.run_dir / (entry.get("output_dir") or stage)
    rewards = list(entry.get("reward_funcs") or [])
    weights = list(entry.get("reward_weights") or [1.0] * len(rewards))
    if len(weights) != len(rewards):
        raise ValueError(
            f"stage {stage!r}: {len(rewards)} reward_funcs but {len(weights)} reward_weights in manifest.json"
        )
    return {
        "title": f"{context.pushed_ref.split('@')[0].split('/')[-1]} — {stage}",
        "stage": stage,
        "trainer_label": TRAINER_LABELS[kind],
        "run_id": manifest.get("run_id", "unknown"),
        "pushed_ref": context.pushed_ref,
        "pipeline": _pipeline_rows(manifest, stage, context.stage_refs),
        "base_model": _ref_view(context.base_model),
        "datasets": [
            {
                "role": _cell(role),
                "ref": ref.ref,
                "revision": _cell(ref.revision or "—"),
                "config": _cell(ref.config or "—"),
                "local": ref.local,
            }
            for role, ref in context.datasets.items()
        ],
        "rewards": [
            {"name": _cell(name), "weight": _format(weight)}
            for name, weight in zip(rewards, weights, strict=True)
        ],
        "hyperparameters": [
            {"name": key, "value": _cell(_format(config[key]))}
            for key in KEY_HYPERPARAMETERS
            if config.get(key) is not None
        ],
        "metrics": [
            {
                "name": _cell(name),
                "value": _cell(_format(value)),
                "before": _cell(_format(before.get(name, "—"))),
            }
            for name, value in metrics.items()
        ],
        "has_before": bool(before),
        "curves": "curves.png" if (stage_dir / "curves.png").is_file() else None,
        "command": entry.get("command") or "(not recorded)",
        "recipe": _recipe_text(stage_dir, config),
        "seed": entry.get("seed", NOT_RECORDED),
        "seconds": _format_seconds((entry.get("timings") or {}).get("seconds")),
        "license": _license_text(context.license),
    }


# ---- dataset card ---------------------------------------------------------------------------------------
def build_dataset_card(context: DatasetCardContext) -> DatasetCard:
    manifest, stage = context.manifest, context.stage
    entry = manifest["stages"][stage]
    stage_dir = context.run_dir / (entry.get("output_dir") or stage)
    total_rows = sum(sum(s.split_rows.values()) for s in context.sets)
    metadata = {
        key: context.hub_metadata[key] for key in ("configs", "dataset_info") if key in context.hub_metadata
    }
    card_data = DatasetCardData(
        pretty_name=f"r1-trl {stage} data ({manifest.get('run_id', 'unknown run')})",
        license=context.license,
        task_categories=["text-generation"],
        size_categories=[size_category(total_rows)],
        tags=_unique(["r1-trl", "synthetic", "reasoning", stage, *PAPER_TAGS]),
        **metadata,
    )
    return DatasetCard.from_template(
        card_data,
        template_str=template_text(DATASET_CARD_TEMPLATE),
        title=f"{context.pushed_ref.split('@')[0].split('/')[-1]} — {stage}",
        stage=stage,
        run_id=manifest.get("run_id", "unknown"),
        pushed_ref=context.pushed_ref,
        source=_ref_view(context.source_model),
        total_rows=total_rows,
        sets=[
            {
                "name": s.name,
                "repo_id": s.repo_id,
                "revision": s.revision,
                "description": set_description(s.name),
                "source": _ref_view(s.source) if s.source is not None else None,
                "splits": [{"name": split, "rows": rows} for split, rows in s.split_rows.items()],
                "features": [
                    {"name": _cell(column), "type": _cell(kind)} for column, kind in s.features.items()
                ],
                "stats": stats_sections(s.stats),
            }
            for s in context.sets
        ],
        command=entry.get("command") or "(not recorded)",
        recipe=_recipe_text(stage_dir, entry.get("config") or {}),
        license=_license_text(context.license),
    )


def set_description(name: str) -> str | None:
    """What a generated set holds, for the sets the stages name by convention (`SET_DESCRIPTIONS`).

    >>> set_description("eval_details_rl_twin").startswith("Held-out evaluation details")
    True
    >>> set_description("cold_start") is None
    True
    """
    for prefix, text in SET_DESCRIPTIONS.items():
        if name == prefix or name.startswith(f"{prefix}_"):
            return text
    return None


def stats_sections(stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`stats.json` as card tables: top-level scalars under "Statistics", each nested mapping its own table."""
    summary = [(key, value) for key, value in stats.items() if not isinstance(value, Mapping)]
    sections = []
    if summary:
        sections.append({"title": "Statistics", "rows": _rows(summary)})
    for key, value in stats.items():
        if isinstance(value, Mapping):
            sections.append({"title": key.replace("_", " ").capitalize(), "rows": _rows(_flatten(value))})
    return sections


def describe_feature(feature: Any) -> str:
    """A short type description of a `datasets` feature, e.g. `list<struct<role: string, content: string>>`."""
    kind = type(feature).__name__
    if kind == "Value":
        return str(feature.dtype)
    if kind == "ClassLabel":
        return f"class_label({', '.join(feature.names)})"
    if isinstance(feature, Mapping):
        return (
            "struct<" + ", ".join(f"{key}: {describe_feature(value)}" for key, value in feature.items()) + ">"
        )
    if isinstance(feature, list) and len(feature) == 1:
        return f"list<{describe_feature(feature[0])}>"
    inner = getattr(feature, "feature", None)
    if inner is not None:
        return f"list<{describe_feature(inner)}>"
    return repr(feature)


def size_category(rows: int) -> str:
    """The Hub's `size_categories` bucket for a row count."""
    if rows < 1_000:
        return "n<1K"
    bounds = [(10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M")]
    for bound, label in bounds:
        if rows < bound:
            return label
    return "n>10M"


# ---- helpers --------------------------------------------------------------------------------------------
def _pipeline_rows(
    manifest: Mapping[str, Any], current: str, stage_refs: Mapping[str, str]
) -> list[dict[str, Any]]:
    stages = manifest.get("stages") or {}
    ordered = [*PIPELINE_STAGES, *(s for s in stages if s not in PIPELINE_STAGES)]
    return [
        {
            "name": name,
            "current": name == current,
            "status": (stages.get(name) or {}).get("status", "not run"),
            "ref": f"`{stage_refs[name]}`" if name in stage_refs else "—",
        }
        for name in ordered
    ]


def _ref_view(ref: Ref) -> dict[str, Any]:
    note = ""
    if ref.local and ref.ref != NOT_RECORDED:
        looks_like_path = "/" in ref.ref or "\\" in ref.ref or ref.ref.startswith((".", "~"))
        note = " (a local path when this stage ran)" if looks_like_path else " (not a Hub repo)"
    return {"ref": ref.ref, "revision": ref.revision, "note": note}


def _eval_dataset(datasets: Mapping[str, Ref]) -> Ref:
    for role in ("eval", "test", "validation", "held_out", "heldout"):
        if role in datasets:
            return datasets[role]
    return Ref("held-out", local=True)


def _recipe_text(stage_dir: Path, config: Mapping[str, Any]) -> str:
    recipe = stage_dir / "recipe.yaml"
    if recipe.is_file():
        return recipe.read_text(encoding="utf-8").rstrip()
    return yaml.safe_dump(dict(config), sort_keys=False).rstrip() if config else "# recipe not recorded"


def _license_text(license_id: str) -> str:
    return f"Released under `{license_id}`. The base model's and training datasets' own licenses and terms also apply."


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _format_seconds(seconds: Any) -> str:
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return f"{seconds:.1f} s"
    return "not recorded"


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, prefix=f"{name}."))
        else:
            rows.append((name, value))
    return rows


def _rows(pairs: Iterable[tuple[str, Any]]) -> list[dict[str, str]]:
    return [{"name": _cell(name), "value": _cell(_format(value))} for name, value in pairs]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
