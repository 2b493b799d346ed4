"""A verification worker process: reads jobs as JSON lines, writes one result line per job.

Run as ``python _verify_worker.py [--memory-limit-mb N]`` by :mod:`reward_funcs._verify_client`, one per
pool slot. It is started from its file path rather than with ``-m reward_funcs...`` so that it imports only
the judging modules (``reward_funcs._math_*``) and math-verify, not the ``reward_funcs`` package and every
reward in it.

Protocol (one JSON object per line, ASCII):

- on start the worker writes ``{"ready": true}``;
- a completion job: ``{"id": n, "text": completion, "golds": [gold, ...], "soft_timeout": seconds}``: the
  worker extracts the answer and judges it (:func:`reward_funcs._math_judge.judge_completion`) and replies
  ``{"id": n, "score": 1.0 | 0.0 | null, "answer": extracted answer, "timed_out": bool}``;
- a pair job: ``{"id": n, "pair": [gold, prediction], "soft_timeout": seconds}``: plain math-verify
  equivalence of two bare answers; the reply has no ``answer``;
- ``"quick": true`` in a job marks a first, short attempt that will be retried if it runs out of time.

A null score means no gold could be read; ``timed_out`` that the soft timeout cut the job short (score 0.0,
or null if it was the gold that could not be read in time).

math-verify's own timeouts (``signal.alarm``) are disabled. The worker arms its own interval timer per job
(``soft_timeout``), which interrupts slow Python-level work (extraction, SymPy) and keeps the process alive;
work stuck inside one C call (a huge integer power) ignores it, and then the client kills the process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import re
import resource
import signal
import sys
import types
from collections import OrderedDict
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import Any

READY_LINE = {"ready": True}
_GOLD_CACHE_SIZE = 4096
_UNPARSEABLE: tuple[Any, ...] = ()
_MATH_DELIMITER = re.compile(r"(?<!\\)\$|\\\(|\\\[")
_NUMERIC_DIGITS = 40


class _SoftTimeout(BaseException):
    """Raised by the interval timer. A BaseException, so that math-verify's ``except Exception`` lets it through."""


def _raise_soft_timeout(signum: int, frame: FrameType | None) -> None:
    raise _SoftTimeout


class Verifier:
    """Parses answers with math-verify and compares them; parsed gold answers are cached."""

    def __init__(self) -> None:
        """Import math-verify and take over SIGALRM (so: construct on the main thread of the process)."""
        signal.signal(signal.SIGALRM, _raise_soft_timeout)
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
        from sympy import Basic, MatrixBase

        self._parse = parse
        self._verify = verify
        self._sympy_types = (Basic, MatrixBase)
        self._extraction = [LatexExtractionConfig(), ExprExtractionConfig()]
        self._gold_cache: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._parsing_gold = False
        self.quick_attempt = False  # a quick attempt's timeout does not mark a gold unparseable: it is tried again

    def score(self, gold: str, prediction: str, soft_timeout: float | None = None) -> float | None:
        """1.0 / 0.0, or None when the gold cannot be parsed; ``soft_timeout`` arms the timer (None: the caller did)."""
        if soft_timeout is not None:
            return self.judge(gold, prediction, soft_timeout)[0]
        gold_parsed = self._gold(gold)
        if not gold_parsed:
            return None
        predicted = self.parse_answer(prediction)
        if not predicted:
            return 0.0
        return 1.0 if self._verify(list(gold_parsed), predicted, timeout_seconds=None) else 0.0

    def judge(self, gold: str, prediction: str, soft_timeout: float) -> tuple[float | None, bool]:
        """The score of a bare pair under a soft timeout, and whether the timeout cut the work short."""
        finished, result, timed_out = self._timed(lambda: self.score(gold, prediction), soft_timeout)
        return (result if finished else self._score_when_cut_short()), timed_out

    def judge_completion(
        self, text: str, golds: list[str | None], soft_timeout: float
    ) -> tuple[float | None, str, bool]:
        """Extract and judge one completion against its golds under a soft timeout: (score, answer, timed out)."""
        from reward_funcs._math_judge import judge_completion

        finished, result, timed_out = self._timed(lambda: judge_completion(text, golds, self), soft_timeout)
        if not finished:
            return self._score_when_cut_short(), "", timed_out
        score, answer = result
        return score, answer, False

    def _timed(self, work: Callable[[], Any], soft_timeout: float) -> tuple[bool, Any, bool]:
        """Run ``work`` under the soft timeout: (whether it finished, its result, whether it ran out of time)."""
        self._parsing_gold = False
        try:
            signal.setitimer(signal.ITIMER_REAL, soft_timeout)
            try:
                return True, work(), False
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            return False, None, True
        except Exception:  # noqa: BLE001 - math-verify catches its own errors; this is a last resort
            logging.getLogger(__name__).debug("verification failed", exc_info=True)
            return False, None, False

    def _score_when_cut_short(self) -> float | None:
        """A job cut short scores 0.0, or None if what could not be read in time was the gold."""
        return None if self._parsing_gold else 0.0

    def parses(self, gold: str) -> bool:
        """Whether math-verify reads ``gold`` (cached)."""
        return bool(self._gold(gold))

    def numeric_value(self, answer: str) -> Fraction | None:
        r"""The value of an answer that is one real number (``\sin(\pi/3)``, ``e^2``), to 40 digits, else None."""
        readings = self.parse_answer(answer)
        if len(readings) != 1 or not isinstance(readings[0], self._sympy_types[0]):
            return None
        expression = readings[0]
        if not getattr(expression, "is_number", False) or expression.free_symbols:
            return None
        value = expression.evalf(_NUMERIC_DIGITS)
        if not value.is_real or not value.is_finite:
            return None
        try:
            return Fraction(str(value))
        except (ValueError, ZeroDivisionError):
            return None

    def parse_answer(self, answer: str) -> list[Any]:
        r"""The SymPy readings of a bare answer.

        A bare answer such as ``\frac{1}{3}`` or ``(1, 2)`` is parsed as LaTeX math (wrapped in ``$...$``);
        text that already has math delimiters, or that yields nothing that way, is parsed as it is.
        """
        candidates = [answer] if _MATH_DELIMITER.search(answer) else [f"${answer}$", answer]
        for text in candidates:
            parsed = self._parse(text, extraction_config=self._extraction, parsing_timeout=None)
            readings = [item for item in parsed if isinstance(item, self._sympy_types)]
            if readings:
                return readings
        return []

    def _gold(self, gold: str) -> tuple[Any, ...]:
        cached = self._gold_cache.get(gold)
        if cached is not None:
            self._gold_cache.move_to_end(gold)
            return cached
        self._parsing_gold = True
        try:
            parsed = tuple(self.parse_answer(gold))
        except _SoftTimeout:
            if not self.quick_attempt:  # a gold that cannot be read in time will not be next time either
                self._remember(gold, _UNPARSEABLE)
            raise
        self._parsing_gold = False
        self._remember(gold, parsed)
        return parsed

    def _remember(self, gold: str, parsed: tuple[Any, ...]) -> None:
        self._gold_cache[gold] = parsed
        if len(self._gold_cache) > _GOLD_CACHE_SIZE:
            self._gold_cache.popitem(last=False)


def _limit_memory(megabytes: int) -> None:
    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _write(stream: Any, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message).encode("ascii") + b"\n")
    stream.flush()


def _import_judging_modules() -> None:
    """Make ``reward_funcs._math_*`` importable without running ``reward_funcs/__init__.py`` (every reward)."""
    if "reward_funcs" not in sys.modules:
        package = types.ModuleType("reward_funcs")
        package.__path__ = [str(Path(__file__).resolve().parent)]
        sys.modules["reward_funcs"] = package
    importlib.import_module("reward_funcs._math_judge")


def answer(verifier: Verifier, request: dict[str, Any]) -> dict[str, Any]:
    """The reply to one job."""
    soft_timeout = float(request["soft_timeout"])
    verifier.quick_attempt = request.get("quick") is True
    if "pair" in request:
        gold, prediction = request["pair"]
        score, timed_out = verifier.judge(gold, prediction, soft_timeout)
        return {"id": request["id"], "score": score, "timed_out": timed_out}
    score, extracted, timed_out = verifier.judge_completion(request["text"], request["golds"], soft_timeout)
    return {"id": request["id"], "score": score, "answer": extracted, "timed_out": timed_out}


def serve(memory_limit_mb: int) -> None:
    """Answer jobs on stdin until it is closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then closes our stdin
    # math-verify warns that its timeouts are disabled (on purpose) and logs failures, which are just scores here
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _limit_memory(memory_limit_mb)
    _import_judging_modules()
    verifier = Verifier()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write(stdout, READY_LINE)
    while line := stdin.readline():
        _write(stdout, answer(verifier, json.loads(line)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-limit-mb", type=int, default=0, help="address-space limit; 0 for none")
    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):  # the parent went away
        serve(args.memory_limit_mb)


if __name__ == "__main__":
    main()
