"""Thin R1 subclasses of TRL's trainers: reward names resolved through the registry, DAPO dynamic sampling."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset
from trl import GRPOTrainer, SFTTrainer
from trl.trainer.utils import RepeatSampler

import reward_funcs
from r1_trl.adapters import apply_quantization, is_adapter, peft_config
from r1_trl.checkpoints import full_model_path
from r1_trl.configs import R1GRPOConfig, R1SFTConfig, reward_settings
from r1_trl.console import use_compact_console
from r1_trl.data.templates import prompts_prefill_think, think_prefill_reward_kwargs

logger = logging.getLogger(__name__)

Rollout = dict[str, Any]

# How each row-aligned field of TRL's rollout dict is padded when rollouts of different widths are merged.
# Prompts are left-padded and completions right-padded, as TRL builds them; padded positions are masked.
_PAD_TOKEN = object()  # stands for the tokenizer's pad id
_LEFT_PADDED: dict[str, Any] = {"prompt_ids": _PAD_TOKEN, "prompt_mask": 0}
_RIGHT_PADDED: dict[str, Any] = {
    "completion_ids": _PAD_TOKEN,
    "completion_mask": 0,
    "tool_mask": 1,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
}
_PER_ROW = ("advantages",)
# A count over the whole generation batch on every process; whoever merges rollouts recomputes it.
_BATCH_COUNT = "num_items_in_batch"


class R1TrainerMixin:
    """What every r1-trl trainer adds to TRL's: the compact console line, and metrics that callbacks computed
    outside the training step (held-out evaluation) logged through the trainer, so every ``report_to``
    backend, ``log_history`` and the console receive them with the step's own metrics."""

    def _r1_setup(self) -> None:
        use_compact_console(self)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for callback in self.callback_handler.callbacks:  # type: ignore[attr-defined]
            take = getattr(callback, "take_pending_metrics", None)
            if take is not None:
                logs = {**logs, **take()}
        super().log(logs, start_time)  # type: ignore[misc]


def build_reward_funcs(
    names: list[str],
    reward_kwargs: dict[str, dict[str, Any]] | None = None,
    batch_timeout: float | None = None,
    num_workers: int | None = None,
) -> list:
    """Registry names -> guarded reward callables, each configured by its entry in ``reward_kwargs`` and, if it
    accepts them, the recipe's ``batch_timeout`` and ``num_workers`` (see :func:`r1_trl.configs.reward_settings`)."""
    return [build_reward_func(name, reward_settings(name, reward_kwargs, batch_timeout, num_workers)) for name in names]


def build_reward_func(name: str, settings: dict[str, Any]) -> Any:
    """``reward_funcs.get(name, **settings)``; a reward model given as a LoRA adapter folder (``model_path``, as the
    reward-model stage saves one with ``use_peft``) is loaded merged into its base (`full_model_path`)."""
    model_path = settings.get("model_path")
    if isinstance(model_path, str | os.PathLike) and is_adapter(model_path):
        settings = {**settings, "model_path": full_model_path(str(model_path))}
    return reward_funcs.get(name, **settings)


class R1GRPOTrainer(R1TrainerMixin, GRPOTrainer):
    """``GRPOTrainer`` whose rewards come from the recipe (``args.reward_funcs`` names).

    With ``args.dynamic_sampling`` (DAPO), prompt groups whose rewards are all equal carry no
    advantage signal; they are dropped from the loss and refilled by groups generated from further
    prompts (at most ``args.dynamic_sampling_max_rounds`` extra rounds per generation batch).

    How it works, per generation batch (training only; evaluation is never filtered):

    * TRL's own ``_generate_and_score_completions`` runs unchanged, once per round. Rewards are
      gathered across processes there, so every process sees the same per-group rewards and takes
      the same keep/drop decisions and the same number of rounds: the processes stay in lockstep
      without an extra collective.
    * Each process keeps its local rows of informative groups (advantages are already computed per
      group, so rows are independent from here on) until every process has a full batch; surplus
      rows are cut, and cutting rows of a kept group leaves each remaining row's expected gradient
      unchanged.
    * Extra prompts come from a second, independently shuffled pass over ``train_dataset`` laid out
      like TRL's generation batches (each prompt ``num_generations`` times); its position is not
      saved in checkpoints.
    * If a process is still short after the cap, the gap is filled with zero-variance rows whose
      ``completion_mask`` and advantage are zeroed (TRL's own way of excluding rows, as for
      ``mask_truncated_completions``): they add no loss, KL or entropy term and no tokens to the
      ``dapo``/``bnpo`` normalizers (losses that average over rows, ``grpo`` and ``dr_grpo``, still
      count them as empty rows). ``dynamic_sampling/masked_share`` reports how much of the batch
      that was.

    Logged per generation batch: ``dynamic_sampling/rounds`` (extra rounds),
    ``dynamic_sampling/zero_variance_share`` (of all groups generated, dropped ones included),
    ``dynamic_sampling/kept_groups`` (informative groups in the batch, counted across processes in
    rows / ``num_generations``) and ``dynamic_sampling/masked_share``. TRL's reward metrics and
    completion logs cover every generated group, including dropped ones.
    """

    def __init__(self, model: Any, args: R1GRPOConfig, reward_funcs: list | None = None, **kwargs: Any) -> None:
        if reward_funcs is None:
            # Prompts that open <think> (a prefilling chat template): the format rewards count it as present.
            train = kwargs.get("train_dataset")
            columns = getattr(train, "column_names", None) or ()  # None for a streamed dataset: not checked
            prefilled = "prompt" in columns and prompts_prefill_think(train[:1]["prompt"], kwargs.get("processing_class"))
            reward_funcs = build_reward_funcs(
                args.reward_funcs, think_prefill_reward_kwargs(args.reward_funcs, args.reward_kwargs, prefilled),
                args.reward_batch_timeout, args.reward_num_workers,
            )
        apply_quantization(args)
        kwargs.setdefault("peft_config", peft_config(args))
        self._last_rewards_per_func: torch.Tensor | None = None
        self._refill_batches: Iterator[list[dict[str, Any]]] | None = None
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, **kwargs)
        self._r1_setup()
        if getattr(args, "dynamic_sampling", False) and isinstance(self.train_dataset, IterableDataset):
            raise ValueError(
                "dynamic_sampling: needs a map-style train_dataset to draw refill prompts from; "
                "got an IterableDataset"
            )

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[override]
        # Keep the rewards gathered across processes: dynamic sampling decides on them.
        self._last_rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._last_rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> Rollout:  # type: ignore[override]
        if not (getattr(self.args, "dynamic_sampling", False) and self.model.training):
            return super()._generate_and_score_completions(inputs)
        return self._dynamic_sampling_rollout(inputs)

    def _dynamic_sampling_rollout(self, inputs: list[dict[str, Any]]) -> Rollout:
        rows_needed = len(inputs)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        kept: list[Rollout] = []
        filler: Rollout | None = None
        kept_per_rank = torch.zeros(world, dtype=torch.long)
        groups_generated = groups_flat = 0
        extra_rounds = 0
        batch = inputs
        while True:
            self._last_rewards_per_func = None
            rollout = super()._generate_and_score_completions(batch)
            flat = zero_variance_groups(self._group_rewards(), self.num_generations).cpu()
            informative = informative_rows_by_rank(flat, self.num_generations, world)
            local = informative[rank]
            kept.append(select_rows(rollout, local.nonzero().squeeze(1)))
            if filler is None:  # a shortfall never exceeds the rows the first round dropped
                filler = select_rows(rollout, (~local).nonzero().squeeze(1))
            kept_per_rank += informative.sum(dim=1)
            groups_generated += flat.numel()
            groups_flat += int(flat.sum())
            if bool((kept_per_rank >= rows_needed).all()) or extra_rounds >= self.args.dynamic_sampling_max_rounds:
                break
            extra_rounds += 1
            batch = self._next_refill_batch()

        masked_per_rank = (rows_needed - kept_per_rank).clamp(min=0)
        self._log_dynamic_sampling(extra_rounds, groups_flat / groups_generated, rows_needed, masked_per_rank)
        if extra_rounds == 0 and groups_flat == 0:
            return rollout  # nothing was dropped: TRL's rollout as is

        shortfall = int(masked_per_rank[rank])
        parts = [part for part in kept if len(part["advantages"]) > 0]
        if shortfall:
            parts.append(masked_rows(select_rows(filler, torch.arange(shortfall))))
        merged = concat_rollouts(parts, self._tokenizer.pad_token_id)
        if len(merged["advantages"]) > rows_needed:
            merged = select_rows(merged, torch.arange(rows_needed))
        loss_mask = merged["completion_mask"]
        if "tool_mask" in merged:
            loss_mask = loss_mask * merged["tool_mask"]
        merged[_BATCH_COUNT] = self.accelerator.gather(loss_mask.sum()).sum()
        return merged

    def _group_rewards(self) -> torch.Tensor:
        """The rewards that decide whether a group carries signal, one row per completion (all processes).

        With ``sum_then_normalize`` the advantage depends on the weighted sum only; with
        ``normalize_then_sum`` each function is normalized within the group, so every weighted column
        has to be flat. Unscorable completions (NaN) are ignored, as TRL's nan-aware baseline does.
        """
        if self._last_rewards_per_func is None:
            raise RuntimeError("dynamic sampling: no rewards were computed for the last rollout")
        weighted = self._last_rewards_per_func * self.reward_weights.to(self._last_rewards_per_func.device)
        if self.multi_objective_aggregation == "normalize_then_sum":
            return weighted
        total = weighted.nansum(dim=1)
        total[torch.isnan(weighted).all(dim=1)] = torch.nan
        return total

    def _log_dynamic_sampling(
        self, extra_rounds: int, flat_share: float, rows_per_rank: int, masked_per_rank: torch.Tensor
    ) -> None:
        rows = len(masked_per_rank) * rows_per_rank
        masked = int(masked_per_rank.sum())
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/rounds"].append(float(extra_rounds))
        metrics["dynamic_sampling/zero_variance_share"].append(flat_share)
        metrics["dynamic_sampling/kept_groups"].append((rows - masked) / self.num_generations)
        metrics["dynamic_sampling/masked_share"].append(masked / rows)

    def _next_refill_batch(self) -> list[dict[str, Any]]:
        if self._refill_batches is None:
            self._refill_batches = self._refill_stream()
        return next(self._refill_batches)

    def _refill_stream(self) -> Iterator[list[dict[str, Any]]]:
        """Endless generation batches from ``train_dataset`` in TRL's layout, sharded across processes."""

        def sampler(dataset: Any) -> RepeatSampler:
            # A different seed than TRL's sampler, so refills are not a replay of the upcoming batches.
            return RepeatSampler(
                data_source=dataset,
                mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                shuffle=True,
                seed=self.args.seed + 1,
            )

        loader = self._get_dataloader(
            dataset=self.train_dataset,
            description="Dynamic sampling refill",
            batch_size=self._train_batch_size * self.args.steps_per_generation,
            sampler_fn=sampler,
            is_training=True,
        )
        while True:
            empty = True
            for batch in loader:  # each pass is a new permutation
                empty = False
                yield batch
            if empty:
                raise ValueError(
                    "dynamic_sampling: train_dataset has fewer prompts than one generation batch "
                    f"({self.args.generation_batch_size // self.num_generations})"
                )


class R1SFTTrainer(R1TrainerMixin, SFTTrainer):
    """``SFTTrainer`` for the SFT stages: a LoRA adapter when the recipe sets ``use_peft``."""

    def __init__(self, model: Any, args: R1SFTConfig, **kwargs: Any) -> None:
        apply_quantization(args)
        kwargs.setdefault("peft_config", peft_config(args))
        super().__init__(model=model, args=args, **kwargs)
        self._r1_setup()


def zero_variance_groups(rewards: torch.Tensor, num_generations: int, tolerance: float = 1e-6) -> torch.Tensor:
    """Boolean mask over prompt groups whose rewards are all equal (they yield zero advantage).

    ``rewards`` is one value per completion, or one row of values per completion (then every column
    must be flat). NaN marks an unscored completion and is ignored; a group with fewer than two
    scored completions is flat too.

    >>> zero_variance_groups(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2)
    tensor([ True, False])
    >>> zero_variance_groups(torch.tensor([1.0, float("nan"), 0.5, 0.5]), 2)
    tensor([True, True])
    """
    if rewards.dim() == 1:
        rewards = rewards.unsqueeze(1)
    if rewards.size(0) % num_generations:
        raise ValueError(f"{rewards.size(0)} rewards do not split into groups of {num_generations}")
    grouped = rewards.view(-1, num_generations, rewards.size(1))
    scored = ~torch.isnan(grouped)
    highest = grouped.masked_fill(~scored, -torch.inf).max(dim=1).values
    lowest = grouped.masked_fill(~scored, torch.inf).min(dim=1).values
    spread = highest - lowest  # -inf for a column with no scored completion in the group
    return ~(spread > tolerance).any(dim=1)


def informative_rows_by_rank(flat_groups: torch.Tensor, num_generations: int, world_size: int) -> torch.Tensor:
    """(world_size, rows per process) mask of rows whose group is not flat.

    TRL gathers rows in process order and groups are consecutive rows, so a group may span two
    processes; each process then holds part of it.

    >>> informative_rows_by_rank(torch.tensor([True, False, False]), 2, 2)
    tensor([[False, False,  True],
            [ True,  True,  True]])
    """
    rows = (~flat_groups).repeat_interleave(num_generations)
    if rows.numel() % world_size:
        raise ValueError(f"{rows.numel()} rows do not split across {world_size} processes")
    return rows.view(world_size, -1)


def select_rows(rollout: Rollout, rows: torch.Tensor) -> Rollout:
    """The given rows of a rollout dict; batch-wide scalars (0-dim tensors) and ``None`` are kept as is.

    >>> select_rows({"advantages": torch.tensor([0.5, -0.5, 1.0]), "n": torch.tensor(7)}, torch.tensor([2, 0]))
    {'advantages': tensor([1.0000, 0.5000]), 'n': tensor(7)}
    """
    selected: Rollout = {}
    for key, value in rollout.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            selected[key] = value[rows.to(value.device)]
        elif isinstance(value, list):
            selected[key] = [value[i] for i in rows.tolist()]
        else:
            selected[key] = value
    return selected


def masked_rows(rollout: Rollout) -> Rollout:
    """The rollout with every row excluded from the loss: empty completion mask and zero advantage."""
    return {
        **rollout,
        "completion_mask": torch.zeros_like(rollout["completion_mask"]),
        "advantages": torch.zeros_like(rollout["advantages"]),
    }


def concat_rollouts(parts: list[Rollout], pad_token_id: int) -> Rollout:
    """Stack the rows of several text rollouts, re-padding prompts (left) and completions (right).

    ``num_items_in_batch`` is left out: it counts tokens over all processes, so the caller recomputes
    it. Fields that are not row-aligned text fields (e.g. images) are refused.
    """
    if not parts:
        raise ValueError("concat_rollouts: nothing to concatenate")
    keys = list(parts[0])
    for part in parts[1:]:
        if list(part) != keys:
            raise ValueError(f"concat_rollouts: rollouts have different fields: {keys} vs {list(part)}")
    merged: Rollout = {}
    for key in keys:
        values = [part[key] for part in parts]
        if key == _BATCH_COUNT:
            continue
        if key in _PER_ROW:
            merged[key] = torch.cat(values)
        elif key in _LEFT_PADDED or key in _RIGHT_PADDED:
            left = key in _LEFT_PADDED
            fill = (_LEFT_PADDED if left else _RIGHT_PADDED)[key]
            fill = pad_token_id if fill is _PAD_TOKEN else fill
            width = max(value.size(1) for value in values)
            merged[key] = torch.cat([_pad_columns(value, width, fill, left) for value in values])
        else:
            raise ValueError(
                f"dynamic sampling cannot merge the rollout field {key!r}; only text rollouts are supported "
                "(no images or multimodal inputs)"
            )
    return merged


def _pad_columns(tensor: torch.Tensor, width: int, fill: float | int, left: bool) -> torch.Tensor:
    missing = width - tensor.size(1)
    if missing == 0:
        return tensor
    padding = tensor.new_full((tensor.size(0), missing, *tensor.shape[2:]), fill)
    return torch.cat([padding, tensor] if left else [tensor, padding], dim=1)
