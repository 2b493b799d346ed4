"""Step time of R1GRPOTrainer against plain ``trl.GRPOTrainer``: what the R1 layer costs per step.

    python benchmarks/overhead.py [--rounds 10] [--steps 3] [--batch-size 8] [--num-generations 8]
                                  [--max-completion-length 16] [--rewards accuracy format]

Both trainers start from the same random tiny model (``random_tiny_model``), train on the same
R1-Zero-templated arithmetic prompts with the same settings, and score with the same reward
callables: R1GRPOTrainer resolves the names through the registry (guarded rewards), plain TRL gets
the raw functions (``reward_funcs.get(name, guard=False)``), as a user of TRL alone would pass them.
Dynamic sampling stays off (the default), so this measures the fixed cost of the R1 layer.

The two trainers alternate in blocks of ``--steps`` optimizer steps (A B, then B A, ...) so that
load from other processes hits both alike. A step is timed from ``on_step_begin`` to ``on_step_end``
(generation, rewards, loss, backward and optimizer step), in wall time and in this process's CPU time
(steadier when other jobs share the machine); the first block of each trainer is warm-up and not
counted. The script prints the median step time of each and their ratio (target <= 1.05).
A random model rarely samples EOS, so every completion runs to ``--max-completion-length`` and both
trainers generate exactly the same number of tokens per step.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

import reward_funcs  # noqa: E402
from r1_trl.configs import R1GRPOConfig  # noqa: E402
from r1_trl.data.tasks.arithmetic import arithmetic_dataset  # noqa: E402
from r1_trl.data.templates import apply_template  # noqa: E402
from r1_trl.models.tiny import random_tiny_model  # noqa: E402
from r1_trl.trainers import R1GRPOTrainer  # noqa: E402


class StepTimer(TrainerCallback):
    """Wall time and this process's CPU time of every optimizer step, generation included."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._started = (0.0, 0.0)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.wall.append(time.perf_counter() - self._started[0])
        self.cpu.append(time.process_time() - self._started[1])


def shared_settings(args: argparse.Namespace, output_dir: Path) -> dict[str, Any]:
    return {
        "output_dir": str(output_dir),
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "per_device_train_batch_size": args.batch_size,
        "num_generations": args.num_generations,
        "max_completion_length": args.max_completion_length,
        "learning_rate": 1e-6,
        "max_steps": args.steps,
        "seed": args.seed,
    }


def build_trainers(args: argparse.Namespace, workdir: Path) -> dict[str, tuple[Any, StepTimer]]:
    model_dir = random_tiny_model(workdir / "model", seed=args.seed)
    prompts = apply_template(arithmetic_dataset(args.prompts, seed=args.seed, levels=2), "r1_zero")

    r1_timer, plain_timer = StepTimer(), StepTimer()
    r1_config = R1GRPOConfig(**shared_settings(args, workdir / "r1"), reward_funcs=list(args.rewards))
    r1 = R1GRPOTrainer(model=str(model_dir), args=r1_config, train_dataset=prompts, callbacks=[r1_timer])

    plain_config = GRPOConfig(**shared_settings(args, workdir / "plain"))
    raw_rewards = [reward_funcs.get(name, guard=False) for name in args.rewards]
    plain = GRPOTrainer(
        model=str(model_dir), reward_funcs=raw_rewards, args=plain_config, train_dataset=prompts,
        callbacks=[plain_timer],
    )  # fmt: skip
    for trainer in (r1, plain):
        trainer.remove_callback(PrinterCallback)  # keep the output to the summary
    return {"R1GRPOTrainer": (r1, r1_timer), "trl.GRPOTrainer": (plain, plain_timer)}


def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="r1-overhead-") as tmp:
        trainers = build_trainers(args, Path(tmp))
        names = list(trainers)
        started = time.perf_counter()
        for block in range(args.rounds + 1):
            order = names if block % 2 == 0 else names[::-1]
            for name in order:
                trainer, timer = trainers[name]
                if block == 0:  # warm-up, not counted
                    trainer.train()
                    timer.wall.clear()
                    timer.cpu.clear()
                else:
                    trainer.train()  # max_steps optimizer steps; the model carries over between blocks
        elapsed = time.perf_counter() - started
        timers = {name: trainers[name][1] for name in names}
        lengths = {name: mean_completion_length(trainers[name][0]) for name in names}
    r1_name, plain_name = names
    wall = {name: statistics.median(timers[name].wall) for name in names}
    cpu = {name: statistics.median(timers[name].cpu) for name in names}
    print(f"rewards {', '.join(args.rewards)}; {args.batch_size} completions of up to {args.max_completion_length} "
          f"tokens per step; {len(timers[r1_name].wall)} timed steps each in alternating blocks of {args.steps}; "
          f"{elapsed:.0f} s")
    for name in names:
        quartiles = statistics.quantiles(timers[name].wall, n=4)
        print(f"  {name:16s} median {wall[name] * 1000:7.1f} ms/step wall (IQR {quartiles[0] * 1000:.0f}-"
              f"{quartiles[2] * 1000:.0f}), {cpu[name] * 1000:7.1f} ms CPU; mean completion {lengths[name]:.1f} tokens")
    ratio = wall[r1_name] / wall[plain_name]
    cpu_ratio = cpu[r1_name] / cpu[plain_name]
    verdict = "within" if ratio <= args.target else "ABOVE"
    print(f"  ratio {r1_name} / {plain_name}: {ratio:.3f} wall ({verdict} the {args.target:.2f} target), "
          f"{cpu_ratio:.3f} CPU")
    return {"wall_ratio": ratio, "cpu_ratio": cpu_ratio, **{f"{name} wall": wall[name] for name in names}}


def mean_completion_length(trainer: Any) -> float:
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history if "completions/mean_length" in row]
    return statistics.fmean(lengths) if lengths else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed blocks per trainer, after a warm-up block")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per block")
    parser.add_argument("--batch-size", type=int, default=8, help="completions per step")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--max-completion-length", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=256, help="training prompts")
    parser.add_argument("--rewards", nargs="+", default=["accuracy", "format"], help="registry reward names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 keeps the timing steady on a shared machine")
    parser.add_argument("--target", type=float, default=1.05, help="acceptable step-time ratio")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
