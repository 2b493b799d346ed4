"""Step time of R1GRPOTrainer against plain ``trl.GRPOTrainer``: what the R1 layer costs per step.

    python benchmarks/overhead.py [--rounds 6] [--steps 3] [--batch-size 8] [--num-generations 8]
                                  [--max-completion-length 24] [--rewards accuracy format]

Both trainers start from the same random tiny model (``random_tiny_model``), train on the same
R1-Zero-templated arithmetic prompts with the same settings, and score with the same reward
callables: R1GRPOTrainer resolves the names through the registry (guarded rewards), plain TRL gets
the raw functions (``reward_funcs.get(name, guard=False)``), as a user of TRL alone would pass them.
Dynamic sampling stays off (the default), so this measures the fixed cost of the R1 layer.

The two trainers alternate in blocks of ``--steps`` optimizer steps (A B, then B A, ...) so that
load from other processes hits both alike. A step is timed from ``on_step_begin`` to ``on_step_end``
(generation, rewards, loss, backward and optimizer step); the first block of each trainer is warm-up
and not counted. The script prints the median step time of each and their ratio (target <= 1.05).
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
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

import reward_funcs  # noqa: E402
from r1_trl.configs import R1GRPOConfig  # noqa: E402
from r1_trl.data.tasks.arithmetic import arithmetic_dataset  # noqa: E402
from r1_trl.data.templates import apply_template  # noqa: E402
from r1_trl.models.tiny import random_tiny_model  # noqa: E402
from r1_trl.trainers import R1GRPOTrainer  # noqa: E402


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step, generation included."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def shared_settings(args: argparse.Namespace, output_dir: Path) -> dict[str, Any]:
    return {
        "output_dir": str(output_dir),
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1_000_000,
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
    return {"R1GRPOTrainer": (r1, r1_timer), "trl.GRPOTrainer": (plain, plain_timer)}


def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="r1-overhead-") as tmp:
        trainers = build_trainers(args, Path(tmp))
        names = list(trainers)
        counted: dict[str, list[float]] = {name: [] for name in names}
        started = time.perf_counter()
        for block in range(args.rounds + 1):  # block 0 is warm-up
            order = names if block % 2 == 0 else names[::-1]
            for name in order:
                trainer, timer = trainers[name]
                timer.seconds.clear()
                trainer.train()  # max_steps optimizer steps; the model carries over between blocks
                if block > 0:
                    counted[name].extend(timer.seconds)
        elapsed = time.perf_counter() - started
    medians = {name: statistics.median(seconds) for name, seconds in counted.items()}
    ratio = medians["R1GRPOTrainer"] / medians["trl.GRPOTrainer"]
    steps = len(counted["R1GRPOTrainer"])
    print(f"rewards {', '.join(args.rewards)}; {args.batch_size} completions x {args.max_completion_length} tokens "
          f"per step; {steps} timed steps each, alternating blocks of {args.steps}; {elapsed:.0f} s")
    for name in names:
        quartiles = statistics.quantiles(counted[name], n=4)
        print(f"  {name:16s} median {medians[name] * 1000:7.1f} ms/step  (IQR {quartiles[0] * 1000:.1f}-"
              f"{quartiles[2] * 1000:.1f} ms)")
    verdict = "within" if ratio <= args.target else "ABOVE"
    print(f"  ratio R1GRPOTrainer / trl.GRPOTrainer = {ratio:.3f} ({verdict} the {args.target:.2f} target)")
    return {**medians, "ratio": ratio}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="timed blocks per trainer (after one warm-up block)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per block")
    parser.add_argument("--batch-size", type=int, default=8, help="completions per step")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--max-completion-length", type=int, default=24)
    parser.add_argument("--prompts", type=int, default=256, help="training prompts")
    parser.add_argument("--rewards", nargs="+", default=["accuracy", "format"], help="registry reward names")
    parser.add_argument("--seed", type=int, default=0)
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
    run(args)


if __name__ == "__main__":
    main()
