"""Countdown: combine the given numbers with + - * / into an equation that equals the target.

Convention (TinyZero / "Countdown-Tasks-3to4"): every given number is used exactly once, each
operation may be used any number of times, parentheses are free. The reward
(``reward_funcs.countdown``) checks the same rule.

Problems are guaranteed solvable because they are built backwards: draw the operands, then merge
two random pool entries with a random valid operation until one value is left; that value is the
target. Every intermediate value is a positive integer no larger than ``max_target`` (division
only when exact), so the witness equation stays readable. Difficulty is the number of operands.

Train and test are disjoint by problem: a hash of (sorted numbers, target) decides the split, so
no seed or size can leak a test problem into training.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from datasets import Dataset, DatasetDict, Features, List, Value

MIN_OPERANDS, MAX_OPERANDS = 3, 6
TEST_SHARE_BUCKETS = 10  # 1 bucket in 10 of the problem space is the test split
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}

FEATURES = Features(
    {
        "prompt": Value("string"),
        "solution": Value("string"),
        "numbers": List(Value("int64")),
        "target": Value("int64"),
        "task": Value("string"),
    }
)


@dataclass(frozen=True)
class CountdownProblem:
    numbers: tuple[int, ...]
    target: int
    equation: str  # one equation reaching the target (a witness, not necessarily the only one)

    @property
    def key(self) -> str:
        return f"{sorted(self.numbers)}={self.target}"

    @property
    def question(self) -> str:
        return (
            f"Using the numbers {list(self.numbers)}, create an equation that equals {self.target}. "
            "You can use +, -, * and / and parentheses, and each number must be used exactly once. "
            f"Write the final answer as the equation alone (without '= {self.target}') inside "
            "<answer> </answer> tags, for example <answer>(1 + 2) * 3</answer>"
        )

    def to_row(self) -> dict[str, object]:
        return {
            "prompt": self.question,
            "solution": str(self.target),
            "numbers": list(self.numbers),
            "target": self.target,
            "task": "countdown",
        }


@dataclass(frozen=True)
class _Term:
    value: int
    text: str
    op: str | None  # top-level operator, None for a bare number


def _operand_text(term: _Term, parent_op: str, right_side: bool) -> str:
    if term.op is None:
        return term.text
    needs_parens = PRECEDENCE[term.op] < PRECEDENCE[parent_op] or (
        right_side and PRECEDENCE[term.op] == PRECEDENCE[parent_op] and parent_op in "-/"
    )
    return f"({term.text})" if needs_parens else term.text


def _combine(left: _Term, right: _Term, op: str) -> _Term:
    value = {
        "+": lambda: left.value + right.value,
        "-": lambda: left.value - right.value,
        "*": lambda: left.value * right.value,
        "/": lambda: left.value // right.value,
    }[op]()
    text = f"{_operand_text(left, op, False)} {op} {_operand_text(right, op, True)}"
    return _Term(value, text, op)


def _valid_operations(a: _Term, b: _Term, max_target: int) -> list[tuple[_Term, str, _Term]]:
    """Operations on the pair whose result is a positive integer <= max_target (both operand orders)."""
    options = []
    if a.value + b.value <= max_target:
        options.append((a, "+", b))
    if a.value * b.value <= max_target:
        options.append((a, "*", b))
    for left, right in ((a, b), (b, a)):
        if left.value > right.value:
            options.append((left, "-", right))
        if left.value % right.value == 0:
            options.append((left, "/", right))
    return options  # never empty: a == b allows a / b, otherwise the larger minus the smaller


def random_problem(
    rng: random.Random, operand_count: int, max_number: int = 100, max_target: int = 1000
) -> CountdownProblem:
    """Build one solvable problem with ``operand_count`` numbers drawn from 1..max_number.

    >>> problem = random_problem(random.Random(0), 3)
    >>> len(problem.numbers), 1 <= problem.target <= 1000
    (3, True)
    """
    if not MIN_OPERANDS <= operand_count <= MAX_OPERANDS:
        raise ValueError(f"countdown uses {MIN_OPERANDS}..{MAX_OPERANDS} numbers, got {operand_count}")
    if not 1 <= max_number <= max_target:
        raise ValueError(f"need 1 <= max_number <= max_target, got {max_number} and {max_target}")
    numbers = tuple(rng.randint(1, max_number) for _ in range(operand_count))
    pool = [_Term(n, str(n), None) for n in numbers]
    while len(pool) > 1:
        first, second = sorted(rng.sample(range(len(pool)), 2), reverse=True)
        a, b = pool.pop(first), pool.pop(second)
        left, op, right = rng.choice(_valid_operations(a, b, max_target))
        pool.append(_combine(left, right, op))
    return CountdownProblem(numbers=numbers, target=pool[0].value, equation=pool[0].text)


def split_of(problem: CountdownProblem) -> str:
    bucket = int(hashlib.sha256(problem.key.encode()).hexdigest(), 16) % TEST_SHARE_BUCKETS
    return "test" if bucket == 0 else "train"


def iter_problems(
    seed: int,
    min_numbers: int = 3,
    max_numbers: int = 4,
    split: str = "train",
    max_number: int = 100,
    max_target: int = 1000,
) -> Iterator[CountdownProblem]:
    """Endless stream of distinct problems of one split, operand count uniform in min..max."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not MIN_OPERANDS <= min_numbers <= max_numbers <= MAX_OPERANDS:
        raise ValueError(
            f"need {MIN_OPERANDS} <= min_numbers <= max_numbers <= {MAX_OPERANDS}, "
            f"got {min_numbers} and {max_numbers}"
        )
    rng = random.Random(seed)
    seen: set[str] = set()
    misses = 0
    while misses < 10_000:
        problem = random_problem(rng, rng.randint(min_numbers, max_numbers), max_number, max_target)
        if problem.key in seen or split_of(problem) != split:
            misses += 1
            continue
        misses = 0
        seen.add(problem.key)
        yield problem


def countdown_dataset(
    n: int,
    seed: int = 0,
    min_numbers: int = 3,
    max_numbers: int = 4,
    split: str = "train",
    max_number: int = 100,
    max_target: int = 1000,
) -> Dataset:
    """``n`` distinct Countdown problems with ``prompt``, ``solution``, ``numbers``, ``target``, ``task``.

    >>> ds = countdown_dataset(2, seed=0, min_numbers=3, max_numbers=3)
    >>> ds.column_names
    ['prompt', 'solution', 'numbers', 'target', 'task']
    >>> len(ds[0]["numbers"]), ds[0]["solution"] == str(ds[0]["target"])
    (3, True)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rows: list[dict[str, object]] = []
    if n:
        for problem in iter_problems(seed, min_numbers, max_numbers, split, max_number, max_target):
            rows.append(problem.to_row())
            if len(rows) == n:
                break
    if len(rows) < n:
        raise ValueError(f"only {len(rows)} distinct {split} countdown problems found; asked for {n}")
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return Dataset.from_dict(columns, features=FEATURES)


def countdown_splits(n_train: int, n_test: int, seed: int = 0, **kwargs: int) -> DatasetDict:
    """Disjoint ``train`` and ``test`` splits (see :func:`countdown_dataset` for ``kwargs``)."""
    return DatasetDict(
        train=countdown_dataset(n_train, seed=seed, split="train", **kwargs),
        test=countdown_dataset(n_test, seed=seed, split="test", **kwargs),
    )
