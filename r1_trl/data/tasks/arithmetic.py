"""The seed's running example as a task family: "What is 2 + 3 * 4?" -> 14.

Levels:
    1. ``a op b``
    2. ``a op b op c`` (operator precedence matters)
    3. three operands with one pair of parentheses
    4. four operands, parentheses optional

Every problem carries its worked steps (``3 * 4 = 12``, ``2 + 12 = 14``) so the tiny base model's
pretraining corpus and the cold-start builders can write readable reasoning. Train and test
splits are disjoint by expression: a hash of the expression decides the split, so no seed or size
can leak a test problem into training.
"""

from __future__ import annotations

import hashlib
import operator
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from datasets import Dataset

OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
PRECEDENCE = {"+": 1, "-": 1, "*": 2}
LEVELS = (1, 2, 3, 4)
TEST_SHARE_BUCKETS = 10  # 1 bucket in 10 of the expression space is the test split


@dataclass(frozen=True)
class Problem:
    expression: str
    answer: int
    steps: tuple[str, ...]
    level: int

    @property
    def question(self) -> str:
        return self.question_in("en")

    def question_in(self, language: str) -> str:
        try:
            return QUESTION_FORMS[language].format(expression=self.expression)
        except KeyError:
            raise ValueError(f"no arithmetic question form for language {language!r}; known: {sorted(QUESTION_FORMS)}") from None

    def to_row(self, language: str = "en") -> dict[str, object]:
        question = self.question_in(language)
        return {
            "prompt": question,
            "problem": question,
            "solution": str(self.answer),
            "steps": list(self.steps),
            "level": self.level,
            "task": "arithmetic",
            "language": language,
        }


QUESTION_FORMS = {"en": "What is {expression}?", "zh": "{expression} 等于多少？"}


def solve(tokens: list[str]) -> tuple[int, list[str]]:
    """Evaluate a token list with precedence and parentheses, recording one step per operation.

    >>> solve(["2", "+", "3", "*", "4"])
    (14, ['3 * 4 = 12', '2 + 12 = 14'])
    """
    steps: list[str] = []
    values: list[int] = []
    ops: list[str] = []

    def apply_top() -> None:
        op = ops.pop()
        right, left = values.pop(), values.pop()
        result = OPERATORS[op](left, right)
        steps.append(f"{left} {op} {right} = {result}")
        values.append(result)

    for token in tokens:
        if token.lstrip("-").isdigit():
            values.append(int(token))
        elif token == "(":
            ops.append(token)
        elif token == ")":
            while ops[-1] != "(":
                apply_top()
            ops.pop()
        else:
            while ops and ops[-1] != "(" and PRECEDENCE[ops[-1]] >= PRECEDENCE[token]:
                apply_top()
            ops.append(token)
    while ops:
        apply_top()
    return values[0], steps


def problem_from_expression(expression: str, level: int = 0) -> Problem:
    """The problem for a literal expression, with its worked steps.

    >>> problem_from_expression("(2 + 3) * 4").steps
    ('2 + 3 = 5', '5 * 4 = 20')
    """
    answer, steps = solve(expression.replace("(", "( ").replace(")", " )").split())
    return Problem(expression=expression, answer=answer, steps=tuple(steps), level=level)


def random_problem(rng: random.Random, level: int) -> Problem:
    if level not in LEVELS:
        raise ValueError(f"arithmetic level must be one of {LEVELS}, got {level}")
    operand_count = {1: 2, 2: 3, 3: 3, 4: 4}[level]
    operands = [str(rng.randint(1, 9)) for _ in range(operand_count)]
    ops = [rng.choice(list(OPERATORS)) for _ in range(operand_count - 1)]
    tokens: list[str] = [operands[0]]
    for op, operand in zip(ops, operands[1:], strict=True):
        tokens += [op, operand]
    if level == 3 or (level == 4 and rng.random() < 0.5):
        start = 2 * rng.randrange(operand_count - 1)
        tokens = tokens[:start] + ["("] + tokens[start : start + 3] + [")"] + tokens[start + 3 :]
    answer, steps = solve(tokens)
    expression = " ".join(tokens).replace("( ", "(").replace(" )", ")")
    return Problem(expression=expression, answer=answer, steps=tuple(steps), level=level)


def split_of(expression: str) -> str:
    bucket = int(hashlib.sha256(expression.encode()).hexdigest(), 16) % TEST_SHARE_BUCKETS
    return "test" if bucket == 0 else "train"


def iter_problems(seed: int, levels: tuple[int, ...], split: str) -> Iterator[Problem]:
    """Endless stream of distinct problems of the given split (stops when the space is exhausted)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = random.Random(seed)
    seen: set[str] = set()
    misses = 0
    while misses < 10_000:
        problem = random_problem(rng, rng.choice(levels))
        if problem.expression in seen or split_of(problem.expression) != split:
            misses += 1
            continue
        misses = 0
        seen.add(problem.expression)
        yield problem


def language_sequence(
    languages: tuple[str, ...], weights: tuple[float, ...] | None = None
) -> Iterator[str]:
    """Endless languages in the given shares, spread evenly: each row goes to the language furthest below
    its share so far (equal shares alternate).

    >>> from itertools import islice
    >>> list(islice(language_sequence(("en", "zh"), (0.75, 0.25)), 8))
    ['en', 'en', 'zh', 'en', 'en', 'en', 'zh', 'en']
    """
    if not languages:
        raise ValueError("languages: give at least one language")
    weights = tuple(weights) if weights is not None else (1.0,) * len(languages)
    if len(weights) != len(languages) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"language_weights: need one non-negative weight per language {languages}, got {weights}")
    shares = [w / sum(weights) for w in weights]
    counts = [0] * len(languages)
    row = 0
    while True:
        row += 1
        deficits = [share * row - count for share, count in zip(shares, counts, strict=True)]
        chosen = deficits.index(max(deficits))
        counts[chosen] += 1
        yield languages[chosen]


def arithmetic_dataset(
    n: int,
    seed: int = 0,
    levels: int | tuple[int, ...] = 2,
    split: str = "train",
    languages: tuple[str, ...] = ("en",),
    language_weights: tuple[float, ...] | None = None,
) -> Dataset:
    """``n`` distinct problems as a ``Dataset`` with ``prompt``, ``solution``, ``steps``, ``level``, ``language``.

    With several ``languages`` the prompts alternate between them (English "What is 2 + 3?", Chinese
    "2 + 3 等于多少？"): the bilingual world where reasoning can mix languages. ``language_weights`` sets
    each language's share instead of equal shares (e.g. ``(0.99, 0.01)``), spread evenly over the rows.

    >>> ds = arithmetic_dataset(3, seed=0, levels=2, split="test")
    >>> ds.column_names
    ['prompt', 'problem', 'solution', 'steps', 'level', 'task', 'language']
    >>> list(arithmetic_dataset(2, seed=0, split="test", languages=("en", "zh"))["language"])
    ['en', 'zh']
    >>> arithmetic_dataset(200, seed=0, languages=("en", "zh"), language_weights=(0.98, 0.02))["language"].count("zh")
    4
    """
    levels = (levels,) if isinstance(levels, int) else tuple(levels)
    assign = language_sequence(tuple(languages), language_weights)
    rows = []
    for problem in iter_problems(seed, levels, split):
        rows.append(problem.to_row(next(assign)))
        if len(rows) == n:
            break
    if len(rows) < n:
        raise ValueError(f"only {len(rows)} distinct {split} problems exist at levels {levels}; asked for {n}")
    return Dataset.from_list(rows)


# --- checking a derivation (the cold-start stage's refine hook, r1_trl.data.tasks.hooks) ----------------

_EQUATION = re.compile(r"(?<![\w.])(-?\d+)[ \t]*([-+*×])[ \t]*(-?\d+)[ \t]*=[ \t]*(-?\d+)(?![\w.])")
_INTEGER = re.compile(r"\d+")
_APPLY: dict[str, Callable[[int, int], int]] = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def parse_steps(reasoning: str) -> list[tuple[int, str, int, int]]:
    """Every ``a op b = c`` equation of the reasoning, in order, as integers.

    >>> parse_steps("3 * 4 = 12\\n2 + 12 = 14")
    [(3, '*', 4, 12), (2, '+', 12, 14)]
    >>> parse_steps("8-9=-1, then -1 - 9 = -10")
    [(8, '-', 9, -1), (-1, '-', 9, -10)]
    """
    steps = []
    for match in _EQUATION.finditer(reasoning):
        left, op, right, result = match.groups()
        steps.append((int(left), "*" if op == "×" else op, int(right), int(result)))
    return steps


def check_steps(steps: Sequence[tuple[int, str, int, int]], problem: str, answer: str) -> str | None:
    """Why the steps do not make a derivation of ``answer`` for ``problem``, or None when they do.

    Each step must be correct arithmetic on numbers of the problem or results of earlier steps, and the
    last result must be the answer.

    >>> check_steps([(3, "*", 4, 12), (2, "+", 12, 14)], "What is 2 + 3 * 4?", "14") is None
    True
    >>> check_steps([(3, "*", 4, 13)], "What is 3 * 4?", "12")
    'invalid_step'
    >>> check_steps([(5, "*", 4, 20)], "What is 3 * 4?", "20")
    'steps_not_grounded'
    """
    if not steps:
        return "unparsable"
    available = {int(number) for number in _INTEGER.findall(problem)}
    for left, op, right, result in steps:
        if _APPLY[op](left, right) != result:
            return "invalid_step"
        if left not in available or right not in available:
            return "steps_not_grounded"
        available.add(result)
    if str(steps[-1][3]) != answer.strip():
        return "steps_do_not_reach_answer"
    return None


def derivation(reasoning: str, problem: str, answer: str) -> tuple[list[str] | None, str | None]:
    """The computation steps of ``reasoning`` as lines (``3 * 4 = 12``) when they derive ``answer`` for
    ``problem``: ``(lines, None)``; else ``(None, reason)`` (see `check_steps`, or ``unparsable``).

    >>> derivation("3 * 4 = 12, so 2 + 12 = 14", "What is 2 + 3 * 4?", "14")
    (['3 * 4 = 12', '2 + 12 = 14'], None)
    >>> derivation("it is 14", "What is 2 + 3 * 4?", "14")
    (None, 'unparsable')
    """
    steps = parse_steps(reasoning)
    reason = check_steps(steps, problem, answer)
    if reason:
        return None, reason
    return [f"{left} {op} {right} = {result}" for left, op, right, result in steps], None


def translate_question(problem: str, language: str) -> str | None:
    """The arithmetic question re-posed in ``language``, or None when it matches no known question form.

    >>> translate_question("2 + 3 * 4 等于多少？", "en")
    'What is 2 + 3 * 4?'
    >>> translate_question("Prove that 1 = 1.", "en") is None
    True
    """
    for form in QUESTION_FORMS.values():
        head, _, tail = form.partition("{expression}")
        if problem.startswith(head) and problem.endswith(tail) and len(problem) > len(head) + len(tail):
            return QUESTION_FORMS[language].format(expression=problem[len(head) : len(problem) - len(tail)])
    return None
