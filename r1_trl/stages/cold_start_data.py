"""R1 stage 1: cold-start data, a few hundred (paper: thousands) readable long-CoT examples for SFT.

Three sources, as in the paper:

* ``few_shot``: prompt a model with ``few_shot_k`` readable exemplars (reasoning, verification, summary)
  in the problem's language, then the new problem; keep outputs that verify.
* ``direct``: ask a model to reason step by step in detail, reflect and verify; keep outputs that verify.
* ``refine``: sample the R1-Zero checkpoint under its R1-Zero template, keep correct outputs, read the
  derivation out of them with the task's hook (`r1_trl.data.tasks.hooks`; for arithmetic the computation
  steps, ``3 * 4 = 12``) and rewrite it in the readable format, in the language of the prompt. This
  rule-based rewrite stands in for the paper's human post-processing; outputs whose derivation cannot be
  read, does not check out or does not reach the answer are discarded. An R1-Zero model that cannot read
  the prompt's language can be shown the question in one it can (``refine_sampling_language``,
  translate-test, also a task hook); the rewrite is still in the prompt's language.

An output "verifies" when it is well formed in the chosen output format, its answer is correct (the
``accuracy`` reward), it shows explicit step structure (``First, ...``/``首先，...``) and its reasoning
is in the prompt's language (the ``language_consistency`` reward). Each problem is kept at most once.

The examples are written as SFT prompt/completion pairs in TRL's conversational format (``prompt``: chat
messages, ``completion``: one assistant message), so ``SFTTrainer`` renders them with the chat template
and trains on the completion only. Output: ``<output_dir>/datasets/cold_start`` (written atomically,
with ``stats.json``: per-method generated/kept counts and rejection reasons) and ``results.json``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value
from transformers import AutoTokenizer, PreTrainedTokenizerBase

import reward_funcs
from r1_trl.configs import R1StageArguments, RecipeError, parse_dict
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.data.reasoning import OUTPUT_FORMATS, SPECIAL_TOKEN, readable_completion
from r1_trl.data.tasks.hooks import REFINE_HOOKS, Derivation, RefineHooks, refine_hooks
from r1_trl.data.templates import format_prompt, opened_think, r1_zero_prompt
from r1_trl.distributed import launch_state
from r1_trl.generation import (
    EngineSettings,
    Prompt,
    SamplingSettings,
    generate_sharded,
    load_for_generation,
    release_engines,
    resolve_backend,
)
from r1_trl.stages.common import (
    RESULTS_FILE,
    STATS_FILE,
    resolve_model,
    save_dataset_atomic,
    save_recipe,
    write_json_atomic,
)
from reward_funcs.formatting import count_steps, has_r1_format

logger = logging.getLogger(__name__)

STAGE = "cold-start-data"
DATASET_NAME = "cold_start"
METHODS = ("few_shot", "direct", "refine")

# Instructions of the ``direct`` method, per language and output format.
DIRECT_INSTRUCTIONS = {
    ("en", "think"): (
        "Solve the problem below. Reason step by step in detail: write out every step, reflect on it, verify "
        "the result, then summarise. Put the reasoning in <think> </think> and the final answer in "
        "<answer> </answer>.\n\n{problem}"
    ),
    ("zh", "think"): (
        "请解答下面的问题。请逐步详细推理：写出每一步，反思每一步，验算结果，最后总结。推理写在 <think> </think> 中，"
        "最终答案写在 <answer> </answer> 中。\n\n{problem}"
    ),
    ("en", "special_token"): (
        "Solve the problem below. Reason step by step in detail: write out every step, reflect on it and verify "
        f"the result. Write {SPECIAL_TOKEN}, the reasoning, {SPECIAL_TOKEN}, then a one-line summary.\n\n{{problem}}"
    ),
    ("zh", "special_token"): (
        "请解答下面的问题。请逐步详细推理：写出每一步，反思每一步并验算结果。先写 "
        f"{SPECIAL_TOKEN}，然后写推理，再写 {SPECIAL_TOKEN}，最后写一行总结。\n\n{{problem}}"
    ),
}


@dataclass
class ColdStartDataConfig(R1StageArguments):
    """Recipe of the cold-start data stage (no training: generation, filtering, rewriting)."""

    output_dir: str = field(default="outputs/cold-start-data", metadata={"help": "Where the dataset goes."})
    seed: int = field(default=42, metadata={"help": "Seed for problems, exemplars and sampling."})
    prompt_template: str = field(
        default="chat",
        metadata={"help": "Format of the stored SFT prompts: 'chat' (conversational prompt/completion, the "
                  "default), 'r1_zero' or 'none' (plain-text prompt/completion)."},
    )
    methods: list[str] = field(
        default_factory=lambda: list(METHODS),
        metadata={"help": f"Sources to use, in order, from {', '.join(METHODS)}. The target is split evenly; a "
                  "method that falls short leaves its share to the ones after it."},
    )
    target_size: int = field(default=400, metadata={"help": "Number of examples to collect (paper: thousands)."})
    output_format: str = field(
        default="think",
        metadata={"help": "'think': <think>reasoning</think><answer>answer</answer>; 'special_token': the paper's "
                  "|special_token|<reasoning>|special_token|<summary>."},
    )
    prompting_model: str | None = field(
        default=None,
        metadata={"help": "Model prompted by the few_shot and direct methods (None: model_name_or_path, the "
                  "R1-Zero checkpoint). The refine method always samples model_name_or_path."},
    )
    few_shot_k: int = field(default=2, metadata={"help": "Readable exemplars per few-shot prompt."})
    few_shot_pool_size: int = field(
        default=32, metadata={"help": "Training problems set aside as few-shot exemplars (never targets)."}
    )
    num_samples: int = field(default=2, metadata={"help": "Samples per problem; at most one is kept."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    max_new_tokens: int = field(default=96, metadata={"help": "Generation budget per sample."})
    refine_max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Generation budget of the refine method (None: max_new_tokens); R1-Zero outputs are "
                  "short before they are rewritten, so its RL completion length is enough."},
    )
    refine_sampling_language: str | None = field(
        default=None,
        metadata={"help": "Language in which the refine method shows R1-Zero the problem (None: the prompt's own "
                  "language). 'en' lets an R1-Zero model trained on English prompts only cover problems posed "
                  "in other languages (translate-test); the rewritten reasoning stays in the prompt's language. "
                  "Needs a task with refine hooks (r1_trl.data.tasks.hooks: arithmetic)."},
    )
    batch_problems: int = field(
        default=64, metadata={"help": "Problems per generation round (a method stops once it has its share)."}
    )
    problem_budget: dict | str | None = field(
        default=None,
        metadata={"help": "Most problems a method may try, keyed by method, e.g. {\"few_shot\": 64}; methods "
                  "not listed may try the whole pool (train_size problems)."},
    )
    min_language_consistency: float = field(
        default=1.0, metadata={"help": "Least share of the reasoning's words in the prompt's language."}
    )

    def __post_init__(self) -> None:
        self.validate_stage_fields()
        self.problem_budget = {k: int(v) for k, v in parse_dict(self.problem_budget, "problem_budget").items()}
        if not self.methods:
            raise RecipeError("methods: at least one method is required")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise RecipeError(f"methods: unknown method(s) {unknown}; known: {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise RecipeError(f"methods: each method may appear once, got {self.methods}")
        if self.output_format not in OUTPUT_FORMATS:
            raise RecipeError(f"output_format: must be one of {OUTPUT_FORMATS}, got {self.output_format!r}")
        for name in ("target_size", "num_samples", "max_new_tokens", "batch_problems", "refine_max_new_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise RecipeError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if "few_shot" in self.methods and (self.few_shot_k < 1 or self.few_shot_pool_size < self.few_shot_k):
            raise RecipeError(
                f"few_shot_k: must be >= 1 and <= few_shot_pool_size ({self.few_shot_pool_size}), got {self.few_shot_k}"
            )
        if self.temperature < 0:
            raise RecipeError(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RecipeError(f"top_p: must be in (0, 1], got {self.top_p}")
        self._validate_refine_hooks()
        if not 0 <= self.min_language_consistency <= 1:
            raise RecipeError(f"min_language_consistency: must be in [0, 1], got {self.min_language_consistency}")
        for method, budget in self.problem_budget.items():
            if method not in METHODS:
                raise RecipeError(f"problem_budget: unknown method {method!r}; known: {', '.join(METHODS)}")
            if budget < 0:
                raise RecipeError(f"problem_budget: the budget of {method!r} must be >= 0, got {budget}")

    def _validate_refine_hooks(self) -> None:
        hooks = refine_hooks(self.dataset_name)
        if hooks is None and "refine" in self.methods:
            raise RecipeError(f"methods: 'refine' rewrites R1-Zero outputs through a task's step checker, and "
                              f"dataset_name {self.dataset_name!r} has none (tasks with one: {', '.join(REFINE_HOOKS)})")
        languages = hooks.languages if hooks else ()
        if self.refine_sampling_language is not None and self.refine_sampling_language not in languages:
            raise RecipeError(f"refine_sampling_language: {self.dataset_name!r} can pose its problems in "
                              f"{sorted(languages)}, got {self.refine_sampling_language!r}")

    @property
    def task_hooks(self) -> RefineHooks:
        hooks = refine_hooks(self.dataset_name)
        assert hooks is not None, "checked in __post_init__ when 'refine' is among the methods"
        return hooks


# --- parsing and rewriting R1-Zero outputs -------------------------------------------------------------

def think_block(text: str) -> str | None:
    """The reasoning between ``<think>`` and ``</think>``, or None when the block is missing.

    >>> think_block(" <think>\\n3 * 4 = 12\\n</think>\\n<answer>\\n12\\n</answer>")
    '\\n3 * 4 = 12\\n'
    >>> think_block("3 * 4 = 12") is None
    True
    """
    start = text.find("<think>")
    end = text.find("</think>", start + 1)
    if start < 0 or end < 0:
        return None
    return text[start + len("<think>") : end]


def refine_r1_zero_output(
    output: str, problem: str, answer: str, language: str, output_format: str, derivation: Derivation,
    think_prefilled: bool = False,
) -> tuple[str | None, str | None]:
    """Rewrite a correct R1-Zero output in the readable format: ``(text, None)`` or ``(None, reason)``.

    ``derivation`` is the task's hook that reads and checks the steps of the reasoning
    (`r1_trl.data.tasks.hooks`).

    >>> from r1_trl.data.tasks.arithmetic import derivation
    >>> text, reason = refine_r1_zero_output(
    ...     " <think>\\n3 * 4 = 12\\n2 + 12 = 14\\n</think>\\n<answer>\\n14\\n</answer>",
    ...     "2 + 3 * 4 等于多少？", "14", "zh", "think", derivation)
    >>> print(text)
    <think>
    首先，3 * 4 = 12。
    然后，2 + 12 = 14。
    验算：14 - 12 = 2，结果正确。
    所以答案是 14。
    </think>
    <answer>
    14
    </answer>
    """
    reasoning = think_block("<think>" + output if think_prefilled else output)
    if reasoning is None:
        return None, "unparsable"
    lines, reason = derivation(reasoning, problem, answer)
    if lines is None:
        return None, reason
    return readable_completion(lines, answer.strip(), language, output_format).strip(), None


# --- verifying readable outputs ------------------------------------------------------------------------


def readable_reasoning_of(text: str, output_format: str) -> str | None:
    """The reasoning part of a well-formed readable output, or None when the output is ill formed.

    >>> readable_reasoning_of("|special_token|First, 1 + 1 = 2.|special_token|Summary: 2.", "special_token")
    'First, 1 + 1 = 2.'
    >>> readable_reasoning_of("<think>a</think> no answer tag", "think") is None
    True
    """
    if output_format == "think":
        return think_block(text) if has_r1_format(text) else None
    stripped = text.strip()
    if stripped.count(SPECIAL_TOKEN) != 2 or not stripped.startswith(SPECIAL_TOKEN):
        return None
    _, reasoning, summary = stripped.split(SPECIAL_TOKEN)
    if not reasoning.strip() or not summary.strip():
        return None
    return reasoning


def rejection_reasons(
    texts: Sequence[str],
    solutions: Sequence[str],
    languages: Sequence[str],
    output_format: str,
    min_language_consistency: float = 1.0,
) -> list[str | None]:
    """Per text: None when it verifies, else the first failed check
    (``ill_formed``, ``wrong_answer``, ``no_step_structure``, ``mixed_language``)."""
    accuracy = reward_funcs.get("accuracy")(list(texts), solution=list(solutions))
    language_texts = [t.replace(SPECIAL_TOKEN, "\n") for t in texts]  # the marker is not a word of any language
    consistency = reward_funcs.get("language_consistency")(language_texts, language=list(languages))
    reasons: list[str | None] = []
    for text, correct, share in zip(texts, accuracy, consistency, strict=True):
        reasoning = readable_reasoning_of(text, output_format)
        if reasoning is None:
            reasons.append("ill_formed")
        elif correct != 1.0:
            reasons.append("wrong_answer")
        elif count_steps(reasoning) < 1:
            reasons.append("no_step_structure")
        elif share is None or share < min_language_consistency:
            reasons.append("mixed_language")
        else:
            reasons.append(None)
    return reasons


# --- prompts of the three methods ----------------------------------------------------------------------


def few_shot_prompt(
    exemplars: Sequence[tuple[str, str]], problem: str, tokenizer: PreTrainedTokenizerBase
) -> Prompt:
    """The exemplars as earlier turns of a conversation, then the new problem.

    Chat messages when the tokenizer has a chat template; else plain ``User: …\\nAssistant: …`` text.
    """
    if tokenizer.chat_template:
        messages = []
        for question, answer in exemplars:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return [*messages, {"role": "user", "content": problem}]
    turns = [f"User: {question}\nAssistant: {answer}" for question, answer in exemplars]
    return "\n\n".join([*turns, f"User: {problem}\nAssistant:"])


def direct_prompt(problem: str, language: str, output_format: str, tokenizer: PreTrainedTokenizerBase) -> Prompt:
    instruction = DIRECT_INSTRUCTIONS.get((language, output_format)) or DIRECT_INSTRUCTIONS[("en", output_format)]
    content = instruction.format(problem=problem)
    if tokenizer.chat_template:
        return [{"role": "user", "content": content}]
    return f"User: {content}\nAssistant:"


class ExemplarPool:
    """Readable worked solutions of reserved training problems, grouped by language."""

    def __init__(self, rows: Sequence[dict[str, Any]], output_format: str, seed: int) -> None:
        if rows and "steps" not in rows[0]:
            raise ValueError("methods: few_shot needs problems with worked steps (a 'steps' column) as exemplars")
        self.by_language: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            text = readable_completion(row["steps"], row["solution"], row["language"], output_format).strip()
            self.by_language.setdefault(row["language"], []).append((row["problem"], text))
        self.rng = random.Random(seed)

    def draw(self, language: str, k: int) -> list[tuple[str, str]]:
        pool = self.by_language.get(language) or [e for group in self.by_language.values() for e in group]
        return self.rng.sample(pool, min(k, len(pool)))


# --- the builder ---------------------------------------------------------------------------------------


@dataclass
class MethodStats:
    model: str
    problems: int = 0
    generated: int = 0
    verified: int = 0
    kept: int = 0
    quota: int = 0
    rejected: Counter = field(default_factory=Counter)  # failed a check, by the first check failed
    surplus: Counter = field(default_factory=Counter)  # verified but not needed
    kept_by_language: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "quota": self.quota,
            "problems_tried": self.problems,
            "generated": self.generated,
            "verified": self.verified,
            "kept": self.kept,
            "yield": self.verified / self.generated if self.generated else 0.0,
            "rejected": dict(self.rejected.most_common()),
            "verified_not_kept": dict(self.surplus.most_common()),
            "kept_by_language": dict(self.kept_by_language),
        }


@dataclass
class Candidate:
    """One sample of one method for one problem, after the method's own rewriting."""

    row: dict[str, Any]
    text: str | None
    reason: str | None = None


Sampler = Callable[[str, list[Prompt], int], list[list[str]]]  # (model path, prompts, max_new_tokens)


class ColdStartBuilder:
    """Runs the configured methods over a pool of problems until ``target_size`` examples verify."""

    def __init__(self, config: ColdStartDataConfig, sampler: Sampler | None = None) -> None:
        self.config = config
        self.model_path, self.revision = resolve_model(config.model_name_or_path, config.model_revision)
        prompting = config.prompting_model or config.model_name_or_path
        self.prompting_path, self.prompting_revision = resolve_model(prompting, config.model_revision)
        self._tokenizers: dict[str, PreTrainedTokenizerBase] = {}
        self._models: dict[str, Any] = {}
        self._sampler = sampler or self._sample
        self._round = 0

    # models -----------------------------------------------------------------------------------------
    def tokenizer(self, path: str) -> PreTrainedTokenizerBase:
        if path not in self._tokenizers:
            revision = self.revision if path == self.model_path else self.prompting_revision
            self._tokenizers[path] = AutoTokenizer.from_pretrained(path, revision=revision)
        return self._tokenizers[path]

    def _sample(self, path: str, prompts: list[Prompt], max_new_tokens: int) -> list[list[str]]:
        """Every rank samples a share of ``prompts`` and gets all samples back, so every rank's builder
        makes the same decisions; only the main process writes."""
        engine = EngineSettings.from_config(self.config)
        if path not in self._models:
            # vLLM takes the path; transformers gets the model loaded once, on this rank's device, and reused.
            self._models[path] = path if resolve_backend(path, engine) == "vllm" else load_for_generation(path, engine)
        config = self.config
        settings = SamplingSettings(num_samples=config.num_samples, max_new_tokens=max_new_tokens,
                                    temperature=config.temperature, top_p=config.top_p,
                                    seed=config.seed + self._round)
        self._round += 1
        return generate_sharded(self._models[path], self.tokenizer(path), prompts, settings, engine, show_progress=False)

    # methods ----------------------------------------------------------------------------------------
    def _candidates(
        self, method: str, rows: list[dict[str, Any]], exemplars: ExemplarPool | None
    ) -> list[list[Candidate]]:
        config = self.config
        if method == "refine":
            prompts: list[Prompt] = [r1_zero_prompt(self._sampling_question(row), config.prefill_think)
                                     for row in rows]
            outputs = self._sampler(self.model_path, prompts, config.refine_max_new_tokens or config.max_new_tokens)
            return [self._refined(row, samples) for row, samples in zip(rows, outputs, strict=True)]
        tokenizer = self.tokenizer(self.prompting_path)
        if method == "few_shot":
            assert exemplars is not None
            prompts = [few_shot_prompt(exemplars.draw(row["language"], config.few_shot_k), row["problem"], tokenizer)
                       for row in rows]
        else:
            prompts = [direct_prompt(row["problem"], row["language"], config.output_format, tokenizer) for row in rows]
        outputs = self._sampler(self.prompting_path, prompts, config.max_new_tokens)
        # A chat template that opens <think> in its generation prompt: the samples start inside it.
        opened = opened_think(prompts, tokenizer)
        return [[Candidate(row, (opened + sample).strip()) for sample in samples]
                for row, samples in zip(rows, outputs, strict=True)]

    def _sampling_question(self, row: dict[str, Any]) -> str:
        language = self.config.refine_sampling_language
        if language is None or language == row["language"]:
            return row["problem"]
        return self.config.task_hooks.translate(row["problem"], language) or row["problem"]

    def _refined(self, row: dict[str, Any], samples: list[str]) -> list[Candidate]:
        config = self.config
        accuracy = reward_funcs.get("accuracy")(samples, solution=[row["solution"]] * len(samples))
        candidates = []
        for sample, correct in zip(samples, accuracy, strict=True):
            if correct != 1.0:
                candidates.append(Candidate(row, None, "wrong_answer"))
                continue
            text, reason = refine_r1_zero_output(sample, row["problem"], row["solution"], row["language"],
                                                 config.output_format, config.task_hooks.derivation,
                                                 config.prefill_think)
            candidates.append(Candidate(row, text, reason))
        return candidates

    # main loop --------------------------------------------------------------------------------------
    def build(self, problems: Dataset) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        config = self.config
        rows = problems.to_list()
        exemplars = None
        if "few_shot" in config.methods:
            exemplars = ExemplarPool(rows[: config.few_shot_pool_size], config.output_format, config.seed)
            rows = rows[config.few_shot_pool_size :]
        covered: set[str] = set()
        examples: list[dict[str, Any]] = []
        stats: dict[str, MethodStats] = {}
        for index, method in enumerate(config.methods):
            model = self.model_path if method == "refine" else self.prompting_path
            method_stats = stats[method] = MethodStats(model=model)
            method_stats.quota = math.ceil((config.target_size - len(examples)) / (len(config.methods) - index))
            budget = config.problem_budget.get(method)
            todo = [row for row in rows if row["problem"] not in covered][:budget]
            for start in range(0, len(todo), config.batch_problems):
                if method_stats.kept >= method_stats.quota:
                    break
                chunk = todo[start : start + config.batch_problems]
                method_stats.problems += len(chunk)
                groups = self._candidates(method, chunk, exemplars)
                examples += self._verify_and_keep(method, groups, covered, method_stats)
            logger.info("cold start %s: kept %d of %d samples (%d problems)", method, method_stats.kept,
                        method_stats.generated, method_stats.problems)
        return examples, {method: s.as_dict() for method, s in stats.items()}

    def _verify_and_keep(
        self, method: str, groups: list[list[Candidate]], covered: set[str], stats: MethodStats
    ) -> list[dict[str, Any]]:
        config = self.config
        flat = [c for group in groups for c in group]
        stats.generated += len(flat)
        pending = [c for c in flat if c.text is not None]
        reasons = rejection_reasons([c.text for c in pending], [c.row["solution"] for c in pending],
                                    [c.row["language"] for c in pending], config.output_format,
                                    config.min_language_consistency) if pending else []
        for candidate, reason in zip(pending, reasons, strict=True):
            candidate.reason = reason
        kept = []
        for candidate in flat:
            problem = candidate.row["problem"]
            if candidate.reason is not None:
                stats.rejected[candidate.reason] += 1
                continue
            stats.verified += 1
            if problem in covered:
                stats.surplus["problem_already_kept"] += 1
            elif stats.kept >= stats.quota:
                stats.surplus["over_quota"] += 1
            else:
                covered.add(problem)
                stats.kept += 1
                stats.kept_by_language[candidate.row["language"]] += 1
                kept.append(self._example(candidate, method, stats.model))
        return kept

    def _example(self, candidate: Candidate, method: str, model: str) -> dict[str, Any]:
        config = self.config
        row = candidate.row
        prompt = format_prompt(row["problem"], config.prompt_template, config.system_prompt)  # type: ignore[arg-type]
        completion: Any
        if isinstance(prompt, str):
            completion = " " + str(candidate.text)  # plain prompts end at "Assistant:" or a bare question
        else:
            completion = [{"role": "assistant", "content": candidate.text}]
        return {
            "prompt": prompt,
            "completion": completion,
            "problem": row["problem"],
            "solution": row["solution"],
            "language": row["language"],
            "method": method,
            "source_model": model,
        }



def run(config: ColdStartDataConfig, sampler: Sampler | None = None) -> dict[str, Any]:
    """Build the cold-start set and write ``datasets/cold_start``, ``results.json`` and ``recipe.yaml``.

    ``sampler(model_path, prompts) -> samples per prompt`` replaces model sampling (tests).
    """
    started = time.perf_counter()
    config.apply_runtime_settings()
    state = launch_state()
    problems, _ = build_prompt_datasets(PromptSpec.from_config(config))
    if "language" not in problems.column_names:
        problems = problems.add_column("language", ["en"] * len(problems))
    builder = ColdStartBuilder(config, sampler)
    examples, by_method = builder.build(problems)
    release_engines()
    if not state.is_main_process:
        state.wait_for_everyone()  # until the main process has written the set
        return {"stage": STAGE}
    output_dir = Path(config.output_dir)
    dataset = Dataset.from_list(examples) if examples else _empty_dataset(config.prompt_template == "chat")
    target = save_dataset_atomic(dataset,
                                 output_dir / "datasets" / DATASET_NAME,
                                 _stats(config, builder, problems, examples, by_method, started))
    results = {
        "stage": STAGE,
        "metrics": {"rows": len(examples), **{f"yield/{m}": s["yield"] for m, s in by_method.items()}},
        "datasets": {DATASET_NAME: str(target.resolve())},
        "checkpoint": None,
        "source_checkpoint": builder.model_path,
        "stats": by_method,
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(output_dir / RESULTS_FILE, results)
    save_recipe(config, output_dir)
    if len(examples) < config.target_size:
        logger.warning("cold start: only %d of %d examples verified; see %s", len(examples), config.target_size,
                       target / STATS_FILE)
    state.wait_for_everyone()
    return results


def _stats(
    config: ColdStartDataConfig,
    builder: ColdStartBuilder,
    problems: Dataset,
    examples: list[dict[str, Any]],
    by_method: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    return {
        "rows": len(examples),
        "target_size": config.target_size,
        "shortfall": max(0, config.target_size - len(examples)),
        "rows_by_language": dict(Counter(e["language"] for e in examples)),
        "rows_by_method": dict(Counter(e["method"] for e in examples)),
        "methods": by_method,
        "problem_pool": len(problems),
        "output_format": config.output_format,
        "prompt_template": config.prompt_template,
        "system_prompt": config.system_prompt,
        "source_checkpoint": builder.model_path,
        "prompting_model": builder.prompting_path,
        "generation": {"num_samples": config.num_samples, "temperature": config.temperature, "top_p": config.top_p,
                       "max_new_tokens": config.max_new_tokens, "seed": config.seed},
        "few_shot": {"k": config.few_shot_k, "pool_size": config.few_shot_pool_size},
        "refine": {"max_new_tokens": config.refine_max_new_tokens or config.max_new_tokens,
                   "sampling_language": config.refine_sampling_language, "think_prefilled": config.prefill_think},
        "min_language_consistency": config.min_language_consistency,
        "dataset_name": config.dataset_name,
        "task_kwargs": config.task_kwargs,
        "seconds": time.perf_counter() - started,
    }


def _empty_dataset(conversational: bool) -> Dataset:
    """No example verified: an empty dataset with the columns (and types) a full one would have."""
    text = Value("string")
    messages = List({"role": text, "content": text})
    columns = {"prompt": messages if conversational else text, "completion": messages if conversational else text}
    columns |= dict.fromkeys(("problem", "solution", "language", "method", "source_model"), text)
    features = Features(columns)
    return Dataset.from_dict({name: [] for name in features}, features=features)


CONFIG_CLASS = ColdStartDataConfig
