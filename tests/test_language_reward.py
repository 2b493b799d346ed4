"""The ``language_consistency`` reward: share of target-language words in the reasoning, offline."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import reward_funcs
import reward_funcs.language  # noqa: F401 - registers the reward
from reward_funcs.language import (
    normalize_language,
    preload_models,
    reasoning_text,
    target_share,
    words_by_sentence,
)

ROOT = Path(__file__).resolve().parents[1]

EN = "First we need the sum of the first ten positive integers. Using the formula gives fifty five."
ES = "Primero necesitamos la suma de los diez primeros enteros positivos. La fórmula da cincuenta y cinco."
ZH = "首先我们需要计算前十个正整数的和。使用公式得到五十五。"
JA = "まず最初の十個の正の整数の和を計算する必要があります。公式を使うと五十五になります。"


def as_standard(text: str) -> str:
    return text


def as_conversational(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(params=[as_standard, as_conversational], ids=["standard", "conversational"])
def wrap(request: pytest.FixtureRequest) -> Callable[[str], Any]:
    return request.param


def consistency(texts: list[str], wrap: Callable[[str], Any], **kwargs: Any) -> list[float | None]:
    return reward_funcs.get("language_consistency")([wrap(text) for text in texts], **kwargs)


def word_count(text: str) -> int:
    return sum(len(sentence) for sentence in words_by_sentence(text))


# --- single-language reasoning -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "language"), [(EN, "en"), (ES, "es"), (ZH, "zh"), (JA, "ja")])
def test_reasoning_in_the_target_language_scores_one(text: str, language: str, wrap: Callable[[str], Any]) -> None:
    others = [code for code in ("en", "es", "zh", "ja") if code != language]
    completion = f"<think>{text}</think><answer>55</answer>"
    assert consistency([completion], wrap, language=language) == [1.0]
    for other in others:
        assert consistency([completion], wrap, language=other) == [0.0], other


def test_related_languages_are_told_apart(wrap: Callable[[str], Any]) -> None:
    french = "Nous devons d'abord calculer la somme des dix premiers entiers positifs."
    portuguese = "Primeiro, precisamos calcular a soma dos dez primeiros inteiros positivos."
    italian = "Prima dobbiamo calcolare la somma dei primi dieci numeri interi positivi."
    german = "Zuerst müssen wir die Summe der ersten zehn positiven ganzen Zahlen berechnen."
    texts, targets = [french, portuguese, italian, german], ["fr", "pt", "it", "de"]
    assert consistency(texts, wrap, language=targets) == [1.0] * 4
    assert consistency(texts, wrap, language=["es", "es", "es", "en"]) == [0.0] * 4


def test_scripts_without_a_rival_take_the_fast_path(wrap: Callable[[str], Any]) -> None:
    korean = "먼저 처음 열 개의 양의 정수의 합을 계산해야 합니다."
    russian = "Сначала нужно вычислить сумму первых десяти чисел."
    arabic = "أولا نحتاج إلى حساب مجموع الأعداد العشرة الأولى."  # "ar" is outside the default language set
    assert consistency([korean, russian, arabic], wrap, language=["ko", "ru", "ar"]) == [1.0, 1.0, 1.0]


# --- mixed reasoning ---------------------------------------------------------------------------------------


def test_english_with_a_chinese_sentence(wrap: Callable[[str], Any]) -> None:
    text = f"<think>{EN} {ZH} So the answer is 55.</think><answer>55</answer>"
    english, chinese = word_count(EN) + word_count("So the answer is"), word_count(ZH)
    assert chinese == len("首先我们需要计算前十个正整数的和使用公式得到五十五")  # one word per character
    assert consistency([text], wrap, language="en") == [pytest.approx(english / (english + chinese))]
    assert consistency([text], wrap, language="zh") == [pytest.approx(chinese / (english + chinese))]


def test_english_spanish_and_chinese_mixed(wrap: Callable[[str], Any]) -> None:
    text = f"{EN}\n{ES}\n{ZH}"
    counts = {"en": word_count(EN), "es": word_count(ES), "zh": word_count(ZH)}
    total = sum(counts.values())
    for language, count in counts.items():
        assert consistency([text], wrap, language=language) == [pytest.approx(count / total)], language


def test_chinese_reasoning_with_latin_terms_loses_only_those_words() -> None:
    text = "我们用 Python 的 for loop 计算总和"
    assert target_share(text, "zh") == pytest.approx(8 / 11)  # Python, for, loop are not Chinese


def test_japanese_is_not_chinese_although_both_use_han() -> None:
    assert target_share(JA, "zh") == 0.0
    assert target_share(ZH, "ja") == 0.0


def test_math_is_not_language() -> None:
    assert words_by_sentence(r"Let $x = \frac{a}{b}$ and θ = 2.") == [[("Let", "LATIN"), ("and", "LATIN")]]
    assert target_share(r"So $x^2 + y^2 = \sqrt{25}$ gives 5.", "en") == 1.0


# --- where the reasoning is --------------------------------------------------------------------------------


def test_only_the_think_block_is_scored(wrap: Callable[[str], Any]) -> None:
    texts = [
        f"<think>{EN}</think><answer>{ZH}</answer>",  # answer in another language does not count
        f"{EN}</think>\n{ZH}",  # prefilled <think>: reasoning ends at </think>
        f"<think>{EN}",  # never closed: to the end
        f"{EN}",  # no tags: the whole completion
    ]
    assert consistency(texts, wrap, language="en") == [1.0, 1.0, 1.0, 1.0]
    assert reasoning_text("<think>a</think>b<think>c</think>") == "a"


@pytest.mark.parametrize(
    "text", ["", "<think></think><answer>5</answer>", "<think>   \n</think>", "<think>2 + 3 = 5, x = 7</think>"]
)
def test_empty_reasoning_scores_zero(text: str, wrap: Callable[[str], Any]) -> None:
    assert consistency([text], wrap, language="en") == [0.0]


# --- the target language -----------------------------------------------------------------------------------


def test_target_is_detected_from_plain_prompts(wrap: Callable[[str], Any]) -> None:
    prompts = ["How many positive integers are below ten?", "¿Cuántos enteros positivos hay debajo de diez?",
               "小于十的正整数有多少个？"]
    scores = consistency([EN, EN, ZH], wrap, prompts=prompts)
    assert scores == [1.0, 0.0, 1.0]


def test_target_is_detected_from_the_last_user_message(wrap: Callable[[str], Any]) -> None:
    conversation = [
        {"role": "system", "content": "You are a helpful assistant. Think step by step before answering."},
        {"role": "user", "content": "¿Cuál es la suma de los diez primeros enteros positivos?"},
    ]
    assert consistency([ES, EN], wrap, prompts=[conversation, conversation]) == [1.0, 0.0]


def test_language_column_wins_over_the_prompt_and_blank_rows_fall_back(wrap: Callable[[str], Any]) -> None:
    prompts = ["What is the sum?"] * 3
    scores = consistency([ZH, ZH, ZH], wrap, prompts=prompts, language=["zh-CN", None, ""])
    assert scores == [1.0, 0.0, 0.0]


def test_undetectable_target_scores_none(wrap: Callable[[str], Any]) -> None:
    assert consistency([EN, EN], wrap, prompts=["2 + 2 = ?", [{"role": "user", "content": "$x^2$"}]]) == [None, None]
    assert consistency([EN], wrap) == [None]


def test_language_codes_and_names() -> None:
    assert [normalize_language(v) for v in ("EN", "zh_TW", "pt-BR", "Spanish", " ja ")] == ["en", "zh", "pt", "es", "ja"]
    for bad in ("xx", "", "Klingon", 3):
        with pytest.raises(ValueError):
            normalize_language(bad)


def test_unknown_language_is_a_clear_error_and_unscored_when_guarded() -> None:
    with pytest.raises(ValueError, match="unknown or unsupported language"):
        reward_funcs.get("language_consistency", guard=False)([EN], language="klingon")
    assert reward_funcs.get("language_consistency")([EN, EN], language=["xx", "en"]) == [None, 1.0]


def test_preloading_checks_its_languages() -> None:
    with pytest.raises(ValueError, match="unknown or unsupported language"):
        preload_models(("en", "tlh"))


def test_language_set_is_configurable() -> None:
    # Without Spanish among the languages, Spanish words cannot be told from English ones by lingua:
    # with only English using the Latin script, every Latin word counts as English.
    english_only = reward_funcs.get("language_consistency", languages=("en", "zh"))
    assert english_only([ES], language="en") == [1.0]
    assert reward_funcs.get("language_consistency")([ES], language="en") == [0.0]


# --- speed and offline use ---------------------------------------------------------------------------------


def shuffled_sentences(text: str, count: int, seed: int) -> list[str]:
    """Distinct sentences made of the words of ``text``, so that no cached decision is reused."""
    rng = random.Random(seed)
    words = text.replace(".", "").split()
    return [" ".join(rng.sample(words, 10)) + "." for _ in range(count)]


def test_latency_per_completion() -> None:
    target_share(EN + " " + ES + " " + ZH + " " + JA, "en")  # load the models once
    english = shuffled_sentences(EN, 300, seed=1)
    spanish = shuffled_sentences(ES, 100, seed=2)
    mixed = " ".join(english[:100] + spanish + english[100:])  # ~20k characters, a quarter Spanish words
    start = time.perf_counter()
    share = target_share(mixed, "en")
    elapsed = time.perf_counter() - start
    assert share == pytest.approx(0.75, abs=0.05)
    assert elapsed < 1.5, f"{len(mixed)} characters took {elapsed:.2f}s"  # ~0.07 s measured
    english_part = " ".join(shuffled_sentences(EN, 3000, seed=3))
    chinese_part = "".join(shuffled_sentences(ZH.replace("", " "), 6000, seed=4)).replace(" ", "")
    huge = english_part + "\n" + chinese_part
    assert len(huge) > 200_000
    expected = word_count(chinese_part) / (word_count(chinese_part) + word_count(english_part))
    start = time.perf_counter()
    assert target_share(huge, "zh") == pytest.approx(expected)
    assert time.perf_counter() - start < 6.0  # ~0.7 s measured


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.socket.sendto = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    try:
        socket.create_connection(("127.0.0.1", 9))
        raise SystemExit("the network guard is not in place")
    except OSError:
        pass

    import reward_funcs.language as language

    language.preload_models()  # every model of the default languages, from the wheel
    completions = [
        "<think>{en}</think><answer>55</answer>",
        [{{"role": "assistant", "content": "<think>{zh}</think>55"}}],
        "<think>{es}</think>",
    ]
    prompts = ["What is the sum?", "和是多少？", "¿Cuál es la suma?"]
    print(json.dumps(language.language_consistency(completions, prompts=prompts)))
    """
)


def test_detection_works_offline(tmp_path: Path) -> None:
    script = tmp_path / "offline.py"
    script.write_text(OFFLINE_SCRIPT.format(en=EN, zh=ZH, es=ES), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HOME": str(tmp_path),  # no cache from earlier runs to lean on
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [1.0, 1.0, 1.0]
