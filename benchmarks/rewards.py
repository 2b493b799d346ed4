"""Benchmark the ``accuracy`` reward against naive math-verify: agreement and speed.

    python benchmarks/rewards.py [--n 3000] [--seed 0] [--timeout 5] [--group-size 8] [--pathological 3]
                                 [--big-batch 512] [--repeats 3] [--num-workers N]

Three parts, in one run:

1. Agreement per class on the hand-labelled gold/answer pairs of ``tests/fixtures/accuracy_pairs.jsonl``
   (several answers, negations, units, precision, words, unreadable golds, multiple choice, clock times,
   right answers math-verify misses, ordinary mathematics), this reward beside plain math-verify
   (``math_verify.parse`` of the gold and of the completion, then ``verify``).
2. A generated, labelled mix of GRPO-like completions, scored group by group (below).
3. Throughput on one batch of ``--big-batch`` long completions (reasoning of 2-5 KB before the answer, no
   pathological answer), as a training step scores them: the median over ``--repeats`` runs of one call of
   the reward against the plain math-verify loop.

The mix imitates GRPO batches: prompts with a gold answer, ``--group-size`` completions each (R1
``<answer>`` tags, ``\\boxed{}`` answers and plain "the answer is ..." endings), mostly plain numbers and
short LaTeX answers, a few multiple-choice, tuple/interval and equation answers, a few truncated
completions and unparseable golds, and ``--pathological`` answers that make SymPy grind (power towers, a huge
factorial). Every completion is built from a known-correct or known-wrong answer, which gives its
ground-truth label (None for an unparseable gold; 0 for a pathological answer).

The baseline is what a naive user writes: ``math_verify.parse`` on the gold and on the whole completion,
then ``verify``, per completion, on the main thread so that math-verify's own timeouts apply.
``accuracy`` is called once per group, as TRL calls a reward once per batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from math_verify import parse, verify  # noqa: E402 - imported before timing, as a user's program would

import reward_funcs.accuracy  # noqa: E402,F401 - registers "accuracy"
from reward_funcs import _verify_client, get  # noqa: E402

Label = float | None
PAIRS_FILE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "accuracy_pairs.jsonl"


@dataclass(frozen=True)
class Sample:
    gold: str
    completion: str
    label: Label
    category: str


@dataclass(frozen=True)
class Problem:
    """A gold answer, ways to write a correct answer, and ways to write a wrong one."""

    category: str
    gold: str
    correct: list[str]
    wrong: list[str]


# --- the mix -----------------------------------------------------------------------------------------


def integer_problem(rng: random.Random) -> Problem:
    n = rng.choice([rng.randint(0, 100), rng.randint(100, 5000), rng.randint(5000, 2_000_000)])
    gold = (
        str(n)
        if rng.random() < 0.7
        else f"She has {n // 2} and gets {n - n // 2} more: {n // 2} + {n - n // 2} = {n}.\n#### {n}"
    )
    unit = rng.choice(["apples", "dollars", "cm", "minutes", "students"])

    def written(value: int) -> list[str]:
        return [str(value), f"{value:,}", f"\\${value}", f"{value} {unit}", f"{value}\\text{{ {unit}}}"]

    wrong_value = n + rng.choice([-10, -2, -1, 1, 2, 10, n + 1])
    return Problem("integer", gold, written(n), written(wrong_value))


def decimal_problem(rng: random.Random) -> Problem:
    cents = rng.randint(101, 99_999)
    value = cents / 100
    wrong = (cents + rng.choice([-10, -1, 1, 10, 100])) / 100
    return Problem(
        "decimal",
        f"{value:.2f}",
        [f"{value:.2f}", f"{value:g}", f"\\${value:.2f}", f"{value:.3f}"],
        [f"{wrong:.2f}", f"{wrong:g}", f"{value * 10:.2f}"],
    )


def percent_problem(rng: random.Random) -> Problem:
    p = rng.randint(1, 99)
    q = p + rng.choice([-5, -1, 1, 5])
    return Problem(
        "percent", f"{p}\\%", [f"{p}\\%", f"{p}%", f"{p} percent", f"{p}"], [f"{q}\\%", f"{q}%", f"{q}"]
    )


def fraction_problem(rng: random.Random) -> Problem:
    while True:
        b = rng.randint(2, 12)
        a = rng.randint(1, 3 * b)
        if math.gcd(a, b) == 1:
            break
    k = rng.randint(2, 4)
    correct = [f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\frac{{{k * a}}}{{{k * b}}}"]
    if 10**6 % b == 0:  # terminating decimal, exact
        correct.append(f"{a / b:g}")
    wrong = [f"\\frac{{{a + 1}}}{{{b}}}", f"\\frac{{{a}}}{{{b + 1}}}", f"{a + 1}/{b}"]
    if a != b:
        wrong.append(f"\\frac{{{b}}}{{{a}}}")
    return Problem("fraction", f"\\frac{{{a}}}{{{b}}}", correct, wrong)


def radical_problem(rng: random.Random) -> Problem:
    if rng.random() < 0.6:
        k, m = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
        return Problem(
            "radical",
            f"{k}\\sqrt{{{m}}}",
            [f"{k}\\sqrt{{{m}}}", f"\\sqrt{{{k * k * m}}}", f"{k} \\sqrt {m}"],
            [f"{k + 1}\\sqrt{{{m}}}", f"{k}\\sqrt{{{m + 4}}}", f"\\sqrt{{{k * m}}}"],
        )
    q = rng.randint(2, 12)
    return Problem(
        "pi",
        f"\\frac{{\\pi}}{{{q}}}",
        [f"\\frac{{\\pi}}{{{q}}}", f"\\pi/{q}", f"\\frac{{1}}{{{q}}}\\pi"],
        [f"\\frac{{\\pi}}{{{q + 1}}}", f"{q}\\pi", f"\\frac{{2\\pi}}{{{q}}}"],
    )


def polynomial_problem(rng: random.Random) -> Problem:
    a = rng.randint(1, 9)
    return Problem(
        "polynomial", f"(x+{a})^2", [f"(x+{a})^2", f"x^2+{2 * a}x+{a * a}"], [f"x^2+{a * a}", f"(x-{a})^2"]
    )


def tuple_problem(rng: random.Random) -> Problem:
    a = rng.randint(-9, 9)
    b = a + rng.randint(1, 9)
    kind = rng.choice(["tuple", "interval", "set"])
    if kind == "tuple":
        return Problem(
            "tuple", f"({b}, {a})", [f"({b}, {a})", f"({b},{a})"], [f"({a}, {b})", f"({b}, {a + 1})"]
        )
    if kind == "interval":
        return Problem(
            "interval", f"[{a}, {b})", [f"[{a}, {b})", f"[{a},{b})"], [f"({a}, {b}]", f"[{a}, {b}]"]
        )
    return Problem(
        "set", f"\\{{{a}, {b}\\}}", [f"\\{{{b}, {a}\\}}", f"\\{{{a},{b}\\}}"], [f"\\{{{a}, {b + 1}\\}}"]
    )


def equation_problem(rng: random.Random) -> Problem:
    n = rng.randint(-20, 20)
    if rng.random() < 0.5:
        return Problem("equation", str(n), [f"x = {n}", f"x={n}"], [f"x = {n + 1}", f"x = {-n - 1}"])
    return Problem("equation", f"x = {n}", [f"{n}", f"x = {n}"], [f"{n + 1}", f"x = {n - 1}"])


def choice_problem(rng: random.Random) -> Problem:
    letters = "ABCDE"
    gold = rng.choice(letters)
    others = [letter for letter in letters if letter != gold]
    value = rng.randint(1, 99)
    return Problem(
        "choice",
        gold,
        [gold, f"({gold})", f"{gold}) {value}", f"\\text{{({gold})}}"],
        [rng.choice(others), f"({rng.choice(others)})"],
    )


CATEGORY_WEIGHTS: list[tuple[Callable[[random.Random], Problem], float]] = [
    (integer_problem, 0.45),
    (decimal_problem, 0.08),
    (percent_problem, 0.04),
    (fraction_problem, 0.12),
    (radical_problem, 0.12),
    (polynomial_problem, 0.02),
    (tuple_problem, 0.06),
    (equation_problem, 0.04),
    (choice_problem, 0.05),
]
UNPARSEABLE_GOLDS = ["", "\\frac{", "}{", "\\boxed{}"]
# Answers that make SymPy grind, written boxed (so that the baseline, too, reads them). accuracy rejects a
# bare power tower against a number at once (it provably cannot be equal); the factorial has to go through
# math-verify and costs accuracy its timeout.
PATHOLOGICAL_ANSWERS = ["9^{9^{9^{9}}}", "(10^{7})!", "9^{9^{9^{9^{9}}}}"]
WORDS = [
    "so",
    "then",
    "we",
    "get",
    "and",
    "the",
    "total",
    "is",
    "which",
    "gives",
    "thus",
    "hence",
    "first",
    "next",
]


def reasoning(rng: random.Random, sentences_range: tuple[int, int] = (1, 6)) -> str:
    sentences = []
    for _ in range(rng.randint(*sentences_range)):
        a, b = rng.randint(2, 300), rng.randint(2, 300)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        sentences.append(
            rng.choice(
                [f"{words} {a} + {b} = {a + b}.", f"{words} ${a} \\times {b} = {a * b}$.", f"{words}."]
            )
        )
    return " ".join(sentences)


def completion_text(rng: random.Random, answer: str, sentences: tuple[int, int] = (1, 6)) -> str:
    style = rng.random()
    if style < 0.6:
        return f"<think>{reasoning(rng, sentences)}</think>\n<answer>{answer}</answer>"
    if style < 0.9:
        return f"{reasoning(rng, sentences)}\nTherefore, the final answer is $\\boxed{{{answer}}}$."
    return f"{reasoning(rng, sentences)}\nSo the answer is ${answer}$."


def make_mix(
    n: int, group_size: int, pathological: int, seed: int, sentences: tuple[int, int] = (1, 6)
) -> list[Sample]:
    rng = random.Random(seed)
    makers, weights = zip(*CATEGORY_WEIGHTS, strict=True)
    samples: list[Sample] = []
    while len(samples) < n:
        problem = rng.choices(makers, weights)[0](rng)
        unparseable = rng.random() < 0.005
        gold = rng.choice(UNPARSEABLE_GOLDS) if unparseable else problem.gold
        p_correct = rng.uniform(0.2, 0.9)
        for _ in range(min(group_size, n - len(samples))):
            is_correct = rng.random() < p_correct
            answer = rng.choice(problem.correct if is_correct else problem.wrong)
            if rng.random() < 0.03:  # generation cut off before any final answer
                text, is_correct = f"<think>{reasoning(rng, sentences)} {' '.join(rng.choices(WORDS, k=5))}", False
            else:
                text = completion_text(rng, answer, sentences)
            label: Label = None if unparseable else float(is_correct)
            samples.append(Sample(gold, text, label, "unparseable gold" if unparseable else problem.category))
    for number, index in enumerate(rng.sample(range(len(samples)), min(pathological, len(samples)))):
        answer = PATHOLOGICAL_ANSWERS[number % len(PATHOLOGICAL_ANSWERS)]
        text = f"{reasoning(rng)}\nTherefore, the final answer is $\\boxed{{{answer}}}$."
        gold = samples[index].gold if samples[index].label is not None else "7"
        samples[index] = Sample(gold, text, 0.0, "pathological")
    return samples


# --- scorers -----------------------------------------------------------------------------------------


def score_with_accuracy(
    samples: list[Sample], group_size: int, timeout: float, num_workers: int | None = None
) -> tuple[list[Label], list[float], int]:
    """Scores; the seconds of each call, all on its pathological completion if it has one, else spread
    evenly; and how many answers ran out of time."""
    reward = get("accuracy", timeout=timeout, num_workers=num_workers)
    scores: list[Label] = []
    seconds: list[float] = []
    timeouts: list[float] = []
    for start in range(0, len(samples), group_size):
        group = samples[start : start + group_size]
        began = time.perf_counter()
        scores.extend(
            reward(
                [s.completion for s in group],
                solution=[s.gold for s in group],
                log_metric=lambda name, value: timeouts.append(value),
            )
        )
        elapsed = time.perf_counter() - began
        pathological = [s.category == "pathological" for s in group]
        if any(pathological):
            seconds.extend(elapsed / sum(pathological) if flag else 0.0 for flag in pathological)
        else:
            seconds.extend([elapsed / len(group)] * len(group))
    return scores, seconds, int(sum(timeouts))


def score_with_naive_math_verify(samples: list[Sample]) -> tuple[list[Label], list[float]]:
    scores: list[Label] = []
    seconds: list[float] = []
    for sample in samples:
        began = time.perf_counter()
        gold = parse(sample.gold)
        scores.append(float(verify(gold, parse(sample.completion))) if gold else None)
        seconds.append(time.perf_counter() - began)
    return scores, seconds


def pair_agreement(timeout: float, num_workers: int | None) -> None:
    """Part 1: agreement per class on the labelled pairs, this reward beside plain math-verify."""
    pairs = [json.loads(line) for line in PAIRS_FILE.read_text().splitlines() if line.strip()]
    # The layout math-verify is made for (a boxed answer in math mode): its best case.
    completions = [f"The final answer is $\\boxed{{{pair['answer']}}}$." for pair in pairs]
    ours = get("accuracy", timeout=timeout, num_workers=num_workers)(completions, solution=[p["gold"] for p in pairs])
    naive = []
    for pair, completion in zip(pairs, completions, strict=True):
        gold = parse(f"${pair['gold']}$")  # golds are bare LaTeX: in math mode, math-verify reads them best
        naive.append(float(verify(gold, parse(completion))) if gold else None)
    classes: dict[str, list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        classes[pair["class"]].append(index)
    print(f"agreement with the expected score, {len(pairs)} labelled pairs ({PAIRS_FILE.name}), answers boxed")
    print(f"{'class':24}{'pairs':>6}{'accuracy':>12}{'plain math-verify':>20}")

    def share(scores: list[Label], indices: list[int]) -> float:
        return sum(scores[i] == pairs[i]["expected"] for i in indices) / len(indices)

    for name, indices in sorted(classes.items()):
        print(f"{name:24}{len(indices):>6}{share(ours, indices):>12.1%}{share(naive, indices):>20.1%}")
    everything = list(range(len(pairs)))
    print(f"{'all':24}{len(pairs):>6}{share(ours, everything):>12.1%}{share(naive, everything):>20.1%}\n")


def big_batch_throughput(
    size: int, repeats: int, seed: int, timeout: float, num_workers: int | None, batch_timeout: float | None
) -> None:
    """Part 3: one call of the reward on ``size`` long completions against the plain math-verify loop."""
    samples = make_mix(size, size, 0, seed, sentences=(30, 60))
    reward = get("accuracy", timeout=timeout, num_workers=num_workers, batch_timeout=batch_timeout)
    chars = statistics.mean(len(sample.completion) for sample in samples)
    ours_seconds, naive_seconds = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        ours = reward([s.completion for s in samples], solution=[s.gold for s in samples])
        ours_seconds.append(time.perf_counter() - began)
        began = time.perf_counter()
        naive, _ = score_with_naive_math_verify(samples)
        naive_seconds.append(time.perf_counter() - began)
    ours_median, naive_median = statistics.median(ours_seconds), statistics.median(naive_seconds)
    print(f"\none batch of {size} long completions (mean {chars:.0f} characters), median of {repeats} runs, "
          f"batch_timeout {batch_timeout}:")
    print(f"  accuracy {ours_median:.2f} s (agreement {agreement(ours, samples):.1%}), plain math-verify "
          f"{naive_median:.2f} s (agreement {agreement(naive, samples):.1%})")
    print(f"  throughput ratio (accuracy / plain math-verify): {naive_median / ours_median:.2f}x")


def agreement(scores: list[Label], samples: list[Sample]) -> float:
    return sum(score == sample.label for score, sample in zip(scores, samples, strict=True)) / len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="number of completions (default 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-size", type=int, default=8, help="completions per prompt = per reward call")
    parser.add_argument("--pathological", type=int, default=3, help="power-tower completions in the mix")
    parser.add_argument(
        "--timeout", type=float, default=reward_funcs.accuracy.DEFAULT_TIMEOUT, help="accuracy's timeout"
    )
    parser.add_argument("--by-category", action="store_true", help="also print agreement per answer category")
    parser.add_argument("--big-batch", type=int, default=512, help="completions in the one-batch throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the one-batch throughput measure")
    parser.add_argument("--num-workers", type=int, default=None, help="accuracy's worker processes (default: its own)")
    parser.add_argument("--batch-timeout", type=float, default=60.0,
                        help="accuracy's batch bound in the one-batch run (the GRPO recipe default; 0: none)")
    args = parser.parse_args()
    if args.n < 1 or args.group_size < 1 or args.pathological < 0:
        parser.error("--n and --group-size must be positive, --pathological non-negative")
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # the baseline's timeout warnings

    _verify_client.start_workers(args.num_workers or _verify_client.DEFAULT_NUM_WORKERS)
    pair_agreement(args.timeout, args.num_workers)

    samples = make_mix(args.n, args.group_size, args.pathological, args.seed)
    counts = Counter(sample.category for sample in samples)
    print(
        f"mix: {len(samples)} completions, seed {args.seed}: "
        + ", ".join(f"{k} {v}" for k, v in counts.most_common())
    )

    _verify_client.shutdown()  # measure from a cold worker: its start-up is part of our cost
    began = time.perf_counter()
    ours, ours_seconds, ours_timeouts = score_with_accuracy(samples, args.group_size, args.timeout, args.num_workers)
    ours_total = time.perf_counter() - began
    began = time.perf_counter()
    naive, naive_seconds = score_with_naive_math_verify(samples)
    naive_total = time.perf_counter() - began

    normal = [i for i, sample in enumerate(samples) if sample.category != "pathological"]
    ours_normal = sum(ours_seconds[i] for i in normal)
    naive_normal = sum(naive_seconds[i] for i in normal)
    n_pathological = len(samples) - len(normal)

    def row(name: str, ours_value: str, naive_value: str) -> None:
        print(f"{name:40}{ours_value:>12}{naive_value:>20}")

    print()
    row("", "accuracy", "naive math-verify")
    row("seconds", f"{ours_total:.2f}", f"{naive_total:.2f}")
    row("completions / s", f"{len(samples) / ours_total:.1f}", f"{len(samples) / naive_total:.1f}")
    row("agreement with labels", f"{agreement(ours, samples):.1%}", f"{agreement(naive, samples):.1%}")
    row(
        f"seconds on the {n_pathological} pathological",
        f"{ours_total - ours_normal:.2f}",
        f"{naive_total - naive_normal:.2f}",
    )
    row(
        "completions / s without them",
        f"{len(normal) / ours_normal:.1f}",
        f"{len(normal) / naive_normal:.1f}",
    )
    print(f"\naccuracy ran out of time on {ours_timeouts} answer(s) (timeout {args.timeout:g} s)")
    print(
        f"throughput ratio (accuracy / naive): {naive_total / ours_total:.1f}x, "
        f"{naive_normal / ours_normal:.1f}x without the pathological completions"
    )
    if args.by_category:
        print(f"\n{'agreement by category':40}{'accuracy':>12}{'naive math-verify':>20}{'n':>8}")
        by_category: dict[str, list[int]] = defaultdict(list)
        for index, sample in enumerate(samples):
            by_category[sample.category].append(index)
        for category, indices in sorted(by_category.items()):
            subset = [samples[i] for i in indices]
            ours_subset = agreement([ours[i] for i in indices], subset)
            naive_subset = agreement([naive[i] for i in indices], subset)
            print(f"{category:40}{ours_subset:>12.1%}{naive_subset:>20.1%}{len(indices):>8}")
    if args.big_batch > 0 and args.repeats > 0:
        big_batch_throughput(args.big_batch, args.repeats, args.seed + 1, args.timeout, args.num_workers,
                             args.batch_timeout or None)


if __name__ == "__main__":
    main()
