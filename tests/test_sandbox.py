"""The sandbox runs programs correctly and contains hostile ones; the machine is checked afterwards.

Attacks whose containment depends on a kernel feature are skipped (with the reason) where
``protections()`` says that feature is unavailable; every protection in force here is attacked.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reward_funcs.sandbox import PROTECTION_NAMES, Limits, Sandbox, protections, user_processes

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only")

SANDBOX = Sandbox(Limits(wall_seconds=5))
SANDBOX_UIDS = range(SANDBOX.uid_base, SANDBOX.uid_base + SANDBOX.uid_slots)


def require(*names: str) -> None:
    missing = [name for name in names if not protections()[name]]
    if missing:
        pytest.skip(f"protection not available on this machine: {', '.join(missing)}")


def leftover_sandbox_processes() -> list[int]:
    return user_processes(set(SANDBOX_UIDS)) if os.geteuid() == 0 else []


def host_still_works() -> bool:
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, timeout=30
    )
    return completed.stdout == "42\n" and time.monotonic() - started < 10


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned (when we are root) directory that everyone may enter: only its modes protect it."""
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- normal programs


def test_runs_program_with_stdin_and_captures_output() -> None:
    result = SANDBOX.run("import sys\nfor line in sys.stdin:\n    print(int(line) ** 2)\n", stdin="3\n4\n")
    assert (result.stdout, result.exit_code, result.succeeded) == ("9\n16\n", 0, True)
    assert not result.timed_out and result.setup_error is None


def test_reports_exit_code_exception_and_signal() -> None:
    assert SANDBOX.run("import sys; sys.exit(3)").exit_code == 3
    crashed = SANDBOX.run("raise ValueError('boom')")
    assert crashed.exit_code == 1 and "ValueError: boom" in crashed.stderr and not crashed.succeeded
    killed = SANDBOX.run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert (killed.exit_code, killed.signal, killed.succeeded) == (None, signal.SIGKILL, False)


def test_unicode_round_trips() -> None:
    result = SANDBOX.run("print(input()[::-1] + ' ✓')", stdin="héllo\n")
    assert result.stdout == "olléh ✓\n"


def test_each_run_gets_a_fresh_work_dir_as_cwd_and_home_that_is_deleted(public_dir: Path) -> None:
    sandbox = Sandbox(Limits(wall_seconds=5), temp_root=str(public_dir))
    program = (
        "import os\n"
        "print(sorted(os.listdir('.')))\n"
        "open('left_behind.txt', 'w').write('x')\n"
        "print(os.getcwd() == os.path.realpath(os.environ['HOME']))\n"
    )
    first, second = sandbox.run(program), sandbox.run(program)
    assert first.stdout == second.stdout == "['main.py']\nTrue\n"
    assert list(public_dir.iterdir()) == []


def test_concurrent_runs_from_threads_do_not_interfere() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda n: SANDBOX.run("print(int(input()) + 1)", stdin=f"{n}\n"), range(6)))
    assert [result.stdout for result in results] == [f"{n + 1}\n" for n in range(6)]


def test_broken_interpreter_is_a_setup_error_not_an_exception() -> None:
    result = Sandbox(Limits(wall_seconds=5), interpreter="/nonexistent/bin/python3").run("print(1)")
    assert result.setup_error and not result.succeeded and result.stdout == ""


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        Limits(wall_seconds=0)


def test_protections_report_every_layer() -> None:
    active = protections()
    assert set(active) == set(PROTECTION_NAMES)
    assert all(isinstance(value, bool) for value in active.values())
    assert active["scrubbed_environment"] and active["resource_limits"] and active["wall_clock_timeout"]
    if os.geteuid() == 0:  # as root the program must always run under another, unprivileged uid
        assert active["unprivileged_user"] and active["separate_user"] and active["process_limit"]


# ---------------------------------------------------------------- attacks


def test_secrets_in_the_environment_do_not_reach_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-token-0123456789"
    monkeypatch.setenv("MY_SECRET_TOKEN", secret)
    program = (
        "import os, glob\n"
        "print(dict(os.environ))\n"
        "for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
        "    try:\n"
        "        print(open(path, 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = SANDBOX.run(program)
    assert result.succeeded
    assert secret not in result.stdout + result.stderr
    environment = eval(result.stdout.splitlines()[0])  # the printed dict literal
    assert set(environment) == {"PATH", "LANG", "HOME", "TMPDIR"}


def test_cannot_read_the_users_ssh_key_or_home(public_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The caller's home is a traversable directory (like /home/alice) holding a private ~/.ssh.
    require("separate_user")
    home = public_dir / "home"
    (home / ".ssh").mkdir(parents=True)
    home.chmod(0o755)
    (home / ".ssh").chmod(0o700)
    key = home / ".ssh" / "id_ed25519"
    key.write_text("PRIVATE-KEY-MATERIAL")
    key.chmod(0o600)
    notes = home / "notes.txt"
    notes.write_text("WORLD-READABLE-NOTE")
    notes.chmod(0o644)
    monkeypatch.setenv("HOME", str(home))
    program = (
        "import os\n"
        f"for path in [os.path.expanduser('~/.ssh/id_ed25519'), {str(key)!r}, {str(notes)!r}]:\n"
        "    try:\n"
        "        print('READ', open(path).read())\n"
        "    except OSError as error:\n"
        "        print('DENIED', type(error).__name__)\n"
    )
    result = SANDBOX.run(program)
    assert result.succeeded, result.stderr
    assert "PRIVATE-KEY-MATERIAL" not in result.stdout + result.stderr
    assert result.stdout.count("DENIED") >= 2
    if protections()["private_filesystem"]:  # only then are world-readable host files hidden too
        assert "WORLD-READABLE-NOTE" not in result.stdout and result.stdout.count("DENIED") == 3


def test_cannot_write_outside_its_directory(public_dir: Path) -> None:
    require("separate_user")
    victim = public_dir / "victim.txt"
    victim.write_text("original")
    victim.chmod(0o666 if protections()["private_filesystem"] else 0o644)
    marker = f"sandbox-escape-{os.getpid()}-{time.monotonic_ns()}"
    shared_dirs = ["/tmp", "/var/tmp", "/dev/shm"]
    program = (
        "import os\n"
        f"attempts = [lambda: open({str(victim)!r}, 'w').write('pwned'),\n"
        f"            lambda: os.remove({str(victim)!r}),\n"
        f"            lambda: open({str(public_dir / 'new.txt')!r}, 'w').write('pwned')]\n"
        f"attempts += [lambda d=d: open(d + '/' + {marker!r}, 'w').write('pwned') for d in {shared_dirs!r}]\n"
        "for attempt in attempts:\n"
        "    try:\n"
        "        attempt()\n"
        "        print('WROTE')\n"
        "    except OSError as error:\n"
        "        print('DENIED', type(error).__name__)\n"
    )
    result = SANDBOX.run(program)
    assert result.succeeded, result.stderr
    assert victim.read_text() == "original"
    assert sorted(path.name for path in public_dir.iterdir()) == ["victim.txt"]
    if protections()["private_filesystem"]:  # host paths are invisible; shared dirs are private tmpfs
        assert result.stdout.splitlines() == ["DENIED FileNotFoundError"] * 3 + ["WROTE"] * 3  # private /tmp
        assert not any(os.path.exists(f"{directory}/{marker}") for directory in shared_dirs)
    for directory in shared_dirs:
        with_marker = Path(directory) / marker
        if with_marker.exists():
            with_marker.unlink()


def test_fork_bomb_is_contained_and_the_machine_keeps_working() -> None:
    require("process_limit")
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = Sandbox(Limits(wall_seconds=2, max_processes=16)).run(bomb)
    assert result.timed_out and not result.succeeded
    assert leftover_sandbox_processes() == []
    assert host_still_works()


def test_process_limit_bounds_forks_and_escaped_daemons_are_killed() -> None:
    require("process_limit")
    program = (
        "import os, time\n"
        "started = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        os.setsid()  # leave the process group, like a daemon\n"
        "        time.sleep(120)\n"
        "        os._exit(0)\n"
        "    started += 1\n"
        "print(started)\n"
    )
    result = Sandbox(Limits(wall_seconds=5, max_processes=16)).run(program)
    assert result.succeeded, result.stderr
    assert 0 < int(result.stdout) < 16
    assert leftover_sandbox_processes() == []


def test_daemons_are_killed_without_namespaces_too() -> None:
    if os.geteuid() != 0:
        pytest.skip("the per-uid clean-up needs root")
    program = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(120)\nprint('parent done')\n"
    )
    result = Sandbox(Limits(wall_seconds=5), namespaces=False).run(program)
    assert result.stdout == "parent done\n" and result.protections["pid_namespace"] is False
    assert leftover_sandbox_processes() == []


@pytest.mark.parametrize(
    "program",
    [
        "data = bytearray(10 * 1024 ** 3)\n",
        "chunks = []\nwhile len(chunks) < 100:\n    chunks.append(bytearray(100 * 1024 ** 2))\n",
    ],
    ids=["10GB-at-once", "10GB-in-chunks"],
)
def test_memory_bomb_fails_with_memory_error(program: str) -> None:
    result = Sandbox(Limits(wall_seconds=10, memory_mb=512)).run(program)
    assert not result.succeeded and not result.timed_out
    assert "MemoryError" in result.stderr
    assert host_still_works()


def test_sleeping_forever_is_killed_at_the_wall_clock_limit() -> None:
    program = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(10 ** 6)\n"
    started = time.monotonic()
    result = Sandbox(Limits(wall_seconds=1)).run(program)
    assert result.timed_out and not result.succeeded and result.exit_code is None
    assert time.monotonic() - started < 4
    assert leftover_sandbox_processes() == []


def test_busy_loop_is_stopped_by_the_cpu_limit() -> None:
    result = Sandbox(Limits(wall_seconds=8, cpu_seconds=1)).run("while True:\n    pass\n")
    assert result.signal in (signal.SIGXCPU, signal.SIGKILL) and not result.timed_out
    assert result.duration < 6


def test_cannot_connect_to_a_local_listener() -> None:
    require("network_namespace")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        program = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('CONNECTED')\n"
            "except OSError as error:\n"
            "    print('BLOCKED', error.errno)\n"
        )
        result = SANDBOX.run(program)
        assert result.stdout.startswith("BLOCKED"), result.stdout + result.stderr
        with pytest.raises(TimeoutError):
            listener.accept()


def test_output_flood_is_capped() -> None:
    result = Sandbox(Limits(wall_seconds=5, max_output_bytes=1000)).run("print('x' * 5_000_000)")
    assert result.output_truncated and len(result.stdout) == 1000 and not result.succeeded
    endless = Sandbox(Limits(wall_seconds=3, max_output_bytes=1000, max_file_mb=2)).run(
        "while True:\n    print('y' * 1000)\n"
    )
    assert not endless.succeeded and len(endless.stdout) <= 1000


def test_file_size_limit_stops_filling_the_disk() -> None:
    program = (
        "with open('big.bin', 'wb') as f:\n    for _ in range(100):\n        f.write(bytes(1024 * 1024))\n"
    )
    result = Sandbox(Limits(wall_seconds=5, max_file_mb=8)).run(program)
    assert not result.succeeded and "File too large" in result.stderr


def test_cannot_signal_host_processes() -> None:
    require("separate_user")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        program = (
            "import os, signal\n"
            "try:\n"
            f"    os.kill({sleeper.pid}, signal.SIGKILL)\n"
            "    print('SENT')\n"
            "except OSError as error:\n"
            "    print('DENIED', type(error).__name__)\n"
        )
        result = SANDBOX.run(program)
        assert result.stdout.startswith("DENIED"), result.stdout
        time.sleep(0.1)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_runs_unprivileged_and_cannot_regain_root() -> None:
    require("unprivileged_user", "no_new_privileges")
    program = (
        "import os\n"
        "print(os.getuid(), os.geteuid())\n"
        "try:\n"
        "    os.setuid(0)\n"
        "    print('ROOT')\n"
        "except PermissionError:\n"
        "    print('DENIED')\n"
        "import ctypes\n"
        "print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS\n"
    )
    result = SANDBOX.run(program)
    assert result.succeeded, result.stderr
    uid, euid = map(int, result.stdout.split()[:2])
    assert uid != 0 and euid != 0
    assert result.stdout.split()[2:] == ["DENIED", "1"]
