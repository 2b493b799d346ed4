"""Tiny synthetic non-reasoning SFT data: greetings, facts, translation and rewriting, in English and Chinese.

R1's second SFT stage mixes about 200k non-reasoning samples (writing, factual QA, self-cognition,
translation) into 600k reasoning samples. This module is the offline stand-in for that share: a small,
deterministic pool of correct-by-construction conversations in each language.

Chain of thought: none. The paper gives simple queries ("hello") no CoT. Every reply here is simple, so
by default (``think_style="empty"``) the completion is an empty think block followed by the reply in
answer tags::

    <think>
    </think>
    <answer>
    Hello! How can I help you today?
    </answer>

This keeps one output layout across the whole SFT mix (the reasoning rows use the same tags), so the
format reward and answer parsing of the later RL stages apply to every prompt, and the model learns to
close the think block at once when there is nothing to reason about, which is also what R1's released
models do. ``think_style="none"`` gives the bare reply instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from datasets import Dataset

from r1_trl.data.templates import chat_prompt

THINK_STYLES = ("empty", "none")
GENERAL_LANGUAGES = ("en", "zh")
CATEGORIES = ("greeting", "fact", "translation", "rewrite")


@dataclass(frozen=True)
class GeneralExample:
    """One non-reasoning exchange: the user's message, the reply, the message's language, its category."""

    prompt: str
    reply: str
    language: str
    category: str


# (English message, English reply, Chinese message, Chinese reply)
GREETINGS = (
    ("Hello!", "Hello! How can I help you today?", "你好！", "你好！有什么可以帮你的吗？"),
    ("Good morning!", "Good morning! What can I do for you?", "早上好！", "早上好！今天有什么可以帮你的？"),
    ("Good evening!", "Good evening! How can I help?", "晚上好！", "晚上好！有什么需要帮忙的吗？"),
    ("Thank you!", "You're welcome!", "谢谢你！", "不客气！"),
    ("Goodbye!", "Goodbye! Have a nice day.", "再见！", "再见！祝你一天愉快。"),
    ("Who are you?", "I am an AI assistant. I can answer questions and solve problems.",
     "你是谁？", "我是一个人工智能助手，可以回答问题和解决问题。"),
)

# (country, capital) in English, then in Chinese
CAPITALS = (
    ("France", "Paris", "法国", "巴黎"),
    ("Japan", "Tokyo", "日本", "东京"),
    ("China", "Beijing", "中国", "北京"),
    ("Italy", "Rome", "意大利", "罗马"),
    ("Egypt", "Cairo", "埃及", "开罗"),
    ("Germany", "Berlin", "德国", "柏林"),
    ("Spain", "Madrid", "西班牙", "马德里"),
    ("Russia", "Moscow", "俄罗斯", "莫斯科"),
    ("the United Kingdom", "London", "英国", "伦敦"),
    ("Canada", "Ottawa", "加拿大", "渥太华"),
    ("Australia", "Canberra", "澳大利亚", "堪培拉"),
    ("India", "New Delhi", "印度", "新德里"),
    ("South Korea", "Seoul", "韩国", "首尔"),
    ("Thailand", "Bangkok", "泰国", "曼谷"),
    ("Greece", "Athens", "希腊", "雅典"),
    ("Kenya", "Nairobi", "肯尼亚", "内罗毕"),
)

# (English question, English answer, Chinese question, Chinese answer)
FACTS = (
    ("How many days are in a week?", "A week has seven days.", "一周有几天？", "一周有七天。"),
    ("How many legs does a spider have?", "A spider has eight legs.", "蜘蛛有几条腿？", "蜘蛛有八条腿。"),
    ("What color is the sky on a clear day?", "On a clear day the sky is blue.", "晴天的天空是什么颜色？",
     "晴天的天空是蓝色的。"),
    ("At what temperature does water freeze?", "Water freezes at 0 degrees Celsius.", "水在多少度结冰？",
     "水在零摄氏度结冰。"),
    ("How many months are in a year?", "A year has twelve months.", "一年有几个月？", "一年有十二个月。"),
    ("Which planet do we live on?", "We live on the Earth.", "我们住在哪个星球上？", "我们住在地球上。"),
    ("Where does the sun rise?", "The sun rises in the east.", "太阳从哪边升起？", "太阳从东边升起。"),
    ("What do bees make?", "Bees make honey.", "蜜蜂会酿什么？", "蜜蜂会酿蜂蜜。"),
)

# (English phrase, Chinese phrase)
PHRASES = (
    ("Good morning.", "早上好。"),
    ("Thank you very much.", "非常感谢。"),
    ("I like reading books.", "我喜欢读书。"),
    ("The weather is nice today.", "今天天气很好。"),
    ("Where is the library?", "图书馆在哪里？"),
    ("See you tomorrow.", "明天见。"),
    ("Happy birthday!", "生日快乐！"),
    ("I am a student.", "我是学生。"),
    ("The cat is sleeping.", "猫在睡觉。"),
    ("Please sit down.", "请坐。"),
    ("It is raining outside.", "外面在下雨。"),
    ("I drink tea every morning.", "我每天早上喝茶。"),
)

# Sentences "<subject> is <adjective>." / "<主语>很<形容词>。" built from these pairs.
SUBJECTS = (
    ("the room", "房间"), ("the river", "河"), ("the city", "城市"), ("the road", "路"),
    ("this book", "这本书"), ("the garden", "花园"), ("the tea", "茶"), ("the mountain", "山"),
)
ADJECTIVES = (
    ("big", "大"), ("quiet", "安静"), ("long", "长"), ("old", "旧"),
    ("clean", "干净"), ("beautiful", "美"), ("cold", "冷"), ("busy", "忙"),
)


def _greetings() -> Iterator[GeneralExample]:
    for en_message, en_reply, zh_message, zh_reply in GREETINGS:
        yield GeneralExample(en_message, en_reply, "en", "greeting")
        yield GeneralExample(zh_message, zh_reply, "zh", "greeting")


def _facts() -> Iterator[GeneralExample]:
    for country, capital, zh_country, zh_capital in CAPITALS:
        yield GeneralExample(f"What is the capital of {country}?", f"The capital of {country} is {capital}.",
                             "en", "fact")
        yield GeneralExample(f"{zh_country}的首都是哪里？", f"{zh_country}的首都是{zh_capital}。", "zh", "fact")
    for en_question, en_answer, zh_question, zh_answer in FACTS:
        yield GeneralExample(en_question, en_answer, "en", "fact")
        yield GeneralExample(zh_question, zh_answer, "zh", "fact")


def _translations() -> Iterator[GeneralExample]:
    """Both directions, asked in both languages (the reply is in the target language of the translation)."""
    for english, chinese in PHRASES:
        yield GeneralExample(f'Translate into Chinese: "{english}"', chinese, "en", "translation")
        yield GeneralExample(f'Translate into English: "{chinese}"', english, "en", "translation")
        yield GeneralExample(f"把这句话翻译成英文：“{chinese}”", english, "zh", "translation")
        yield GeneralExample(f"把这句话翻译成中文：“{english}”", chinese, "zh", "translation")


def _rewrites() -> Iterator[GeneralExample]:
    """Statement -> question and statement -> negation, for every subject/adjective pair."""
    for subject, zh_subject in SUBJECTS:
        for adjective, zh_adjective in ADJECTIVES:
            statement = f"{subject[0].upper()}{subject[1:]} is {adjective}."
            zh_statement = f"{zh_subject}很{zh_adjective}。"
            yield GeneralExample(f"Rewrite as a question: {statement}", f"Is {subject} {adjective}?", "en", "rewrite")
            yield GeneralExample(f"Make this sentence negative: {statement}",
                                 f"{subject[0].upper()}{subject[1:]} is not {adjective}.", "en", "rewrite")
            yield GeneralExample(f"把这句话改写成问句：{zh_statement}", f"{zh_subject}很{zh_adjective}吗？", "zh", "rewrite")
            yield GeneralExample(f"把这句话改成否定句：{zh_statement}", f"{zh_subject}不{zh_adjective}。", "zh", "rewrite")


def general_examples(languages: Sequence[str] = GENERAL_LANGUAGES) -> list[GeneralExample]:
    """Every distinct example in ``languages``, in a fixed order.

    >>> examples = general_examples(["zh"])
    >>> {e.language for e in examples}, sorted({e.category for e in examples})
    ({'zh'}, ['fact', 'greeting', 'rewrite', 'translation'])
    """
    unknown = [language for language in languages if language not in GENERAL_LANGUAGES]
    if unknown or not languages:
        raise ValueError(f"general data exists for the languages {list(GENERAL_LANGUAGES)}; got {list(languages)}")
    pool = [*_greetings(), *_facts(), *_translations(), *_rewrites()]
    return [example for example in pool if example.language in languages]


def format_reply(reply: str, think_style: str = "empty") -> str:
    """The completion text of a reply without reasoning (see the module docstring).

    >>> format_reply("Hi!")
    '<think>\\n</think>\\n<answer>\\nHi!\\n</answer>'
    >>> format_reply("Hi!", think_style="none")
    'Hi!'
    """
    if think_style == "empty":
        return f"<think>\n</think>\n<answer>\n{reply}\n</answer>"
    if think_style == "none":
        return reply
    raise ValueError(f"think_style must be one of {THINK_STYLES}, got {think_style!r}")


def sample_examples(n: int, languages: Sequence[str] = GENERAL_LANGUAGES, seed: int = 0) -> list[GeneralExample]:
    """``n`` examples, spread over the (category, language) strata round-robin, each stratum shuffled.

    No example repeats before the whole pool is used: a stratum that runs out drops out of the rotation
    until every stratum has run out; then a new pass starts, in a new shuffled order (``n`` may exceed
    the pool; rows then repeat).

    >>> [(e.category, e.language) for e in sample_examples(4, ["en", "zh"])]
    [('greeting', 'en'), ('greeting', 'zh'), ('fact', 'en'), ('fact', 'zh')]
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    strata: dict[tuple[str, str], list[GeneralExample]] = {}
    for example in general_examples(languages):
        strata.setdefault((example.category, example.language), []).append(example)
    order = list(languages)
    keys = sorted(strata, key=lambda key: (CATEGORIES.index(key[0]), order.index(key[1])))
    chosen: list[GeneralExample] = []
    while len(chosen) < n:
        queues = {key: rng.sample(strata[key], len(strata[key])) for key in keys}
        while queues and len(chosen) < n:
            for key in list(queues):
                if len(chosen) == n:
                    break
                chosen.append(queues[key].pop())
                if not queues[key]:
                    del queues[key]
    return chosen


def general_rows(
    n: int,
    languages: Sequence[str] = GENERAL_LANGUAGES,
    seed: int = 0,
    think_style: str = "empty",
    system_prompt: str | None = None,
) -> list[dict[str, object]]:
    """``n`` conversational SFT rows: ``prompt``/``completion`` messages plus ``source``, ``language``,
    ``problem`` (the user message), ``solution`` (None: no rule-checkable answer) and ``category``."""
    if think_style not in THINK_STYLES:
        raise ValueError(f"think_style must be one of {THINK_STYLES}, got {think_style!r}")
    return [
        {
            "prompt": chat_prompt(example.prompt, system_prompt),
            "completion": [{"role": "assistant", "content": format_reply(example.reply, think_style)}],
            "source": "general",
            "language": example.language,
            "problem": example.prompt,
            "solution": None,
            "category": example.category,
        }
        for example in sample_examples(n, languages, seed)
    ]


def general_dataset(
    n: int,
    languages: Sequence[str] = GENERAL_LANGUAGES,
    seed: int = 0,
    think_style: str = "empty",
    system_prompt: str | None = None,
) -> Dataset:
    """:func:`general_rows` as a ``datasets.Dataset``.

    >>> ds = general_dataset(4, ["en", "zh"], think_style="none")
    >>> len(ds), sorted(set(ds["language"]))
    (4, ['en', 'zh'])
    """
    return Dataset.from_list(general_rows(n, languages, seed, think_style, system_prompt))
