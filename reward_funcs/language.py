"""The R1 language-consistency reward: the share of the reasoning's words that are in the target language.

DeepSeek-R1 adds this reward during reasoning RL so that the chain of thought stops mixing languages.

Reasoning: the text inside ``<think>…</think>`` (up to ``</think>`` when the template prefilled
``<think>``; to the end when the block is never closed); the whole completion when there is no think tag.

Words: each CJK ideograph or kana is one word; any other run of letters is one word. Digits,
punctuation, LaTeX commands (``\\frac``) and single Latin or Greek letters (math variables such as
``x`` or ``θ``) are not words: they belong to no language.

Which words are in the target language:

* by script first: a word whose script the target does not use is not in it (Latin ``answer`` is not
  Chinese, ``答`` is not English); a word in a script that no other configured language uses is in it
  (Hangul for Korean when Korean is the only such language);
* otherwise (Latin for English vs Spanish, Han for Chinese vs Japanese) lingua decides, chunk by chunk:
  consecutive sentences are grouped into chunks of at least 3 such words, and a chunk counts as the
  target when lingua finds the target at least half as likely as its most likely language (lingua is
  unsure on a few words, and a wrongly rejected chunk costs more than a wrongly accepted one). Words of
  the other scripts of the rival languages are kept in the chunk as context (kana tells Japanese apart
  from Chinese). Chunks stay sentence-sized however long the text: larger chunks would hide a switch of
  language (lingua calls a chunk that is half English, half Spanish one or the other). The time is
  linear in the text, about 3 ms per 1,000 characters of contested script on one core, less for
  repeated sentences (decisions are cached) and much less for scripts without a rival.

Target language: the ``language`` column or argument (ISO 639-1 code such as ``"en"``, ``"zh-CN"``, or
a lingua name such as ``"Spanish"``), else the language lingua detects in the prompt (conversational:
the last user message; plain: the whole prompt, so a template written in another language than the
question skews detection: then pass ``language``). A prompt without any detectable language scores None.

lingua-language-detector ships its language models inside the wheel; nothing is downloaded. It loads
them on first use (about 1-3 s and 250 MB for the default languages, once per process, shared by all
detectors); call :func:`preload_models` at startup to keep that out of the first training step.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from reward_funcs._text import Completion, column, completion_to_text
from reward_funcs.registry import register

DEFAULT_LANGUAGES = ("en", "zh", "es", "fr", "de", "ru", "ja", "ko", "pt", "it")

MIN_CHUNK_WORDS = 3
# lingua slows down sharply on very long words (a 20,000-letter run of "M" takes 0.1 s, 200,000 about
# 10 s), and no natural-language word is this long: lingua sees only the start of a longer run.
MAX_WORD_CHARS = 64
TARGET_LIKELIHOOD_RATIO = 0.5
MAX_PROMPT_CHARS = 4000

LATIN = frozenset({"LATIN"})
_SCRIPTS_BY_LANGUAGE: dict[str, frozenset[str]] = {
    "zh": frozenset({"HAN"}),
    "ja": frozenset({"HAN", "KANA"}),
    "ko": frozenset({"HANGUL"}),
    **dict.fromkeys(("ru", "uk", "bg", "be", "mk", "kk", "mn", "sr"), frozenset({"CYRILLIC"})),
    **dict.fromkeys(("ar", "fa", "ur"), frozenset({"ARABIC"})),
    **dict.fromkeys(("hi", "mr"), frozenset({"DEVANAGARI"})),
    "el": frozenset({"GREEK"}),
    "he": frozenset({"HEBREW"}),
    "th": frozenset({"THAI"}),
    "ka": frozenset({"GEORGIAN"}),
    "hy": frozenset({"ARMENIAN"}),
    "bn": frozenset({"BENGALI"}),
    "gu": frozenset({"GUJARATI"}),
    "pa": frozenset({"GURMUKHI"}),
    "ta": frozenset({"TAMIL"}),
    "te": frozenset({"TELUGU"}),
}
_UNSPACED_SCRIPTS = frozenset({"HAN", "KANA"})
_VARIABLE_SCRIPTS = frozenset({"LATIN", "GREEK"})  # a single letter of these scripts is a math variable

_CJK = "\u3005\u3007\u3021-\u3029\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_TOKENS = re.compile(rf"(?P<cjk>[{_CJK}])|(?P<word>[^\W\d_{_CJK}]+)|(?P<stop>[.!?;。！？；\n]+)")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")


def scripts_of(code: str) -> frozenset[str]:
    """The scripts a language is written in, as Unicode name prefixes (``HAN``, ``LATIN``, ...)."""
    return _SCRIPTS_BY_LANGUAGE.get(code, LATIN)


@functools.lru_cache(maxsize=4096)
def script_of(char: str) -> str:
    """The script of one letter, from its Unicode name: ``LATIN``, ``HAN``, ``KANA``, ``HANGUL``, ...

    >>> script_of("a"), script_of("答"), script_of("の"), script_of("한"), script_of("ж")
    ('LATIN', 'HAN', 'KANA', 'HANGUL', 'CYRILLIC')
    """
    name = unicodedata.name(char, "")
    if name.startswith(("CJK", "IDEOGRAPHIC")) or char == "\u3005":
        return "HAN"
    if name.startswith(("HIRAGANA", "KATAKANA")):
        return "KANA"
    return name.split(" ", 1)[0]


def normalize_language(value: Any) -> str:
    """An ISO 639-1 code from ``"en"``, ``"zh-CN"``, ``"pt_BR"`` or a lingua name; ValueError otherwise.

    >>> normalize_language("zh-CN"), normalize_language("Spanish")
    ('zh', 'es')
    """
    if isinstance(value, Language):
        return value.iso_code_639_1.name.lower()
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a language must be an ISO 639-1 code such as 'en' or 'zh', got {value!r}")
    text = value.strip()
    code = re.split(r"[-_]", text, maxsplit=1)[0].lower()
    try:
        return _lingua_language(code).iso_code_639_1.name.lower()
    except ValueError:
        pass
    try:
        return Language.from_str(text).iso_code_639_1.name.lower()
    except ValueError:
        raise ValueError(
            f"unknown or unsupported language {value!r}: use an ISO 639-1 code that lingua supports, "
            f"e.g. {', '.join(DEFAULT_LANGUAGES)}"
        ) from None


@functools.lru_cache(maxsize=64)
def configured_languages(languages: tuple[str, ...]) -> frozenset[str]:
    """The normalized language set of a configuration (validated once)."""
    if not languages:
        raise ValueError("languages must name at least one language")
    return frozenset(normalize_language(code) for code in languages)


def _lingua_language(code: str) -> Language:
    return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))


@functools.lru_cache(maxsize=32)
def detector_for(codes: frozenset[str]) -> LanguageDetector:
    """One lingua detector per language set, built on first use (models load lazily, then stay cached)."""
    return LanguageDetectorBuilder.from_languages(*(_lingua_language(code) for code in sorted(codes))).build()


def preload_models(languages: Iterable[str] = DEFAULT_LANGUAGES) -> None:
    """Load lingua's models for ``languages`` now rather than on the first reward call."""
    codes = configured_languages(tuple(languages))
    LanguageDetectorBuilder.from_languages(*(_lingua_language(code) for code in sorted(codes))).with_preloaded_language_models().build()


def reasoning_text(text: str) -> str:
    """The reasoning part of a completion (see the module docstring).

    >>> reasoning_text("<think>because</think><answer>4</answer>"), reasoning_text("because</think> 4")
    ('because', 'because')
    """
    start = text.find("<think>")
    if start >= 0:
        body = start + len("<think>")
        end = text.find("</think>", body)
        return text[body:] if end < 0 else text[body:end]
    end = text.find("</think>")
    return text if end < 0 else text[:end]


def words_by_sentence(text: str) -> list[list[tuple[str, str]]]:
    """The ``(word, script)`` pairs of ``text``, grouped by sentence; sentences without words are dropped.

    >>> words_by_sentence("Let x = 3. 所以答案 is 3")
    [[('Let', 'LATIN')], [('所', 'HAN'), ('以', 'HAN'), ('答', 'HAN'), ('案', 'HAN'), ('is', 'LATIN')]]
    """
    text = _LATEX_COMMAND.sub(" ", unicodedata.normalize("NFKC", text))
    sentences: list[list[tuple[str, str]]] = [[]]
    for match in _TOKENS.finditer(text):
        if match.lastgroup == "stop":
            if sentences[-1]:
                sentences.append([])
            continue
        word = match.group()
        script = script_of(word[0])
        if len(word) == 1 and script in _VARIABLE_SCRIPTS:
            continue
        sentences[-1].append((word, script))
    return [sentence for sentence in sentences if sentence]


def _chunks(sentences: list[list[tuple[str, str]]], min_words: int) -> list[list[tuple[str, str]]]:
    """Join consecutive sentences until each chunk has ``min_words`` words; a short tail joins the last chunk."""
    chunks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for sentence in sentences:
        current.extend(sentence)
        if len(current) >= min_words:
            chunks.append(current)
            current = []
    if current:
        if chunks:
            chunks[-1].extend(current)
        else:
            chunks.append(current)
    return chunks


def _join(words: Iterable[tuple[str, str]]) -> str:
    parts: list[str] = []
    previous_unspaced = False
    for word, script in words:
        unspaced = script in _UNSPACED_SCRIPTS
        if parts and not (unspaced and previous_unspaced):
            parts.append(" ")
        parts.append(word[:MAX_WORD_CHARS])
        previous_unspaced = unspaced
    return "".join(parts)


@functools.lru_cache(maxsize=65536)  # looping reasoning repeats its sentences
def _chunk_is_target(text: str, target: str, rivals: frozenset[str]) -> bool:
    confidences = detector_for(rivals | {target}).compute_language_confidence_values(text)
    if not confidences:
        return False
    best = confidences[0].value
    target_confidence = next((c.value for c in confidences if c.language == _lingua_language(target)), 0.0)
    return best > 0 and target_confidence >= TARGET_LIKELIHOOD_RATIO * best


def target_share(text: str, target: str, languages: Iterable[str] = DEFAULT_LANGUAGES) -> float:
    """The share of the words of ``text`` that are in the ``target`` language; 0.0 when it has no words.

    ``languages`` are the languages a word may be confused with (the target is added to them).

    >>> target_share("We add 3 and 4 to get 7.", "en")
    1.0
    >>> target_share("所以答案. So the answer is 7.", "zh")
    0.5
    """
    sentences = words_by_sentence(text)
    total = sum(len(sentence) for sentence in sentences)
    if total == 0:
        return 0.0
    target_scripts = scripts_of(target)
    rivals = frozenset(code for code in languages if code != target and scripts_of(code) & target_scripts)
    if not rivals:
        return sum(script in target_scripts for sentence in sentences for _, script in sentence) / total
    context_scripts = target_scripts.union(*(scripts_of(code) for code in rivals))
    contested = [[pair for pair in sentence if pair[1] in context_scripts] for sentence in sentences]
    contested = [sentence for sentence in contested if sentence]
    in_target = 0
    for chunk in _chunks(contested, MIN_CHUNK_WORDS):
        candidates = sum(script in target_scripts for _, script in chunk)
        if candidates and _chunk_is_target(_join(chunk), target, rivals):
            in_target += candidates
    return in_target / total


def detect_language(text: str, languages: frozenset[str]) -> str | None:
    """The ISO 639-1 code of the language of ``text`` among ``languages``, or None if there is none.

    >>> detect_language("¿Cuántos gatos hay en la casa?", frozenset({"en", "es", "zh"}))
    'es'
    >>> detect_language("2 + 2 = ?", frozenset({"en", "es"})) is None
    True
    """
    return _detect_sample(text[:MAX_PROMPT_CHARS], languages)


@functools.lru_cache(maxsize=1024)  # every prompt comes num_generations times
def _detect_sample(text: str, languages: frozenset[str]) -> str | None:
    # lingua sees only the words: no digits or formulas, and no lone surrogates (it cannot take them).
    sample = ". ".join(_join(sentence) for sentence in words_by_sentence(text))
    if not sample:
        return None
    language = detector_for(languages).detect_language_of(sample)
    return None if language is None else language.iso_code_639_1.name.lower()


def prompt_text(prompt: Any) -> str:
    """The text whose language sets the target: a plain prompt, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list | tuple):
        messages = [message for message in prompt if isinstance(message, dict)]
        users = [message for message in messages if message.get("role") == "user"]
        return completion_to_text([(users or messages)[-1]]) if (users or messages) else ""
    return "" if prompt is None else str(prompt)


@register("language_consistency")
def language_consistency(
    completions: list[Completion],
    *,
    language: str | list[str | None] | None = None,
    languages: Iterable[str] = DEFAULT_LANGUAGES,
    prompts: list[Any] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Share in [0, 1] of the reasoning's words that are in the target language (see the module docstring).

    >>> language_consistency(["<think>Sumamos dos y tres, y obtenemos cinco.</think><answer>5</answer>",
    ...                       "<think>We add two and three and get five.</think><answer>5</answer>"],
    ...                      prompts=["¿Cuánto es dos más tres?"] * 2)
    [1.0, 0.0]
    >>> language_consistency([[{"role": "assistant", "content": "<think>三加四等于七</think>7"}]], language="zh")
    [1.0]
    """
    configured = configured_languages(tuple(languages))
    size = len(completions)
    prompt_list = prompts if isinstance(prompts, list) and len(prompts) == size else [None] * size
    scores: list[float | None] = []
    for completion, row_language, prompt in zip(completions, column({"language": language}, "language", size),
                                                 prompt_list, strict=True):
        if row_language is not None and not (isinstance(row_language, str) and not row_language.strip()):
            target: str | None = normalize_language(row_language)
        else:
            target = detect_language(prompt_text(prompt), configured) if prompt is not None else None
        if target is None:
            scores.append(None)
            continue
        scores.append(target_share(reasoning_text(completion_to_text(completion)), target, configured))
    return scores
