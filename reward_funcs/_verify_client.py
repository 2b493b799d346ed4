"""Judge math answers in a pool of persistent child processes: every job under a timeout, every batch under a deadline.

Why child processes: math-verify bounds its work with ``signal.alarm``, which only works on the main
thread of the main interpreter (so not in TRL's reward threads, a user's thread pool or an async loop),
and no signal interrupts work stuck inside one C call, such as a huge integer power. Killing a process
always works. Extraction runs in the workers too: a completion of any size and content costs the caller
only the time it is given.

Why ``subprocess.Popen`` and not ``multiprocessing``: a daemonic process (every DataLoader worker) may not
start multiprocessing children, but it may start ordinary subprocesses.

A job is a completion with its gold answers (extracted and judged in the worker, see
:mod:`reward_funcs._math_judge`) or a bare (gold, prediction) pair. Up to ``num_workers`` jobs run at once,
one per worker. Two levels of timeout per job: the worker interrupts its own work at
``SOFT_TIMEOUT_FRACTION`` of ``timeout`` (an interval timer on its main thread) and answers 0.0, staying
alive; if no answer arrives within the full ``timeout`` the client kills it, scores 0.0 and starts a
replacement at once. A batch may also have a deadline (``batch_timeout`` seconds from the call, waiting for
the pool and worker start-up included): then the call returns by it, the jobs not finished are None
(unfinished) and their workers are killed and replaced; and every job first gets a quick attempt
(``QUICK_ATTEMPT_SECONDS``), the slow ones their full timeout only after all others were tried.

The pool is started lazily, shared by all threads of a process (one call uses it at a time) and never
shared across ``fork``: a child process forgets the parent's workers and starts its own. It is stopped at
interpreter exit; a worker also exits by itself when its stdin closes (its parent died).
"""

from __future__ import annotations

import atexit
import collections
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
STARTUP_TIMEOUT = 120.0  # seconds for a worker to import math-verify, generous for a loaded machine
# The worker interrupts its own Python-level work at this fraction of the timeout, which keeps it alive;
# the client kills it only when that did not work (stuck in one C call).
SOFT_TIMEOUT_FRACTION = 0.8
DEFAULT_NUM_WORKERS = max(1, min(4, os.cpu_count() or 1))
# Under a batch deadline every job first gets this many seconds (its quick attempt); the jobs that need more
# are tried again with the full timeout once every job has had its quick attempt, so that a few answers SymPy
# grinds on cannot use up the deadline before the ordinary answers of the batch are judged.
QUICK_ATTEMPT_SECONDS = 0.25
_MAX_POLL_MS = 60_000
_READ_SIZE = 1 << 16


class VerifierError(RuntimeError):
    """The verification workers could not be started or keep failing."""


class BatchResult(NamedTuple):
    """Scores of bare pairs in request order (None: gold unparseable) and how many ran out of time."""

    scores: list[float | None]
    timeouts: int


class RowsResult(NamedTuple):
    """Per completion: its score (None: no readable gold, or unfinished by the deadline) and extracted answer
    (None: unfinished); how many jobs ran out of time, and how many were left unfinished by the deadline."""

    scores: list[float | None]
    answers: list[str | None]
    timeouts: int
    unfinished: int


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
        self.start_deadline = time.monotonic() + STARTUP_TIMEOUT
        self.job: int | None = None  # index of the job it is working on
        self.job_deadline = math.inf
        self.quick = False  # whether that job is a quick attempt
        self.request_fd = request_write
        self.reply_fd = reply_read
        os.set_blocking(self.request_fd, False)
        self._replies = bytearray()
        self._closed = False

    def send(self, data: bytes, deadline: float) -> bool:
        """Write all of ``data``; False if the worker did not take it before ``deadline``."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.request_fd, view)
            except BlockingIOError:
                if not _wait_for(self.request_fd, select.POLLOUT, deadline):
                    return False
                continue
            except OSError as error:
                raise _WorkerGone from error
            view = view[written:]
        return True

    def receive(self) -> list[dict[str, Any]]:
        """The messages that arrived (one read; call when the pipe is readable)."""
        chunk = os.read(self.reply_fd, _READ_SIZE)
        if not chunk:
            raise _WorkerGone
        self._replies += chunk
        messages = []
        while (newline := self._replies.find(b"\n")) >= 0:
            line = bytes(self._replies[:newline])
            del self._replies[: newline + 1]
            try:
                messages.append(json.loads(line))
            except ValueError as error:
                raise _WorkerGone(f"malformed reply {line[:200]!r}") from error
        return messages

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
            os.close(self.request_fd)
            os.close(self.reply_fd)


def _wait_for(fd: int, event: int, deadline: float) -> bool:
    """Wait until ``fd`` is ready for ``event`` (or hung up); False at the deadline."""
    poller = select.poll()  # a poll object holds no fd, so nothing leaks or is shared across fork
    poller.register(fd, event)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if poller.poll(min(_MAX_POLL_MS, math.ceil(remaining * 1000))):
            return True


class _Pool:
    """Worker processes of this process, grown on demand to the size a call asks for."""

    def __init__(self) -> None:
        self.workers: list[_WorkerProcess | None] = []

    def run(
        self, jobs: Sequence[dict[str, Any]], timeout: float, deadline: float, size: int
    ) -> tuple[list[dict[str, Any] | None], int]:
        """Each job's reply (None: unfinished at ``deadline``) and how many jobs ran out of time."""
        replies: list[dict[str, Any] | None] = [None] * len(jobs)
        pending = collections.deque(range(len(jobs)))
        slow: collections.deque[int] = collections.deque()  # jobs whose quick attempt ran out of time
        quick_first = deadline < math.inf and timeout * SOFT_TIMEOUT_FRACTION > QUICK_ATTEMPT_SECONDS
        timeouts = failures = 0
        size = max(1, min(size, len(jobs)))
        self._grow(size)
        while pending or slow or self._busy(size):
            if time.monotonic() >= deadline:
                break
            for slot in range(size):
                worker = self._worker(slot)
                if worker is None or not worker.ready or worker.job is not None or not (pending or slow):
                    continue
                quick = quick_first and bool(pending)
                queue = pending if pending else slow
                index = queue.popleft()
                if self._start_job(worker, index, jobs[index], timeout, deadline, quick):
                    continue
                queue.appendleft(index)
                failures += 1
                if failures > 2 * size:
                    raise VerifierError("the math verification workers keep failing to accept jobs")
                self._replace(slot)
            self._wait(size, deadline)
            for slot in range(size):
                timeouts += self._collect(slot, replies, slow)
        for slot in range(size):  # at the deadline: what is still running is abandoned with its worker
            worker = self._worker(slot)
            if worker is not None and worker.job is not None:
                self._replace(slot)
        return replies, timeouts

    def _grow(self, size: int) -> None:
        while len(self.workers) < size:
            self.workers.append(None)
        for slot in range(size):
            worker = self.workers[slot]
            if worker is not None and not worker.alive() and worker.job is None:
                worker.kill()
                self.workers[slot] = None
            if self.workers[slot] is None:
                self.workers[slot] = _WorkerProcess()

    def _worker(self, slot: int) -> _WorkerProcess | None:
        if self.workers[slot] is None:
            try:
                self.workers[slot] = _WorkerProcess()
            except OSError:
                return None  # e.g. out of processes: the other slots go on, this one is tried again later
        return self.workers[slot]

    def _busy(self, size: int) -> bool:
        return any(worker is not None and worker.job is not None for worker in self.workers[:size])

    @staticmethod
    def _start_job(
        worker: _WorkerProcess, index: int, job: dict[str, Any], timeout: float, deadline: float, quick: bool
    ) -> bool:
        soft_timeout = QUICK_ATTEMPT_SECONDS if quick else timeout * SOFT_TIMEOUT_FRACTION
        message = {**job, "id": index, "soft_timeout": soft_timeout, "quick": quick}
        try:
            sent = worker.send(json.dumps(message).encode("ascii") + b"\n", min(time.monotonic() + timeout, deadline))
        except _WorkerGone:
            return False
        if sent:
            worker.job, worker.job_deadline, worker.quick = index, time.monotonic() + timeout, quick
        return sent

    def _wait(self, size: int, deadline: float) -> None:
        """Wait for a reply, a start-up, or the next job or batch deadline."""
        poller = select.poll()
        wake = deadline
        for worker in self.workers[:size]:
            if worker is None or (worker.ready and worker.job is None):
                continue
            poller.register(worker.reply_fd, select.POLLIN)
            wake = min(wake, worker.job_deadline if worker.ready else worker.start_deadline)
        remaining = wake - time.monotonic()
        if remaining > 0:
            poller.poll(min(_MAX_POLL_MS, math.ceil(remaining * 1000)))

    def _collect(
        self, slot: int, replies: list[dict[str, Any] | None], slow: collections.deque[int] | None = None
    ) -> int:
        """Read what worker ``slot`` sent and enforce its deadlines; 1 if its job ran out of time (soft or hard).

        A quick attempt that ran out of time goes to ``slow``, to be tried again with the full timeout."""
        worker = self.workers[slot]
        if worker is None or (worker.ready and worker.job is None):
            return 0
        timed_out = 0
        if _readable(worker.reply_fd):
            try:
                messages = worker.receive()
            except _WorkerGone:
                self._worker_gone(slot, replies)
                return 0
            for message in messages:
                if message.get("ready") is True:
                    worker.ready = True
                elif worker.job is not None and message.get("id") == worker.job:
                    if worker.quick and message.get("timed_out") is True and slow is not None:
                        slow.append(worker.job)
                    else:
                        replies[worker.job] = message
                        timed_out += message.get("timed_out") is True
                    worker.job = None
        now = time.monotonic()
        if worker.job is not None and now >= worker.job_deadline:
            replies[worker.job] = {"score": 0.0, "answer": "", "timed_out": True}
            worker.job = None
            self._replace(slot)
            return 1
        if not worker.ready and now >= worker.start_deadline:
            worker.kill()
            self.workers[slot] = None
            raise VerifierError(f"a math verification worker did not start within {STARTUP_TIMEOUT:.0f} s")
        return timed_out

    def _worker_gone(self, slot: int, replies: list[dict[str, Any] | None]) -> None:
        """The worker in ``slot`` exited: its job (if any) scores 0.0 and it is replaced."""
        worker = self.workers[slot]
        assert worker is not None
        if not worker.ready:
            code = worker.process.wait()
            worker.kill()
            self.workers[slot] = None
            raise VerifierError(
                f"a math verification worker exited with code {code} while starting (see its stderr above); "
                "is math-verify installed?"
            )
        if worker.job is not None:
            replies[worker.job] = {"score": 0.0, "answer": "", "timed_out": False}  # it crashed on this job
            worker.job = None
        self._replace(slot)

    def wait_until_ready(self, size: int, deadline: float) -> bool:
        """Start ``size`` workers and wait until they are all ready; False if the deadline came first."""
        self._grow(size)
        while not all(worker is not None and worker.ready for worker in self.workers[:size]):
            if time.monotonic() >= deadline:
                return False
            self._wait(size, deadline)
            for slot in range(size):
                self._collect(slot, [], None)
        return True

    def _replace(self, slot: int) -> None:
        """Kill the worker in ``slot`` and start the next one now, so that its start-up overlaps other work."""
        worker = self.workers[slot]
        if worker is not None:
            worker.kill()
        try:
            self.workers[slot] = _WorkerProcess()
        except OSError:
            self.workers[slot] = None  # try again lazily

    def discard(self) -> None:
        for worker in self.workers:
            if worker is None:
                continue
            if worker.owner_pid == os.getpid():
                worker.kill()
            else:
                worker.abandon()
        self.workers = []

    def stop(self) -> None:
        for worker in self.workers:
            if worker is not None and worker.owner_pid == os.getpid():
                worker.stop()
        self.workers = []

    def abandon(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.abandon()
        self.workers = []


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


_lock = threading.Lock()
_pool: _Pool | None = None


def validate_timeout(timeout: Any, name: str = "timeout") -> float:
    """``timeout`` as a float, or a ValueError saying why it is not a usable number of seconds."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (math.isfinite(timeout) and timeout > 0)
    ):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {timeout!r}")
    return float(timeout)


def validate_num_workers(num_workers: Any) -> int:
    """``num_workers`` as an int, or a ValueError."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
    return num_workers


def verify_rows(
    texts: Sequence[str],
    golds: Sequence[Sequence[str | None]],
    timeout: float,
    batch_timeout: float | None = None,
    num_workers: int = DEFAULT_NUM_WORKERS,
) -> RowsResult:
    """Extract and judge each completion (``texts[i]``) against its acceptable golds (``golds[i]``).

    Each completion may take ``timeout`` seconds (then 0.0); with ``batch_timeout`` the call returns within
    that many seconds (plus the time to kill what is still running), completions not judged by then are None.
    """
    started = time.monotonic()
    jobs = [{"text": text, "golds": list(row)} for text, row in zip(texts, golds, strict=True)]
    replies, timeouts = _run(jobs, timeout, started, batch_timeout, num_workers)
    scores = [None if reply is None else _score(reply) for reply in replies]
    answers = [None if reply is None else str(reply.get("answer") or "") for reply in replies]
    return RowsResult(scores, answers, timeouts, sum(reply is None for reply in replies))


def verify_pairs(pairs: Sequence[tuple[str, str]], timeout: float) -> BatchResult:
    """Score ``(gold, prediction)`` pairs of bare answers with math-verify; each may take ``timeout`` seconds."""
    replies, timeouts = _run([{"pair": list(pair)} for pair in pairs], timeout, time.monotonic(), None, 1)
    return BatchResult([0.0 if reply is None else _score(reply) for reply in replies], timeouts)


def _run(
    jobs: list[dict[str, Any]], timeout: float, started: float, batch_timeout: float | None, num_workers: int
) -> tuple[list[dict[str, Any] | None], int]:
    global _pool
    timeout = validate_timeout(timeout)
    if not jobs:
        return [], 0
    deadline = math.inf if batch_timeout is None else started + validate_timeout(batch_timeout, "batch_timeout")
    if not _lock.acquire(timeout=-1 if deadline == math.inf else max(0.0, deadline - time.monotonic())):
        return [None] * len(jobs), 0  # another thread held the pool until the deadline
    try:
        if _pool is None:
            _pool = _Pool()
        return _pool.run(jobs, timeout, deadline, validate_num_workers(num_workers))
    except BaseException:
        _discard_pool()  # interrupted mid-batch (e.g. Ctrl-C): the next call must not read late replies
        raise
    finally:
        _lock.release()


def _score(reply: dict[str, Any]) -> float | None:
    score = reply.get("score")
    if score is None or score in (0.0, 1.0):
        return score
    raise VerifierError(f"unexpected reply from a math verification worker: {reply!r}")


def _discard_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.discard()
        _pool = None


def worker_pids() -> list[int]:
    """Process ids of this process's running verification workers (for diagnostics and tests)."""
    with _lock:
        if _pool is None:
            return []
        return [w.process.pid for w in _pool.workers if w is not None and w.owner_pid == os.getpid() and w.alive()]


def start_workers(num_workers: int = DEFAULT_NUM_WORKERS, timeout: float = STARTUP_TIMEOUT) -> bool:
    """Start the pool's workers and wait until they are ready (so that a first batch does not pay for their
    start-up); False if they were not ready within ``timeout`` seconds."""
    global _pool
    deadline = time.monotonic() + validate_timeout(timeout)
    with _lock:
        if _pool is None:
            _pool = _Pool()
        try:
            return _pool.wait_until_ready(validate_num_workers(num_workers), deadline)
        except BaseException:
            _discard_pool()
            raise


def shutdown() -> None:
    """Stop this process's workers (also registered to run at interpreter exit)."""
    global _pool
    if not _lock.acquire(timeout=5):
        return  # another thread is stuck mid-request; the workers exit when our pipes close at exit
    try:
        if _pool is not None:
            _pool.stop()
        _pool = None
    finally:
        _lock.release()


def _forget_pool_after_fork() -> None:
    global _lock, _pool
    _lock = threading.Lock()  # the parent's lock may have been held by a thread that does not exist here
    if _pool is not None:
        _pool.abandon()
        _pool = None


os.register_at_fork(after_in_child=_forget_pool_after_fork)
atexit.register(shutdown)
