"""The synthetic "web text" the tiny base model is pretrained on, standing in for DeepSeek-V3-Base's corpus.

Like web text, most documents are not in the R1 format: arithmetic facts, worked solutions in prose,
question/answer pairs. A minority follow the R1-Zero template; of those, ``tagged_share`` answer with
tagged reasoning and the rest answer at once. So the template elicits the format only sometimes before
RL, and the model is far better at arithmetic when it reasons step by step than when it answers at
once: the headroom R1-Zero's RL exploits.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from r1_trl.data.tasks.arithmetic import Problem, iter_problems
from r1_trl.data.templates import r1_zero_prompt


def tagged_completion(problem: Problem) -> str:
    """Completion text in the R1-Zero format, e.g. ``<think>\\n3 * 4 = 12\\n...</think>\\n<answer>\\n14\\n</answer>``."""
    reasoning = "\n".join(problem.steps)
    return f" <think>\n{reasoning}\n</think>\n<answer>\n{problem.answer}\n</answer>"


def _web_document(problem: Problem, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return "\n".join(problem.steps)
    if kind == 1:
        return f"{problem.question} {', '.join(problem.steps)}. The answer is {problem.answer}."
    return f"Q: {problem.question} A: {problem.answer}"


def corpus_documents(
    seed: int, levels: tuple[int, ...], template_share: float, tagged_share: float
) -> Iterator[str]:
    """Endless stream of pretraining documents built from training-split problems only.

    ``template_share`` of documents use the R1-Zero template; ``tagged_share`` of those answer in the
    tagged format.
    """
    rng = random.Random(seed)
    while True:
        for problem in iter_problems(rng.randrange(1 << 30), levels, "train"):
            if rng.random() >= template_share:
                yield _web_document(problem, rng)
            elif rng.random() < tagged_share:
                yield r1_zero_prompt(problem.question) + tagged_completion(problem)
            else:
                yield f"{r1_zero_prompt(problem.question)} The answer is {problem.answer}."
