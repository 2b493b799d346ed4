"""Run every multi-process test many times under load and print the failure count per test.

    python tests/stress_multiprocess.py --runs 20 --parallel 2            # every test marked `multiprocess`
    python tests/stress_multiprocess.py --runs 5 -k zero3 --keep-dir /tmp/stress

Each run is its own ``pytest`` process with its own ``--basetemp``; ``--parallel 2`` keeps two of them
going at once, so on a 2-core machine every launch competes with another one, as in CI under the whole
suite. Every process runs with ``PYTHONFAULTHANDLER=1`` and unlimited core dumps: when a rank aborts,
its Python stacks are in the run's log, and the native stack of every core file the run left behind
(``gdb -batch -ex "thread apply all bt"``) is appended to it. Failed runs keep their log and temporary
directory under ``--keep-dir``; passed runs are deleted. Nothing is retried: a failure is counted.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = "multiprocess"
RUN_TIMEOUT_SECONDS = 900


@dataclass
class TestTally:
    runs: int = 0
    failures: int = 0
    seconds: list[float] = field(default_factory=list)
    failed_logs: list[str] = field(default_factory=list)


def collect(selection: str | None) -> list[str]:
    """Node ids of the tests carrying the ``multiprocess`` marker (optionally filtered by ``-k``)."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", MARKER, "-p", "no:cacheprovider"]
    if selection:
        command += ["-k", selection]
    listing = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    nodes = [line.strip() for line in listing.stdout.splitlines() if "::" in line]
    if not nodes:
        raise SystemExit(f"no test marked {MARKER!r} was collected:\n{listing.stdout[-2000:]}{listing.stderr[-2000:]}")
    return nodes


def _unlimited_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def core_files(run_dir: Path, since: float) -> list[Path]:
    """Core files a run left: ranks started by ``accelerate launch`` run in the test's temporary directory,
    ranks started by ``torchrun`` in the repository (where the pytest process runs)."""
    candidates = [*run_dir.rglob("core*"), *REPO.glob("core*")]
    return sorted(p for p in candidates if p.is_file() and not p.suffix and p.stat().st_mtime >= since)


def native_stacks(cores: list[Path], run_dir: Path) -> str:
    """Backtraces of every thread in each core file (moved into ``run_dir``); empty when there is none."""
    reports = []
    for found in cores:
        core = run_dir / f"core-{found.stat().st_mtime_ns}" if found.parent == REPO else found
        shutil.move(found, core)
        trace = subprocess.run(
            ["gdb", "-batch", "-ex", "thread apply all bt 40", sys.executable, str(core)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        reports.append(f"===== native stacks of {core} =====\n{trace.stdout}{trace.stderr[-2000:]}")
    return "\n".join(reports)


def run_once(node: str, index: int, keep_dir: Path) -> tuple[bool, float, Path]:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", node.split("/")[-1]).strip("-")[:80]
    run_dir = keep_dir / f"{slug}-{index:02d}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-s",
               "--basetemp", str(run_dir / "tmp"), node]  # fmt: skip
    started, wall_start = time.perf_counter(), time.time()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_SECONDS, preexec_fn=_unlimited_core_dumps)  # fmt: skip
        passed, output = done.returncode == 0, done.stdout + done.stderr
    except subprocess.TimeoutExpired as timeout:
        passed, output = False, f"TIMEOUT after {RUN_TIMEOUT_SECONDS} s\n{timeout.stdout or ''}{timeout.stderr or ''}"
    seconds = time.perf_counter() - started
    log = run_dir / "run.log"
    if passed:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        log.write_text(f"{' '.join(command)}\n{output}\n{native_stacks(core_files(run_dir, wall_start), run_dir)}")
    return passed, seconds, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs of each test (default 20)")
    parser.add_argument("--parallel", type=int, default=2, help="runs going at once (default 2)")
    parser.add_argument("-k", dest="selection", help="pytest -k expression to pick some of the tests")
    parser.add_argument("--keep-dir", type=Path, help="where failed runs keep their logs (default: a temp dir)")
    args = parser.parse_args(argv)

    keep_dir = args.keep_dir or Path(tempfile.mkdtemp(prefix="r1-trl-stress-"))
    nodes = collect(args.selection)
    jobs = [(node, index) for index in range(args.runs) for node in nodes]  # interleaved: neighbours differ
    tallies = {node: TestTally() for node in nodes}
    lock = threading.Lock()
    print(f"{len(nodes)} tests x {args.runs} runs, {args.parallel} at a time; failed runs kept in {keep_dir}")

    def job(node_and_index: tuple[str, int]) -> None:
        node, index = node_and_index
        passed, seconds, log = run_once(node, index, keep_dir)
        with lock:
            tally = tallies[node]
            tally.runs += 1
            tally.seconds.append(seconds)
            if not passed:
                tally.failures += 1
                tally.failed_logs.append(str(log))
            done = sum(t.runs for t in tallies.values())
            print(f"[{done}/{len(jobs)}] {'pass' if passed else 'FAIL'} {seconds:6.1f} s  {node} #{index}", flush=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(job, jobs))
    print(f"\n{'failures':>8} {'runs':>5} {'median s':>9}  test   ({(time.perf_counter() - started) / 60:.1f} min)")
    for node, tally in tallies.items():
        print(f"{tally.failures:>8} {tally.runs:>5} {statistics.median(tally.seconds):>9.1f}  {node}")
        for log in tally.failed_logs:
            print(f"{'':>25}log: {log}")
    return 1 if any(t.failures for t in tallies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
