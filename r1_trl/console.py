"""One compact console line per logging step instead of transformers' printed metrics dict.

transformers' ``ProgressCallback`` (tqdm bars) writes every ``on_log`` dict under the bar, and
``PrinterCallback`` (``disable_tqdm``) prints it: with GRPO that is some thirty keys per step. `CompactProgress`
keeps the bars and writes one line with what a person watches (step, loss, reward, accuracy, format, KL,
completion length, learning rate, held-out metrics); the full dict still goes to ``log_history`` and every
``report_to`` backend.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

# (label, log key) in the order they are shown; reward means of other rewards follow as `name=value`.
SHOWN: tuple[tuple[str, str], ...] = (
    ("loss", "loss"),
    ("reward", "reward"),
    ("accuracy", "rewards/accuracy/mean"),
    ("format", "rewards/format/mean"),
    ("language", "rewards/language_consistency/mean"),
    ("token_acc", "mean_token_accuracy"),
    ("kl", "kl"),
    ("len", "completions/mean_length"),
    ("lr", "learning_rate"),
    ("grad", "grad_norm"),
    ("held-out accuracy", "eval/accuracy"),
    ("held-out format", "eval/format_rate"),
)
SUMMARY_KEYS = ("train_runtime", "train_loss")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.4g}"


def compact_line(logs: dict[str, Any], step: int, max_steps: int) -> str | None:
    """The console line of one ``on_log`` dict; None for a dict with nothing worth a line.

    >>> compact_line({"loss": 0.25, "reward": 1.125, "rewards/accuracy/mean": 0.5, "rewards/mine/mean": 0.75,
    ...               "learning_rate": 5e-05, "epoch": 0.1}, 10, 120)
    'step 10/120 | loss 0.25 | reward 1.125 | accuracy 0.5 | lr 5.00e-05 | mine 0.75'
    """
    if "train_runtime" in logs:
        parts = [f"done: {step} steps in {_number(logs['train_runtime'])} s"]
        if "train_loss" in logs:
            parts.append(f"mean loss {_number(logs['train_loss'])}")
        return " | ".join(parts)
    shown = {key for _, key in SHOWN}
    parts = [f"step {step}/{max_steps}" if max_steps > 0 else f"step {step}"]
    parts += [f"{label} {_number(logs[key])}" for label, key in SHOWN if logs.get(key) is not None]
    for key, value in logs.items():  # rewards the table does not name (e.g. imported by path)
        if key.startswith("rewards/") and key.endswith("/mean") and key not in shown and value is not None:
            parts.append(f"{key[len('rewards/'):-len('/mean')]} {_number(value)}")
    return " | ".join(parts) if len(parts) > 1 else None


class CompactProgress(ProgressCallback):
    """transformers' progress bars, with `compact_line` under the bar instead of the metrics dict."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[override]
        if state.is_world_process_zero and self.training_bar is not None and logs:
            line = compact_line(logs, state.global_step, state.max_steps)
            if line:
                self.training_bar.write(line)


class CompactPrinter(TrainerCallback):
    """`compact_line` printed (``disable_tqdm``: no bars), in place of transformers' ``PrinterCallback``."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[override]
        if state.is_local_process_zero and logs:
            line = compact_line(logs, state.global_step, state.max_steps)
            if line:
                print(line, flush=True)


def use_compact_console(trainer: Any) -> None:
    """Swap a trainer's dict-printing callbacks for the compact ones (bars stay where they were)."""
    handler = trainer.callback_handler
    for old, new in ((ProgressCallback, CompactProgress), (PrinterCallback, CompactPrinter)):
        if any(type(callback) is old for callback in handler.callbacks):
            handler.remove_callback(old)
            handler.add_callback(new)
