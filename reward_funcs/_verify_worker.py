"""A math-verify worker process: reads verification requests as JSON lines, writes one score line per item.

Run as ``python _verify_worker.py [--memory-limit-mb N]`` by :mod:`reward_funcs._verify_client`. It is
started from its file path rather than with ``-m reward_funcs...`` so that the worker imports only
math-verify, not the ``reward_funcs`` package and every reward in it.

Protocol (one JSON object per line, ASCII):

- on start the worker writes ``{"ready": true}``;
- request: ``{"items": [[gold, prediction], ...], "soft_timeout": seconds}``;
- for each item, in order: ``{"score": 1.0 | 0.0 | null, "timed_out": bool}``; a null score means the
  gold could not be parsed; ``timed_out`` that the soft timeout cut the work short.

math-verify's own timeouts (``signal.alarm``) are disabled. The worker arms its own interval timer per
item (``soft_timeout``), which interrupts slow Python-level SymPy work and keeps the process alive; work
stuck inside one C call (a huge integer power) ignores it, and then the client kills the process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import resource
import signal
import sys
from collections import OrderedDict
from types import FrameType
from typing import Any

READY_LINE = {"ready": True}
_GOLD_CACHE_SIZE = 4096
_UNPARSEABLE: tuple[Any, ...] = ()
_MATH_DELIMITER = re.compile(r"(?<!\\)\$|\\\(|\\\[")


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

    def score(self, gold: str, prediction: str, soft_timeout: float) -> float | None:
        """1.0 / 0.0, or None when the gold cannot be parsed (or its parsing times out)."""
        return self.judge(gold, prediction, soft_timeout)[0]

    def judge(self, gold: str, prediction: str, soft_timeout: float) -> tuple[float | None, bool]:
        """The score and whether the soft timeout cut the work short."""
        parsing_gold = True
        try:
            signal.setitimer(signal.ITIMER_REAL, soft_timeout)
            try:
                gold_parsed = self._gold(gold)
                if not gold_parsed:
                    return None, False
                parsing_gold = False
                predicted = self.parse_answer(prediction)
                if not predicted:
                    return 0.0, False
                equal = self._verify(list(gold_parsed), predicted, timeout_seconds=None)
                return (1.0 if equal else 0.0), False
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            if parsing_gold:
                self._remember(gold, _UNPARSEABLE)
                return None, True
            return 0.0, True
        except Exception:  # noqa: BLE001 - math-verify catches its own errors; this is a last resort
            logging.getLogger(__name__).debug("verification failed", exc_info=True)
            return (None if parsing_gold else 0.0), False

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
        parsed = tuple(self.parse_answer(gold))
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


def serve(memory_limit_mb: int) -> None:
    """Answer requests on stdin until it is closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then closes our stdin
    # math-verify warns that its timeouts are disabled (on purpose) and logs failures, which are just scores here
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _limit_memory(memory_limit_mb)
    verifier = Verifier()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write(stdout, READY_LINE)
    while line := stdin.readline():
        request = json.loads(line)
        soft_timeout = float(request["soft_timeout"])
        for gold, prediction in request["items"]:
            score, timed_out = verifier.judge(gold, prediction, soft_timeout)
            _write(stdout, {"score": score, "timed_out": timed_out})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-limit-mb", type=int, default=0, help="address-space limit; 0 for none")
    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):  # the parent went away
        serve(args.memory_limit_mb)


if __name__ == "__main__":
    main()
