r"""Worst-case time of the ``accuracy`` reward on batches of adversarial completions.

    python benchmarks/accuracy_fuzz.py [--batches 16] [--batch-size 64] [--seed 0]
                                       [--batch-timeout 20] [--num-workers 2] [--timeout 5]

Each batch holds ``--batch-size`` completions drawn at random from generators of content that is slow to
extract, parse or verify: answers padded with hundreds of kilobytes of `` .``, a megabyte of prose, nested
``\text{`` against a choice gold, distinct ``\Gamma(10^{10}+k)`` answers, power towers and factorials,
5,000-digit numbers, brace and command soup, thousands of ``\boxed{``, random LaTeX expression trees, and
ordinary answers. Golds are numbers, symbolic expressions, letters and tuples. Every batch is scored by
one call of the guarded reward, as TRL calls it, and timed.

``--batch-timeout`` and ``--num-workers`` are passed only if the reward accepts them (so the same script
measures an older version of the reward for comparison: ``PYTHONPATH=<old checkout> python
benchmarks/accuracy_fuzz.py``). Printed: every batch's seconds, the worst, the median, how many batches
took over 2 s, and the rows left unfinished (scored None) by the batch deadline.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import random
import statistics
import string
import time
from collections.abc import Callable

import reward_funcs
import reward_funcs.accuracy

Generator = Callable[[random.Random], tuple[str, str]]
GOLDS = ["5", "x+1", "\\frac{1}{2}", "B", "(1, 2)", "14", "2\\sqrt{3}"]


def padded_dots(rng: random.Random) -> tuple[str, str]:
    return "<answer>1" + " ." * rng.randint(20_000, 200_000) + "</answer>", rng.choice(GOLDS)


def megabyte_of_prose(rng: random.Random) -> tuple[str, str]:
    words = [rng.choice(["so", "then", "we", "get", "the", "total", "is", str(rng.randint(0, 999))]) for _ in range(60)]
    block = " ".join(words) + " "
    return block * (1_000_000 // len(block)), rng.choice(GOLDS)


def nested_text(rng: random.Random) -> tuple[str, str]:
    depth = rng.randint(2_000, 10_000)
    return "<answer>" + "\\text{" * depth + "A" + "}" * depth + "</answer>", "B"


def gamma(rng: random.Random) -> tuple[str, str]:
    return f"\\boxed{{\\Gamma(10^{{10}}+{rng.randint(1, 10**6)})}}", rng.choice(["x+1", "5"])


def huge_power(rng: random.Random) -> tuple[str, str]:
    answer = rng.choice(
        [
            f"{rng.randint(2, 9)}^{{{rng.randint(2, 9)}^{{{rng.randint(2, 9)}^{{{rng.randint(2, 9)}}}}}}}",
            f"({rng.randint(10**6, 10**7)})!",
            f"10^{{10^{{{rng.randint(5, 10)}}}}} - 10^{{10^{{{rng.randint(5, 10)}}}}}",
            f"{rng.randint(2, 9)}^{{{rng.randint(10**8, 10**9)}}} + x",
            f"\\sqrt{{{rng.randint(10**7, 10**8)}!}}",
        ]
    )
    return f"<answer>{answer}</answer>", rng.choice(GOLDS)


def long_digits(rng: random.Random) -> tuple[str, str]:
    digits = "".join(rng.choice(string.digits) for _ in range(rng.randint(4_000, 6_000)))
    return f"<answer>{digits}</answer>", rng.choice([digits, "5"])


def brace_soup(rng: random.Random) -> tuple[str, str]:
    pieces = ["{", "}", "\\frac", "\\sqrt", "^", "_", "!", "(", ")", "\\left(", "\\right)", "1", "x", "\\cdot", "$"]
    body = "".join(rng.choice(pieces) for _ in range(rng.randint(2_000, 20_000)))
    return rng.choice([f"<answer>{body}</answer>", f"\\boxed{{{body}}}", body]), rng.choice(GOLDS)


def many_boxes(rng: random.Random) -> tuple[str, str]:
    return "\\boxed{" * rng.randint(5_000, 50_000) + "1", rng.choice(GOLDS)


def expression_tree(rng: random.Random, depth: int = 0) -> str:
    if depth > 5 or rng.random() < 0.25:
        return rng.choice(["x", "y", "2", "7", "\\pi", "e", str(rng.randint(10, 10**6))])
    left, right = expression_tree(rng, depth + 1), expression_tree(rng, depth + 1)
    return rng.choice(
        [
            f"\\frac{{{left}}}{{{right}}}",
            f"{left}^{{{right}}}",
            f"\\sqrt{{{left}}}",
            f"({left})!",
            f"{left} + {right}",
            f"{left} \\cdot {right}",
            f"\\sin({left})",
            f"\\log({left})",
            f"\\int_0^{{{left}}} {right} dx",
            f"\\sum_{{k=1}}^{{{left}}} {right}",
        ]
    )


def random_expression(rng: random.Random) -> tuple[str, str]:
    return f"<answer>{expression_tree(rng)}</answer>", rng.choice(GOLDS)


def ordinary(rng: random.Random) -> tuple[str, str]:
    gold = rng.choice(GOLDS)
    answer = rng.choice([gold, "7", "x+2", "C", "(2, 1)"])
    return f"<think>{' '.join(['we get', str(rng.randint(1, 99))] * 20)}</think><answer>{answer}</answer>", gold


GENERATORS: list[tuple[Generator, float]] = [
    (padded_dots, 1.0),
    (megabyte_of_prose, 0.3),
    (nested_text, 1.0),
    (gamma, 2.0),
    (huge_power, 2.0),
    (long_digits, 1.0),
    (brace_soup, 1.0),
    (many_boxes, 0.5),
    (random_expression, 3.0),
    (ordinary, 4.0),
]


def make_batch(rng: random.Random, size: int) -> tuple[list[str], list[str]]:
    makers, weights = zip(*GENERATORS, strict=True)
    rows = [rng.choices(makers, weights)[0](rng) for _ in range(size)]
    return [completion for completion, _ in rows], [gold for _, gold in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per answer")
    parser.add_argument("--batch-timeout", type=float, default=20.0, help="seconds per batch (if supported)")
    parser.add_argument("--num-workers", type=int, default=2, help="verification workers (if supported)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    accepted = inspect.signature(reward_funcs.accuracy.build_accuracy).parameters
    config: dict[str, float] = {"timeout": args.timeout}
    if "batch_timeout" in accepted:
        config.update(batch_timeout=args.batch_timeout, num_workers=args.num_workers)
    print(f"accuracy from {reward_funcs.__file__}; configuration {config}")
    reward = reward_funcs.get("accuracy", **config)
    reward(["<answer>1</answer>"], solution=["x+1"])  # start the worker(s): not part of any batch's time

    rng = random.Random(args.seed)
    seconds: list[float] = []
    unfinished = 0
    for number in range(args.batches):
        completions, golds = make_batch(rng, args.batch_size)
        metrics: dict[str, float] = {}
        started = time.perf_counter()
        scores = reward(completions, solution=golds, log_metric=metrics.__setitem__)
        elapsed = time.perf_counter() - started
        seconds.append(elapsed)
        unfinished += int(metrics.get("accuracy/unfinished", 0))
        print(f"batch {number:3d}: {elapsed:7.2f} s, {metrics}, {sum(s is None for s in scores)} None", flush=True)
    print(
        f"\n{len(seconds)} batches of {args.batch_size}: worst {max(seconds):.2f} s, median "
        f"{statistics.median(seconds):.2f} s, {sum(s > 2 for s in seconds)} over 2 s; "
        f"{unfinished} rows unfinished (None)"
    )


if __name__ == "__main__":
    main()
