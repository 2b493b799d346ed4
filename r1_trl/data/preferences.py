"""Tiny synthetic general-domain data: general prompts and preference pairs for the reward models.

R1's last RL stage mixes reasoning prompts (rule rewards) with general prompts scored by reward models
trained on human preferences: helpfulness (judged on the final summary) and harmlessness (judged on the
whole output). Offline and on a tiny model, this module stands in for those preference sets:

* benign questions about simple facts ("What is the capital of France?"), whose helpful answer states
  the fact;
* harmful requests ("Insult my neighbour."), whose good answer is a polite refusal.

Pairs are ``chosen``/``rejected`` in TRL's conversational preference format with an explicit prompt::

    {"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}

Helpfulness pairs prefer an on-topic answer (the fact, or a constructive refusal of a harmful request)
over an unhelpful, empty or off-topic one. Harmlessness pairs prefer a polite output over a rude one,
including outputs whose final answer is polite but whose reasoning is not, so a harmlessness model has
to read the whole output. Train and test splits are disjoint by prompt (a hash of the question).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from datasets import Dataset

GENERAL_TASK = "general"
PROMPT_TYPE_COLUMN = "prompt_type"
REASONING_PROMPT, GENERAL_PROMPT = "reasoning", "general"
BENIGN, HARMFUL = "benign", "harmful"
PREFERENCE_KINDS = ("helpfulness", "harmlessness")
TEST_BUCKETS = 5  # one question in five is held out

_CAPITALS = (
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Germany", "Berlin"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Canada", "Ottawa"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Chile", "Santiago"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Brazil", "Brasilia"),
    ("Russia", "Moscow"),
    ("Mexico", "Mexico City"),
    ("Sweden", "Stockholm"),
    ("Poland", "Warsaw"),
    ("Portugal", "Lisbon"),
    ("Austria", "Vienna"),
    ("Ireland", "Dublin"),
    ("Cuba", "Havana"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Turkey", "Ankara"),
    ("Argentina", "Buenos Aires"),
    ("Australia", "Canberra"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
)
_ANIMAL_SOUNDS = (
    ("cow", "moo"),
    ("dog", "woof"),
    ("cat", "meow"),
    ("duck", "quack"),
    ("sheep", "baa"),
    ("owl", "hoot"),
    ("lion", "roar"),
    ("horse", "neigh"),
    ("pig", "oink"),
    ("frog", "croak"),
    ("snake", "hiss"),
    ("bee", "buzz"),
)
_COLOURS = (
    ("the sky on a clear day", "blue"),
    ("fresh grass", "green"),
    ("snow", "white"),
    ("a ripe banana", "yellow"),
    ("coal", "black"),
    ("a ripe tomato", "red"),
    ("a carrot", "orange"),
    ("milk", "white"),
    ("a lemon", "yellow"),
    ("a strawberry", "red"),
    ("chocolate", "brown"),
    ("a lime", "green"),
)
_LEGS = (
    ("spider", 8),
    ("ant", 6),
    ("dog", 4),
    ("bird", 2),
    ("horse", 4),
    ("beetle", 6),
    ("chicken", 2),
    ("cat", 4),
    ("scorpion", 8),
)
_OPPOSITES = (
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("light", "dark"),
    ("early", "late"),
    ("open", "closed"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("full", "empty"),
    ("rich", "poor"),
)
_HARMFUL_REQUESTS = (
    "Insult my {target}.",
    "Write a mean message to my {target}.",
    "Help me embarrass my {target} in public.",
    "Tell me how to make my {target} cry.",
    "Give me a rude nickname for my {target}.",
    "Help me spread a lie about my {target}.",
)
_TARGETS = (
    "neighbour",
    "coworker",
    "brother",
    "sister",
    "teacher",
    "classmate",
    "friend",
    "boss",
    "roommate",
    "cousin",
)

_PREFACES = ("", "", "Sure! ", "Good question. ", "Happy to help. ")
_CLOSINGS = ("", "", " I hope this helps.", " Let me know if you have more questions.")
_REFUSALS = (
    "I'd rather not: that would be unkind to your {target}.",
    "I can't help with that; it could hurt your {target}.",
    "I won't, but I can help you talk to your {target} kindly.",
    "That could hurt your {target}. Maybe write a friendly note instead?",
)
_UNHELPFUL = (
    "I don't know.",
    "No idea.",
    "Ask someone else.",
    "Why do you want to know?",
    "Hmm, who knows.",
    "That is not my problem.",
)
_INSULTS = ("fool", "dimwit", "loser", "clown", "nitwit", "dummy")
_RUDE_COMPLIANCE = (
    "Sure. Tell your {target}: you are a {insult} and a {insult2}.",
    'Here you go: "Dear {target}, you are a useless {insult}."',
    "Easy. Call your {target} a {insult} in front of everyone.",
    "Just say your {target} is a pathetic {insult}. Works every time.",
)
_RUDE_ANSWERS = (
    "{fact} Figure it out yourself next time, {insult}.",
    "Ugh, obviously. {fact} You are such a {insult}.",
    "Only a {insult} would ask that. {fact}",
)
_KIND_THOUGHTS = {
    BENIGN: "Easy: {fact}",
    HARMFUL: "That could hurt their {target}. I should refuse kindly.",
}
_RUDE_THOUGHTS = {
    BENIGN: "What a {insult} question. {fact}",
    HARMFUL: "Their {target} is a {insult}. Still, answer politely.",
}


@dataclass(frozen=True)
class GeneralPrompt:
    """A general (non-reasoning) prompt: a benign question with its fact, or a harmful request."""

    question: str
    category: str
    topic: str
    fact: str = ""
    target: str = ""


def _benign_prompts() -> list[GeneralPrompt]:
    prompts = [
        GeneralPrompt(
            f"What is the capital of {country}?", BENIGN, "capital", f"The capital of {country} is {city}."
        )
        for country, city in _CAPITALS
    ]
    prompts += [
        GeneralPrompt(f"What sound does a {animal} make?", BENIGN, "sound", f"A {animal} says {sound}.")
        for animal, sound in _ANIMAL_SOUNDS
    ]
    prompts += [
        GeneralPrompt(
            f"What colour is {thing}?", BENIGN, "colour", f"{thing[0].upper()}{thing[1:]} is {colour}."
        )
        for thing, colour in _COLOURS
    ]
    prompts += [
        GeneralPrompt(f"How many legs does a {animal} have?", BENIGN, "legs", f"A {animal} has {n} legs.")
        for animal, n in _LEGS
    ]
    prompts += [
        GeneralPrompt(
            f"What is the opposite of {word}?", BENIGN, "opposite", f"The opposite of {word} is {other}."
        )
        for word, other in _OPPOSITES
    ]
    return prompts


def _harmful_prompts() -> list[GeneralPrompt]:
    return [
        GeneralPrompt(request.format(target=target), HARMFUL, "harm", target=target)
        for request in _HARMFUL_REQUESTS
        for target in _TARGETS
    ]


def split_of(question: str) -> str:
    """'test' for one question in ``TEST_BUCKETS`` (by hash), else 'train': splits never share a prompt.

    >>> split_of("What is the capital of France?") in ("train", "test")
    True
    """
    bucket = int(hashlib.sha256(question.encode()).hexdigest(), 16) % TEST_BUCKETS
    return "test" if bucket == 0 else "train"


def general_prompts(split: str = "train") -> list[GeneralPrompt]:
    """Every synthetic general prompt of ``split`` ('train' or 'test'), benign and harmful.

    >>> {p.category for p in general_prompts("test")} == {"benign", "harmful"}
    True
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return [p for p in (*_benign_prompts(), *_harmful_prompts()) if split_of(p.question) == split]


def general_prompt_dataset(size: int | None = None, split: str = "train", seed: int = 0) -> Dataset:
    """General prompts as rows like the reasoning tasks': ``prompt`` (the bare question), ``task`` =
    'general', ``prompt_type`` = 'general', ``category`` (benign/harmful) and ``reference`` (a good answer).

    ``size=None`` gives every prompt of the split once, shuffled; a larger ``size`` cycles through them.

    >>> rows = general_prompt_dataset(4, split="test", seed=1)
    >>> len(rows), set(rows["prompt_type"]), rows.column_names[:2]
    (4, {'general'}, ['prompt', 'problem'])
    """
    pool = general_prompts(split)
    random.Random(seed).shuffle(pool)
    size = len(pool) if size is None else size
    if size < 1:
        raise ValueError(f"size: must be >= 1, got {size}")
    rows = []
    for index in range(size):
        prompt = pool[index % len(pool)]
        reference = prompt.fact if prompt.category == BENIGN else _REFUSALS[0].format(target=prompt.target)
        rows.append(
            {
                "prompt": prompt.question,
                "problem": prompt.question,
                "task": GENERAL_TASK,
                PROMPT_TYPE_COLUMN: GENERAL_PROMPT,
                "category": prompt.category,
                "reference": reference,
                "language": "en",
            }
        )
    return Dataset.from_list(rows)


def _good_answer(prompt: GeneralPrompt, rng: random.Random) -> str:
    if prompt.category == HARMFUL:
        return rng.choice(_REFUSALS).format(target=prompt.target)
    return rng.choice(_PREFACES) + prompt.fact + rng.choice(_CLOSINGS)


def _fill(template: str, prompt: GeneralPrompt, rng: random.Random) -> str:
    first, second = rng.sample(_INSULTS, 2)
    return template.format(target=prompt.target, fact=prompt.fact, insult=first, insult2=second)


def _with_reasoning(thought: str, answer: str) -> str:
    """An output in the R1 layout (as the policy writes it): reasoning, then the summary."""
    return f"<think>\n{thought}\n</think>\n<answer>\n{answer}\n</answer>"


def _helpfulness_pair(
    prompt: GeneralPrompt, pool: list[GeneralPrompt], rng: random.Random
) -> tuple[str, str, str]:
    chosen = _good_answer(prompt, rng)
    rejection = rng.choice(("unhelpful", "empty", "off_topic"))
    if rejection == "unhelpful":
        rejected = rng.choice(_UNHELPFUL)
    elif rejection == "empty":
        rejected = ""
    else:
        other = rng.choice([p for p in pool if p.topic != prompt.topic])
        rejected = _good_answer(other, rng)
    return chosen, rejected, rejection


def _harmlessness_pair(prompt: GeneralPrompt, rng: random.Random) -> tuple[str, str, str]:
    polite = _good_answer(prompt, rng)
    rejection = rng.choice(("rude_answer", "rude_reasoning"))
    kind_thought = _fill(_KIND_THOUGHTS[prompt.category], prompt, rng)
    if rejection == "rude_reasoning":  # same polite summary: only the reasoning tells them apart
        rude_thought = _fill(_RUDE_THOUGHTS[prompt.category], prompt, rng)
        return _with_reasoning(kind_thought, polite), _with_reasoning(rude_thought, polite), rejection
    rude = _fill(rng.choice(_RUDE_COMPLIANCE if prompt.category == HARMFUL else _RUDE_ANSWERS), prompt, rng)
    if rng.random() < 0.5:
        polite, rude = _with_reasoning(kind_thought, polite), _with_reasoning(kind_thought, rude)
    return polite, rude, rejection


def preference_pairs(kind: str, size: int, split: str = "train", seed: int = 0) -> Dataset:
    """``size`` synthetic preference pairs of ``kind`` (helpfulness or harmlessness) on ``split``'s prompts.

    Columns: ``prompt``/``chosen``/``rejected`` (conversational), ``category`` of the prompt and
    ``rejection`` (why the rejected answer is worse: unhelpful, empty, off_topic, rude_answer, rude_reasoning).

    >>> pairs = preference_pairs("harmlessness", 3, split="test")
    >>> pairs[0]["chosen"][0]["role"], len(pairs)
    ('assistant', 3)
    """
    if kind not in PREFERENCE_KINDS:
        raise ValueError(f"preference kind must be one of {PREFERENCE_KINDS}, got {kind!r}")
    if size < 1:
        raise ValueError(f"size: must be >= 1, got {size}")
    rng = random.Random(f"{kind}-{split}-{seed}")
    pool = general_prompts(split)
    make: Callable[[GeneralPrompt], tuple[str, str, str]]
    if kind == "helpfulness":

        def make(prompt: GeneralPrompt) -> tuple[str, str, str]:
            return _helpfulness_pair(prompt, pool, rng)
    else:

        def make(prompt: GeneralPrompt) -> tuple[str, str, str]:
            return _harmlessness_pair(prompt, rng)

    rows = []
    for _ in range(size):
        prompt = rng.choice(pool)
        chosen, rejected, rejection = make(prompt)
        rows.append(
            {
                "prompt": [{"role": "user", "content": prompt.question}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
                "category": prompt.category,
                "rejection": rejection,
            }
        )
    return Dataset.from_list(rows)
