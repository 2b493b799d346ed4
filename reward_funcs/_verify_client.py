"""Verify math answers in a persistent child process, with a wall-clock timeout on every answer.

Why a child process: math-verify bounds its work with ``signal.alarm``, which only works on the main
thread of the main interpreter (so not in TRL's reward threads, a user's thread pool or an async loop),
and no signal interrupts work stuck inside one C call, such as a huge integer power. Killing a process
always works.

Why ``subprocess.Popen`` and not ``multiprocessing``: a daemonic process (every DataLoader worker) may not
start multiprocessing children, but it may start ordinary subprocesses.

Two levels of timeout: the worker interrupts its own work at ``SOFT_TIMEOUT_FRACTION`` of the timeout
(an interval timer on its main thread) and answers 0.0, staying alive; if no answer arrives within the
full timeout the client kills it, scores 0.0 and starts a replacement at once, so the rest of the batch
does not wait for a cold start any longer than needed.

The worker is started lazily, shared by all threads of a process (a lock serialises them) and never
shared across ``fork``: a child process forgets the parent's worker and starts its own. It is stopped at
interpreter exit, and exits by itself when its stdin closes (its parent died).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

WORKER_SCRIPT = Path(__file__).with_name("_verify_worker.py")
MEMORY_LIMIT_MB = 4096  # per worker; an answer that needs more fails inside the worker and scores 0
STARTUP_TIMEOUT = 120.0  # seconds for the worker to import math-verify, generous for a loaded machine
# The worker interrupts its own Python-level work at this fraction of the timeout, which keeps it alive;
# the client kills it only when that did not work (stuck in one C call).
SOFT_TIMEOUT_FRACTION = 0.8
_MAX_POLL_MS = 60_000
_READ_SIZE = 1 << 16


class VerifierError(RuntimeError):
    """The verification worker could not be started or keeps failing."""


class BatchResult(NamedTuple):
    """Scores in request order (None: gold unparseable) and how many answers ran out of time."""

    scores: list[float | None]
    timeouts: int


class _WorkerGone(Exception):
    """The worker closed its pipe (crashed, was killed, or exited)."""


class _WorkerProcess:
    """One worker process and the parent's ends of its pipes, owned by the process that started it."""

    def __init__(self) -> None:
        if not sys.executable:
            raise VerifierError("cannot start the math verification worker: sys.executable is not set")
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), "--memory-limit-mb", str(MEMORY_LIMIT_MB)],
                stdin=request_read,
                stdout=reply_write,
                close_fds=True,
            )
        except BaseException:
            os.close(request_write)
            os.close(reply_read)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self.owner_pid = os.getpid()
        self.ready = False
        self._request_fd = request_write
        self._reply_fd = reply_read
        os.set_blocking(self._request_fd, False)
        self._replies = bytearray()
        self._closed = False

    def wait_until_ready(self) -> None:
        try:
            message = self.receive(time.monotonic() + STARTUP_TIMEOUT)
        except _WorkerGone:
            code = self.process.wait()
            raise VerifierError(
                f"the math verification worker exited with code {code} while starting (see its stderr above); "
                "is math-verify installed?"
            ) from None
        if message is None:
            self.kill()
            raise VerifierError(f"the math verification worker did not start within {STARTUP_TIMEOUT:.0f} s")
        if message.get("ready") is not True:
            self.kill()
            raise VerifierError(f"unexpected first message from the math verification worker: {message!r}")
        self.ready = True

    def send(self, data: bytes, deadline: float) -> bool:
        """Write all of ``data``; False if the worker did not take it before ``deadline``."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._request_fd, view)
            except BlockingIOError:
                if not self._wait(self._request_fd, select.POLLOUT, deadline):
                    return False
                continue
            except (BrokenPipeError, OSError) as error:
                raise _WorkerGone from error
            view = view[written:]
        return True

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None if none arrived before ``deadline``."""
        while True:
            newline = self._replies.find(b"\n")
            if newline >= 0:
                line = bytes(self._replies[:newline])
                del self._replies[: newline + 1]
                try:
                    return json.loads(line)
                except ValueError as error:
                    raise _WorkerGone(f"malformed reply {line[:200]!r}") from error
            if not self._wait(self._reply_fd, select.POLLIN, deadline):
                return None
            chunk = os.read(self._reply_fd, _READ_SIZE)
            if not chunk:
                raise _WorkerGone
            self._replies += chunk

    @staticmethod
    def _wait(fd: int, event: int, deadline: float) -> bool:
        """Wait until ``fd`` is ready for ``event`` (or hung up); False at the deadline."""
        poller = select.poll()  # a poll object holds no fd, so nothing leaks or is shared across fork
        poller.register(fd, event)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if poller.poll(min(_MAX_POLL_MS, math.ceil(remaining * 1000))):
                return True

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self._closed:
            return
        self.process.kill()
        self.process.wait()
        self._close_pipes()

    def stop(self, grace: float = 2.0) -> None:
        """Close the worker's stdin (it exits on EOF); kill it if it is still busy after ``grace`` seconds."""
        if self._closed:
            return
        self._close_pipes()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def abandon(self) -> None:
        """In a forked child: drop the inherited pipe ends, leave the parent's process alone."""
        self._close_pipes()

    def _close_pipes(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._request_fd)
            os.close(self._reply_fd)


_lock = threading.Lock()
_worker: _WorkerProcess | None = None


def validate_timeout(timeout: Any) -> float:
    """``timeout`` as a float, or a ValueError saying why it is not a usable number of seconds."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (math.isfinite(timeout) and timeout > 0)
    ):
        raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
    return float(timeout)


def verify_pairs(pairs: Sequence[tuple[str, str]], timeout: float) -> BatchResult:
    """Score ``(gold, prediction)`` pairs of bare answers; each one may take at most ``timeout`` seconds.

    The whole batch goes to the worker in one message and scores stream back one by one. An answer whose
    score does not arrive within ``timeout`` seconds of the previous one scores 0.0; the worker is then
    replaced and the rest of the batch resent. Worker start-up time does not count against the timeout.
    """
    timeout = validate_timeout(timeout)
    scores: list[float | None] = [0.0] * len(pairs)
    timeouts = 0
    done = 0
    send_failures = 0
    with _lock:
        try:
            while done < len(pairs):
                worker = _ready_worker()
                if not _send_request(worker, pairs[done:], timeout):
                    send_failures += 1
                    if send_failures > 1:
                        raise VerifierError("the math verification worker keeps failing to accept requests")
                    _replace_worker()
                    continue
                try:
                    while done < len(pairs):
                        message = worker.receive(time.monotonic() + timeout)
                        if message is None:
                            timeouts += 1
                            raise _WorkerGone("timeout")
                        scores[done] = _score(message)
                        timeouts += message.get("timed_out") is True
                        done += 1
                except _WorkerGone:
                    scores[done] = 0.0
                    done += 1
                    _replace_worker()
        except BaseException:
            _discard_worker()  # interrupted mid-batch (e.g. Ctrl-C): the next call must not read its late replies
            raise
    return BatchResult(scores, timeouts)


def _send_request(worker: _WorkerProcess, pairs: Sequence[tuple[str, str]], timeout: float) -> bool:
    request = {"items": [list(pair) for pair in pairs], "soft_timeout": timeout * SOFT_TIMEOUT_FRACTION}
    try:
        return worker.send(json.dumps(request).encode("ascii") + b"\n", time.monotonic() + timeout)
    except _WorkerGone:
        return False


def _score(message: dict[str, Any]) -> float | None:
    score = message.get("score")
    if score is None or score in (0.0, 1.0):
        return score
    raise _WorkerGone(f"unexpected reply {message!r}")


def _ready_worker() -> _WorkerProcess:
    global _worker
    if _worker is not None and _worker.owner_pid != os.getpid():
        _worker.abandon()  # inherited by a fork that bypassed the at-fork hook
        _worker = None
    if _worker is not None and not _worker.alive():
        _worker.kill()
        _worker = None
    if _worker is None:
        _worker = _WorkerProcess()
    if not _worker.ready:
        try:
            _worker.wait_until_ready()
        except VerifierError:
            _worker = None
            raise
    return _worker


def _discard_worker() -> None:
    global _worker
    if _worker is not None:
        if _worker.owner_pid == os.getpid():
            _worker.kill()
        else:
            _worker.abandon()
        _worker = None


def _replace_worker() -> None:
    """Kill the current worker and start the next one now, so its start-up overlaps the caller's work."""
    global _worker
    _discard_worker()
    try:
        _worker = _WorkerProcess()
    except OSError:
        _worker = None  # try again lazily on the next request


def shutdown() -> None:
    """Stop this process's worker (also registered to run at interpreter exit)."""
    global _worker
    if not _lock.acquire(timeout=5):
        return  # another thread is stuck mid-request; the worker exits when our pipe closes at exit
    try:
        if _worker is not None and _worker.owner_pid == os.getpid():
            _worker.stop()
        _worker = None
    finally:
        _lock.release()


def _forget_worker_after_fork() -> None:
    global _lock, _worker
    _lock = threading.Lock()  # the parent's lock may have been held by a thread that does not exist here
    if _worker is not None:
        _worker.abandon()
        _worker = None


os.register_at_fork(after_in_child=_forget_worker_after_fork)
atexit.register(shutdown)
