"""The synthetic "web text" the tiny base model is pretrained on, standing in for DeepSeek-V3-Base's corpus.

Like web text, most documents are not in the R1 format: arithmetic facts, worked solutions in prose,
question/answer pairs. A minority follow the R1-Zero template; of those, ``tagged_share`` answer with
tagged reasoning and the rest answer at once. So the template elicits the format only sometimes before
RL, and the model is far better at arithmetic when it reasons step by step than when it answers at
once: the headroom R1-Zero's RL exploits.

The corpus is bilingual (English and Chinese questions) and, like real web text, English-dominant in
its worked solutions: a sentence of prose that follows a Chinese question is in English with
probability ``english_prose_share``. So the base model's reasoning on Chinese prompts mixes languages,
the readability problem R1's cold start and language-consistency reward address.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from r1_trl.data.reasoning import PHRASES, check_step
from r1_trl.data.tasks.arithmetic import Problem, iter_problems
from r1_trl.data.templates import r1_zero_prompt

CORPUS_LANGUAGES = ("en", "zh")
_QA_FORMS = {"en": "Q: {question} A: {answer}", "zh": "问：{question} 答：{answer}"}
_SENTENCE_END = {"en": ".", "zh": "。"}


def tagged_completion(problem: Problem) -> str:
    """Completion text in the R1-Zero format, e.g. ``<think>\\n3 * 4 = 12\\n...</think>\\n<answer>\\n14\\n</answer>``."""
    reasoning = "\n".join(problem.steps)
    return f" <think>\n{reasoning}\n</think>\n<answer>\n{problem.answer}\n</answer>"


def prose_solution(problem: Problem, language: str, english_prose_share: float, rng: random.Random) -> str:
    """Worked solution in prose, one sentence per step; each sentence after a non-English question is
    English with probability ``english_prose_share`` (code-switching, as in English-dominant web text).

    >>> from r1_trl.data.tasks.arithmetic import problem_from_expression
    >>> print(prose_solution(problem_from_expression("2 + 3 * 4"), "en", 0.0, random.Random(0)))
    First, 3 * 4 = 12.
    Then, 2 + 12 = 14.
    Check: 14 - 12 = 2, so it holds.
    So the answer is 14.
    """
    def sentence_language() -> str:
        return "en" if rng.random() < english_prose_share else language

    lines = [
        PHRASES[sentence_language()]["first" if i == 0 else "then"].format(step=step)
        for i, step in enumerate(problem.steps)
    ]
    check = check_step(problem.steps)
    if check and rng.random() < 0.5:
        lines.append(PHRASES[sentence_language()]["check"].format(check=check))
    lines.append(PHRASES[sentence_language()]["summary"].format(answer=problem.answer))
    return "\n".join(lines)


def _web_document(problem: Problem, language: str, english_prose_share: float, rng: random.Random) -> str:
    question = problem.question_in(language)
    kind = rng.randrange(4)
    if kind == 0:
        return "\n".join(problem.steps)
    if kind == 1:
        return f"{question}\n{prose_solution(problem, language, english_prose_share, rng)}"
    if kind == 2:
        end = _SENTENCE_END[language]
        return f"{question} {', '.join(problem.steps)}{end} {PHRASES[language]['summary'].format(answer=problem.answer)}"
    return _QA_FORMS[language].format(question=question, answer=problem.answer)


def corpus_documents(
    seed: int,
    levels: tuple[int, ...],
    template_share: float,
    tagged_share: float,
    languages: Sequence[str] = CORPUS_LANGUAGES,
    english_prose_share: float = 0.3,
) -> Iterator[str]:
    """Endless stream of pretraining documents built from training-split problems only.

    ``template_share`` of documents use the R1-Zero template; ``tagged_share`` of those answer in the
    tagged format. Each document's question is in a language drawn uniformly from ``languages``.
    """
    unknown = [language for language in languages if language not in PHRASES or language not in _QA_FORMS]
    if unknown or not languages:
        raise ValueError(f"corpus languages must be a non-empty subset of {CORPUS_LANGUAGES}, got {languages}")
    rng = random.Random(seed)
    while True:
        for problem in iter_problems(rng.randrange(1 << 30), levels, "train"):
            language = rng.choice(tuple(languages))
            if rng.random() >= template_share:
                yield _web_document(problem, language, english_prose_share, rng)
                continue
            prompt = r1_zero_prompt(problem.question_in(language))
            if rng.random() < tagged_share:
                yield prompt + tagged_completion(problem)
            else:
                yield f"{prompt} The answer is {problem.answer}."
