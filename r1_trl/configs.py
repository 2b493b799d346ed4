"""Recipe dataclasses: TRL's GRPOConfig/SFTConfig plus the fields every R1 stage shares.

A recipe YAML is parsed by TRL's ``TrlParser`` into one of these; every TRL field stays reachable
from the YAML and the command line. Validation happens in ``__post_init__``, before any compute, and
every error names the offending field.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOConfig, SFTConfig

import reward_funcs
from r1_trl.adapters import PeftArguments
from r1_trl.data.templates import TEMPLATES
from r1_trl.errors import TINY_MODEL, RecipeError
from r1_trl.targets import current_target, expects_gpu, planned_num_processes

# Seconds a reward call may take on one training batch (64 completions of any content return within it).
DEFAULT_REWARD_BATCH_TIMEOUT = 60.0


def parse_dict(value: dict | str | None, name: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise RecipeError(f"{name}: expected a mapping or a JSON object, got {value!r} ({error})") from None
    if not isinstance(parsed, dict):
        raise RecipeError(f"{name}: expected a mapping, got {type(parsed).__name__}")
    return parsed


def check_training_fields(config: Any) -> None:
    """The trainer fields the optimizer would reject only after the model is loaded."""
    max_steps = getattr(config, "max_steps", -1)
    if max_steps < -1:
        raise RecipeError(f"max_steps: must be a number of steps, or -1 to train num_train_epochs instead, got {max_steps}")
    learning_rate = getattr(config, "learning_rate", 0.0)
    if not math.isfinite(learning_rate) or learning_rate < 0:
        raise RecipeError(f"learning_rate: must be a finite number >= 0, got {learning_rate}")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        if getattr(config, name, 1) < 1:
            raise RecipeError(f"{name}: must be >= 1, got {getattr(config, name)}")


@dataclass
class R1StageArguments(PeftArguments):
    """Fields shared by every stage: model (with TRL's PEFT fields), data, prompt format, held-out evaluation,
    Hub lineage."""

    model_name_or_path: str = field(
        default=TINY_MODEL,
        metadata={"help": "Starting checkpoint: a Hub id, a local path, 'repo@revision', or 'tiny' for the "
                  "built-in offline tiny base model (built once and cached)."},
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model."})
    dataset_name: str = field(
        default="arithmetic",
        metadata={"help": "Training prompts: a synthetic task (arithmetic, countdown), a Hub loader "
                  "(gsm8k, math, math500, numina, aime) or a local json/jsonl/parquet file with "
                  "prompt/solution columns."},
    )
    dataset_path: str | None = field(
        default=None, metadata={"help": "Override where a loader reads from (Hub id, local dir or file)."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split used for training."})
    dataset_test_split: str = field(default="test", metadata={"help": "Split used for held-out evaluation."})
    task_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "Extra arguments of the task/loader, e.g. {\"levels\": [2]} for arithmetic."},
    )
    train_size: int | None = field(default=None, metadata={"help": "Number of training prompts (None: all)."})
    eval_size: int = field(default=200, metadata={"help": "Number of held-out prompts for evaluation."})
    prompt_template: str = field(
        default="r1_zero",
        metadata={"help": f"Prompt format, one of {', '.join(TEMPLATES)}: the R1-Zero plain template for base "
                  "models, chat messages for instruct models, or the raw problem."},
    )
    system_prompt: str | None = field(default=None, metadata={"help": "System prompt for the chat template."})
    prefill_think: bool = field(default=False, metadata={"help": "Open <think> at the end of the prompt."})
    decontaminate: bool = field(
        default=True, metadata={"help": "Drop training prompts that share n-grams with the held-out set."}
    )
    eval_num_samples: int = field(default=4, metadata={"help": "Samples per held-out prompt (k of pass@k)."})
    eval_temperature: float = field(default=0.6, metadata={"help": "Sampling temperature for evaluation."})
    eval_top_p: float = field(default=0.95, metadata={"help": "Nucleus (top-p) sampling for evaluation (the paper: 0.95)."})
    eval_max_new_tokens: int = field(default=64, metadata={"help": "Generation budget per held-out answer."})
    eval_every_steps: int = field(
        default=0, metadata={"help": "Log held-out eval/* metrics every N training steps (0: only before/after)."}
    )
    generation_backend: str = field(
        default="auto",
        metadata={"help": "How stages sample (held-out evaluation, cold-start data, rejection sampling, teacher): "
                  "'vllm', 'transformers', or 'auto' (vLLM when installed and a GPU is present)."},
    )
    generation_dtype: str = field(
        default="auto",
        metadata={"help": "dtype of the sampling copy of the model: auto (bfloat16 on GPU, float32 on CPU), "
                  "bfloat16, float16 or float32."},
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata={"help": "Share of each GPU a stage's vLLM engine reserves (weights + KV cache); the engine is "
                  "released before the trainer is built. (For GRPO training also TRL's colocated engine.)"},
    )
    vllm_tensor_parallel_size: int = field(
        default=1, metadata={"help": "GPUs one vLLM engine spans; must divide the number of processes."}
    )
    vllm_max_model_length: int | None = field(
        default=None, metadata={"help": "Context length of the vLLM engine (None: the model's own)."}
    )
    torch_num_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads for torch in this process (None: torch's default). Tiny CPU recipes use 1: "
                  "the tiny model's matmuls gain nothing from threads, and threads oversubscribe a shared CPU."},
    )
    hub_layout: str = field(
        default="branch",
        metadata={"help": "With push_to_hub: 'branch' pushes each stage to a branch of hub_model_id named "
                  "after the stage; 'repo' pushes to one repo per stage."},
    )
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub dataset repo for generated sets."})
    hub_push_checkpoints: bool = field(
        default=True,
        metadata={"help": "Training stages with push_to_hub: also push every checkpoint-N the trainer saves "
                  "(save_strategy/save_steps) to branch '<stage>-step-<N>', in the background while training "
                  "goes on; false: push only the final checkpoint."},
    )
    hub_push_attempts: int = field(
        default=5, metadata={"help": "Attempts per Hub push step (repo/branch creation with its commit, or one "
                             "dataset config) before a push is given up (transient errors only)."}
    )
    hub_push_backoff: float = field(
        default=2.0,
        metadata={"help": "Seconds before the first retry of a failed Hub push step; doubles on every retry."},
    )

    def validate_stage_fields(self) -> None:
        self.task_kwargs = parse_dict(self.task_kwargs, "task_kwargs")
        if self.prompt_template not in TEMPLATES:
            raise RecipeError(f"prompt_template: unknown template {self.prompt_template!r}; known: {', '.join(TEMPLATES)}")
        if not self.model_name_or_path:
            raise RecipeError("model_name_or_path: a model is required (a Hub id, a path, or 'tiny')")
        if not self.dataset_name:
            raise RecipeError("dataset_name: a dataset is required")
        for name in ("eval_size", "eval_num_samples", "eval_max_new_tokens"):
            if getattr(self, name) < 1:
                raise RecipeError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.train_size is not None and self.train_size < 1:
            raise RecipeError(f"train_size: must be >= 1, got {self.train_size}")
        check_training_fields(self)
        if self.torch_num_threads is not None and self.torch_num_threads < 1:
            raise RecipeError(f"torch_num_threads: must be >= 1, got {self.torch_num_threads}")
        self.validate_generation_fields()
        self.validate_peft_fields()
        if self.hub_layout not in ("branch", "repo"):
            raise RecipeError(f"hub_layout: must be 'branch' or 'repo', got {self.hub_layout!r}")
        self.validate_push_fields()

    def validate_generation_fields(self) -> None:
        from r1_trl.generation import EngineSettings

        try:
            EngineSettings.from_config(self)
        except ValueError as error:
            raise RecipeError(str(error)) from None
        processes = planned_num_processes()
        if processes is not None and processes % self.vllm_tensor_parallel_size:
            raise RecipeError(f"vllm_tensor_parallel_size: {self.vllm_tensor_parallel_size} does not divide the "
                              f"{processes} processes of the launch")

    def validate_push_fields(self) -> None:
        if self.hub_push_attempts < 1:
            raise RecipeError(f"hub_push_attempts: must be >= 1, got {self.hub_push_attempts}")
        if self.hub_push_backoff < 0:
            raise RecipeError(f"hub_push_backoff: must be >= 0, got {self.hub_push_backoff}")
        if not getattr(self, "push_to_hub", False):
            return
        repo_id = getattr(self, "hub_model_id", None)
        if not repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise RecipeError(f"hub_model_id: push_to_hub needs the model repo as 'owner/name', got {repo_id!r}")
        if getattr(self, "hub_revision", None):
            raise RecipeError("hub_revision: r1-trl stages push to the branch named after the stage (or one repo "
                              "per stage with hub_layout: repo); leave hub_revision unset")

    def cpu_defaults(self) -> None:
        """TRL defaults bf16 on; without a GPU that is slow or unsupported, so default it off."""
        if getattr(self, "bf16", None) is None and not expects_gpu():
            self.bf16 = False

    @property
    def world_size(self) -> int:
        """TrainingArguments' process count, which TRL's batch rules read; while a recipe is validated for a
        stated launch (`r1_trl.targets.validating_for`), that launch's."""
        planned = planned_num_processes()
        return planned if planned is not None else super().world_size  # type: ignore[misc]

    def apply_runtime_settings(self) -> None:
        """Process-wide settings a stage applies before it computes anything."""
        if self.torch_num_threads:
            torch.set_num_threads(self.torch_num_threads)


PUSH_TO_HUB_HELP = (
    "Push the stage to the Hub repo hub_model_id (GRPO, SFT, rl-all and distill stages): the final checkpoint (with card, "
    "results and lineage) to the branch named after the stage (hub_layout), and with hub_push_checkpoints every "
    "saved checkpoint-N to branch '<stage>-step-<N>' in the background. r1-trl does these pushes itself; TRL's "
    "own Trainer push (output_dir to main on every save; hub_strategy, hub_revision) is turned off for the "
    "trainer, so nothing is pushed to main."
)


def reward_settings(
    name: str, reward_kwargs: dict[str, Any] | None, batch_timeout: float | None, num_workers: int | None
) -> dict[str, Any]:
    """The keyword arguments reward ``name`` is built with: its ``reward_kwargs`` entry, plus the recipe's batch
    bound and worker count if it accepts them (``batch_timeout``, ``num_workers``); ``reward_kwargs`` wins.

    >>> reward_settings("accuracy", {"accuracy": {"timeout": 2}}, 30.0, None)
    {'timeout': 2, 'batch_timeout': 30.0, 'num_workers': None}
    >>> reward_settings("format", None, 30.0, 4)
    {}
    """
    settings = dict((reward_kwargs or {}).get(name, {}))
    accepted = reward_funcs.accepted_kwargs(name)
    for key, value in (("batch_timeout", batch_timeout), ("num_workers", num_workers)):
        if key in accepted:
            settings.setdefault(key, value)
    return settings


@dataclass
class R1GRPOConfig(R1StageArguments, GRPOConfig):
    """GRPO stage recipe: GRPOConfig + reward names resolved through ``reward_funcs`` + stage fields."""

    _VALID_DICT_FIELDS = GRPOConfig._VALID_DICT_FIELDS + ["reward_kwargs", "task_kwargs"]

    push_to_hub: bool = field(default=False, metadata={"help": PUSH_TO_HUB_HELP})

    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={"help": "Rewards: names from the reward_funcs registry (accuracy format language_consistency ...) "
                  "or import paths of your own functions (my_pkg.rewards:my_reward or my_pkg.rewards.my_reward), "
                  "guarded like the built-ins."},
    )
    reward_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "Per-reward arguments keyed by reward name, e.g. {\"cosine_scaled\": {\"max_len\": 512}}."},
    )
    dynamic_sampling: bool = field(
        default=False,
        metadata={"help": "DAPO dynamic sampling: drop prompt groups whose rewards are all equal (no signal) "
                  "and refill the batch from further prompts."},
    )
    dynamic_sampling_max_rounds: int = field(
        default=4, metadata={"help": "Cap on extra generation rounds per batch for dynamic sampling."}
    )
    reward_batch_timeout: float | None = field(
        default=DEFAULT_REWARD_BATCH_TIMEOUT,
        metadata={"help": "Seconds one call of a reward may take on a batch, passed as `batch_timeout` to every "
                  "reward that accepts it (accuracy, length, cosine_scaled, code, binary_code): the call returns "
                  "by then, rows not judged in time score None and are counted in `<reward>/unfinished`. "
                  "None: no bound per batch (each completion is still bounded by the reward's own timeout)."},
    )
    reward_num_workers: int | None = field(
        default=None,
        metadata={"help": "Worker processes that judge a batch in parallel, passed as `num_workers` to every "
                  "reward that accepts it; None: each reward's default (a few, by CPU count)."},
    )

    def __post_init__(self) -> None:
        self.cpu_defaults()
        self.validate_stage_fields()
        self.reward_kwargs = parse_dict(self.reward_kwargs, "reward_kwargs")
        self._validate_rewards()
        if self.use_vllm and not current_target().gpu and importlib.util.find_spec("vllm") is None:
            raise RecipeError("use_vllm: vLLM is requested but not installed (pip install 'r1-trl[vllm]', GPU only)")
        if self.dynamic_sampling_max_rounds < 0:
            raise RecipeError("dynamic_sampling_max_rounds: must be >= 0")
        self._validate_reward_pool()
        try:
            super().__post_init__()
        except RecipeError:
            raise
        except ValueError as error:  # TRL's own checks (batch divisibility, num_generations, ...)
            raise RecipeError(str(error)) from None

    def _validate_reward_pool(self) -> None:
        timeout = self.reward_batch_timeout
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf
        ):
            raise RecipeError(f"reward_batch_timeout: must be a positive number of seconds or None, got {timeout!r}")
        workers = self.reward_num_workers
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise RecipeError(f"reward_num_workers: must be a positive integer or None, got {workers!r}")

    def reward_settings(self, name: str) -> dict[str, Any]:
        """The keyword arguments reward ``name`` is built with (see :func:`reward_settings`)."""
        return reward_settings(name, self.reward_kwargs, self.reward_batch_timeout, self.reward_num_workers)

    def _validate_rewards(self) -> None:
        if not self.reward_funcs:
            raise RecipeError("reward_funcs: at least one reward is required")
        for name in self.reward_funcs:
            try:
                reward_funcs.check(name)
            except reward_funcs.UnknownRewardError as error:
                raise RecipeError(f"reward_funcs: {error}") from None
        for name in self.reward_kwargs:
            if name not in self.reward_funcs:
                raise RecipeError(f"reward_kwargs: {name!r} is not one of reward_funcs {self.reward_funcs}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise RecipeError(
                f"reward_weights: {len(self.reward_weights)} weights for {len(self.reward_funcs)} reward_funcs"
            )


@dataclass
class R1SFTConfig(R1StageArguments, SFTConfig):
    """SFT stage recipe (cold start, SFT stage 2, distillation): SFTConfig + stage fields."""

    _VALID_DICT_FIELDS = SFTConfig._VALID_DICT_FIELDS + ["task_kwargs"]

    push_to_hub: bool = field(default=False, metadata={"help": PUSH_TO_HUB_HELP})

    def __post_init__(self) -> None:
        self.cpu_defaults()
        self.validate_stage_fields()
        try:
            super().__post_init__()
        except RecipeError:
            raise
        except ValueError as error:
            raise RecipeError(str(error)) from None
