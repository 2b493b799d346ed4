"""Run untrusted Python in a throw-away, resource-limited, unprivileged subprocess (Linux only).

Each run gets a fresh temporary directory as working directory and ``HOME`` (deleted afterwards), a
minimal environment (``PATH``, ``LANG``, ``HOME``, ``TMPDIR``: nothing inherited, so no secrets), an
isolated interpreter (``python -I -S -B``: no site-packages, no ``PYTHON*`` variables), resource
limits (CPU time, address space, processes, file size, open files, no core dumps), a wall-clock
timeout that SIGKILLs the whole process group, and a cap on the captured output. On top of that,
whatever the kernel permits (:func:`protections` reports what is in force):

* **separate unprivileged user**: as root, the program runs under a throw-away uid/gid
  (``60600 + slot``; systemd leaves 60578-61183 unused) leased exclusively per run with ``flock``
  (across threads and processes), so it cannot read root's files (``~/.ssh``), write to root-owned
  directories or signal other processes, and ``RLIMIT_NPROC`` (not enforced for root) really bounds
  a fork bomb. Every process still alive under that uid is killed after the run.
* **namespaces**: a network namespace (only a downed loopback: no connection anywhere, not even to
  127.0.0.1), a PID namespace (when the program ends, the kernel kills everything it spawned, daemons
  included), IPC and UTS namespaces, and a mount namespace holding a minimal private root:
  ``/usr``, ``/bin``, ``/lib*`` and the interpreter's installation read-only, five ``/dev`` nodes,
  a fresh ``/proc``, and a size-limited tmpfs for ``/tmp``, ``/dev/shm`` and the working directory
  ``/sandbox``. Nothing else of the host (``/root``, ``/home``, ``/etc``, the project, data sets,
  caches) is visible, and nothing written survives the run. Without root, a user namespace is
  tried to get the same layers.
* **no new privileges** (``PR_SET_NO_NEW_PRIVS``): set-uid binaries cannot raise privileges.

Without namespaces (``Sandbox(namespaces=False)`` or a kernel that refuses them), the program sees
the host file system with the permissions of its uid (world-writable ``/tmp`` included), can use the
network, and runs a system ``python3`` if the current interpreter is unreadable to it. Without root
and without a user namespace, it runs as the calling user: only the limits then protect the host.

A launcher stage (this file run as a script by the current interpreter) sets all of this up and then
``execve``-s the sandboxed interpreter, so nothing runs Python code between ``fork`` and ``exec`` in
the calling process: it is safe to call from threads.

>>> result = Sandbox().run("print(int(input()) * 2)", stdin="21\\n")
>>> result.stdout, result.succeeded
('42\\n', True)
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import functools
import json
import logging
import math
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Container, Iterator
from typing import Any, NoReturn

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
_LAUNCHER = os.path.abspath(__file__)
_SETUP_FAILED_EXIT = 125

# The protections a launcher reports; all of them are booleans.
PROTECTION_NAMES = (
    "scrubbed_environment",
    "resource_limits",
    "wall_clock_timeout",
    "unprivileged_user",
    "separate_user",
    "process_limit",
    "no_new_privileges",
    "user_namespace",
    "pid_namespace",
    "network_namespace",
    "ipc_namespace",
    "private_filesystem",
)


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (the program was not run)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-run resource limits. ``cpu_seconds`` defaults to the wall-clock limit rounded up."""

    wall_seconds: float = 5.0
    cpu_seconds: int | None = None
    memory_mb: int = 512
    max_processes: int = 32
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 4 * _MB
    scratch_mb: int = 64

    def __post_init__(self) -> None:
        numbers = dataclasses.asdict(self)
        if self.cpu_seconds is None:
            numbers.pop("cpu_seconds")
        bad = {name: value for name, value in numbers.items() if not (value > 0 and math.isfinite(value))}
        if bad:
            raise ValueError(f"sandbox limits must be positive and finite, got {bad}")

    @property
    def cpu_limit(self) -> int:
        return self.cpu_seconds if self.cpu_seconds is not None else max(1, math.ceil(self.wall_seconds))


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What one sandboxed run produced."""

    stdout: str
    stderr: str
    exit_code: int | None  # None when the program was killed by a signal or the timeout
    signal: int | None
    timed_out: bool
    output_truncated: bool
    duration: float
    setup_error: str | None = None  # set when the sandbox failed and the program never ran
    protections: dict[str, bool] = dataclasses.field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """Exited with status 0, in time, with all of its output captured."""
        return (
            self.exit_code == 0 and not self.timed_out and not self.output_truncated and not self.setup_error
        )


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """Runs Python source in a fresh sandboxed process; see the module docstring for the layers.

    ``interpreter`` is the Python run inside (default: the current one, or a system ``python3`` when
    the private root is unavailable and the current one is unreadable to the sandbox user).
    ``temp_root`` is where run directories are created (default: the system temp dir); it must be
    traversable by everyone when the private file system is unavailable. ``namespaces=False`` skips
    the namespace layers (then only the unprivileged user and the resource limits protect the host).
    """

    limits: Limits = Limits()
    interpreter: str | None = None
    temp_root: str | None = None
    uid_base: int = 60600
    uid_slots: int = 64
    namespaces: bool = True

    def run(self, source: str, stdin: str = "") -> RunResult:
        """Run ``source`` as a script with ``stdin`` as its standard input. Never raises for bad code."""
        started = time.monotonic()
        try:
            with self._user() as uid:
                return _run_once(self, uid, source, stdin, started)
        except Exception as error:  # noqa: BLE001 - a sandbox failure must never crash the caller
            logger.error("sandbox failed: %s", error)
            return RunResult(
                "", "", None, None, False, False, time.monotonic() - started, setup_error=str(error)
            )

    @contextlib.contextmanager
    def _user(self) -> Iterator[int | None]:
        if os.geteuid() != 0:
            yield None
            return
        with _lease_uid(
            self.uid_base, self.uid_slots, time.monotonic() + self.limits.wall_seconds + 30
        ) as uid:
            yield uid


@functools.lru_cache(maxsize=1)
def protections() -> dict[str, bool]:
    """Which protections are in force on this machine, as reported by a probe run.

    All are False when the probe program does not run correctly (the sandbox is unusable here).

    >>> protections()["scrubbed_environment"]
    True
    """
    result = Sandbox(Limits(wall_seconds=10)).run("print(input()[::-1])", stdin="ok\n")
    if result.stdout != "ko\n" or not result.succeeded:
        logger.error("sandbox probe failed: %s", result.setup_error or result)
        return dict.fromkeys(PROTECTION_NAMES, False)
    return {name: bool(result.protections.get(name, False)) for name in PROTECTION_NAMES}


def is_usable() -> bool:
    """Whether sandboxed programs run correctly on this machine (cached probe)."""
    return any(protections().values())


# --------------------------------------------------------------------------------------------------
# Calling side


def _run_once(sandbox: Sandbox, uid: int | None, source: str, stdin: str, started: float) -> RunResult:
    run_dir = tempfile.mkdtemp(prefix="r1trl-sandbox-", dir=sandbox.temp_root)
    try:
        os.chmod(run_dir, 0o711)  # traversable (not listable) so the fallback work dir is reachable
        work_dir = os.path.join(run_dir, "work")
        os.mkdir(work_dir, 0o700)
        _write_private(os.path.join(work_dir, "main.py"), source.encode("utf-8", errors="surrogatepass"))
        os.mkdir(os.path.join(run_dir, "root"), 0o700)
        if uid is not None:
            os.chown(work_dir, uid, uid)
            os.chown(os.path.join(work_dir, "main.py"), uid, uid)
        stdin_path = os.path.join(run_dir, "stdin")
        _write_private(stdin_path, stdin.encode("utf-8", errors="surrogatepass"))
        with open(stdin_path, "rb") as stdin_file:
            return _execute(sandbox, uid, run_dir, stdin_file, started)
    finally:
        if uid is not None:
            _kill_user_processes(uid)  # first, so that nothing writes into the tree being removed
        _remove_tree(run_dir)


def _write_private(path: str, data: bytes) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(data)


def _open_private(path: str) -> Any:
    return open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), "w+b")


def _execute(sandbox: Sandbox, uid: int | None, run_dir: str, stdin_file: Any, started: float) -> RunResult:
    limits = sandbox.limits
    interpreter = os.path.realpath(sandbox.interpreter or sys.executable)
    report_read, report_write = os.pipe()
    config = {
        "uid": uid,
        "caller_uid": os.getuid(),
        "interpreter": interpreter,
        "interpreter_prefix": os.path.dirname(os.path.dirname(interpreter)),
        "fallback_interpreters": [interpreter, "/usr/bin/python3", "/usr/local/bin/python3"],
        "run_dir": run_dir,
        "namespaces": sandbox.namespaces,
        "report_fd": report_write,
        "limits": dataclasses.asdict(limits) | {"cpu_seconds": limits.cpu_limit},
    }
    command = [sys.executable, "-I", "-S", "-B", _LAUNCHER, json.dumps(config)]
    with (
        _open_private(os.path.join(run_dir, "stdout")) as stdout_file,
        _open_private(os.path.join(run_dir, "stderr")) as stderr_file,
    ):
        try:
            process = subprocess.Popen(
                command,
                stdin=stdin_file,
                stdout=stdout_file,
                stderr=stderr_file,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                cwd=run_dir,
                start_new_session=True,
                pass_fds=(report_write,),
            )
        except BaseException:
            os.close(report_read)
            raise
        finally:
            os.close(report_write)
        timed_out = _wait(process, time.monotonic() + limits.wall_seconds)
        reports = _read_reports(report_read)
        stdout, truncated = _read_capped(stdout_file, limits.max_output_bytes)
        stderr, _ = _read_capped(stderr_file, 64 * 1024)
    duration = time.monotonic() - started
    ready = next((r["ready"] for r in reports if "ready" in r), None)
    error = next((r["error"] for r in reports if "error" in r), None)  # exec failures come after "ready"
    if error or (ready is None and not timed_out):
        detail = error or f"launcher exited with {process.returncode}: {stderr[-2000:]}"
        return RunResult("", stderr, None, None, False, False, duration, setup_error=detail)
    status = next((r["wait_status"] for r in reports if "wait_status" in r), None)
    exit_code, killed_by = _decode_status(process.returncode, status)
    if timed_out:
        exit_code = None
    return RunResult(
        stdout, stderr, exit_code, killed_by, timed_out, truncated, duration, protections=ready or {}
    )


def _wait(process: subprocess.Popen, deadline: float) -> bool:
    """Wait until the launcher ends or the deadline passes; kill its whole process group either way."""
    timed_out = False
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:  # also when the caller is interrupted
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return timed_out


def _decode_status(returncode: int, wait_status: int | None) -> tuple[int | None, int | None]:
    if wait_status is not None:  # relayed from outside the PID namespace: the program's own status
        returncode = os.waitstatus_to_exitcode(wait_status)
    return (None, -returncode) if returncode < 0 else (returncode, None)


def _read_reports(fd: int) -> list[dict[str, Any]]:
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    os.close(fd)
    reports = []
    for line in b"".join(chunks).decode("utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            reports.append(json.loads(line))
    return [report for report in reports if isinstance(report, dict)]


def _read_capped(file: Any, limit: int) -> tuple[str, bool]:
    file.seek(0)
    data = file.read(limit + 1)
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit


def _remove_tree(path: str) -> None:
    def make_writable_and_retry(function: Any, failed_path: str, _: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed_path), 0o700)
            function(failed_path)

    shutil.rmtree(path, onerror=make_writable_and_retry)


@contextlib.contextmanager
def _lease_uid(base: int, slots: int, deadline: float) -> Iterator[int]:
    """Hold an exclusive (across threads and processes) lock on one sandbox uid for the duration."""
    lock_dir = os.path.join(tempfile.gettempdir(), f"r1trl-sandbox-uids-{os.geteuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(lock_dir, 0o700)
    info = os.lstat(lock_dir)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise SandboxError(f"{lock_dir} is not a private directory of ours; refusing to use it")
    start = os.getpid() + time.monotonic_ns()
    while True:
        for offset in range(slots):
            uid = base + (start + offset) % slots
            fd = os.open(os.path.join(lock_dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                _kill_user_processes(uid)  # leftovers of a crashed earlier holder
                yield uid
                return
            finally:
                os.close(fd)  # releases the lock
        if time.monotonic() > deadline:
            raise SandboxError(f"all {slots} sandbox uids from {base} are busy")
        time.sleep(0.05)


def _kill_user_processes(uid: int) -> None:
    """SIGKILL every live process whose real uid is ``uid`` (escaped daemons, fork-bomb leftovers)."""
    for _ in range(100):
        victims = user_processes({uid})
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    logger.warning("processes of sandbox uid %d survived repeated SIGKILL", uid)


def user_processes(uids: Container[int]) -> list[int]:
    """The live (non-zombie) processes whose real uid is in ``uids``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/status", encoding="utf-8", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            if int(fields["Uid"].split()[0]) in uids and not fields["State"].strip().startswith(("Z", "X")):
                pids.append(int(entry))
    return pids


# --------------------------------------------------------------------------------------------------
# Launcher side: runs as ``python -I -S sandbox.py CONFIG``, sets everything up, then execve-s.

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_NOATIME = 1024
_MS_NODIRATIME = 2048
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2
# Flags a bind remount must keep (locked in a user namespace); they share their bit values with ST_*.
_KEPT_MOUNT_FLAGS = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_NOATIME | _MS_NODIRATIME
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICES = ("null", "zero", "full", "random", "urandom")
_SANDBOX_DIR = "/sandbox"


class _Libc:
    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)

    def call(self, name: str, *args: Any) -> int:
        result = getattr(self._libc, name)(*args)
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{name}{args}: {os.strerror(errno)}")
        return result

    def unshare(self, flags: int) -> bool:
        try:
            self.call("unshare", flags)
        except OSError:
            return False
        return True

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
    ) -> None:
        def encode(text: str | None) -> bytes | None:
            return None if text is None else text.encode()

        self.call(
            "mount", encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)
        )


def _launch(config: dict[str, Any]) -> NoReturn:
    report_fd = config["report_fd"]
    os.set_inheritable(report_fd, False)
    try:
        _launch_contained(config, report_fd)
    except BaseException as error:  # noqa: BLE001 - report anything, then fail
        _report(report_fd, {"error": f"{type(error).__name__}: {error}"})
        os._exit(_SETUP_FAILED_EXIT)


def _launch_contained(config: dict[str, Any], report_fd: int) -> NoReturn:
    """Set up the layers, then exec the program.

    With a PID namespace there are three processes: this launcher waits outside it; its child, PID 1
    inside (still privileged, so the program cannot touch it), builds the private root, then forks
    the program (PID 2, so signals behave normally for it), reaps, and reports its wait status.
    """
    libc = _Libc()
    os.umask(0o022)
    applied = dict.fromkeys(PROTECTION_NAMES, False)
    applied.update(scrubbed_environment=True, resource_limits=True, wall_clock_timeout=True)
    as_root = os.geteuid() == 0
    if not config["namespaces"]:
        _exec_program(libc, config, applied, report_fd)
    if not as_root:
        applied["user_namespace"] = _enter_user_namespace(libc)
    applied["pid_namespace"] = libc.unshare(_CLONE_NEWPID)
    if applied["pid_namespace"]:
        lifeline, keep_alive = os.pipe()
        init = os.fork()
        if init:
            os.close(lifeline)
            _exit_like(init)
        os.close(keep_alive)
        _die_with_parent(libc, lifeline)
    applied["network_namespace"] = libc.unshare(_CLONE_NEWNET)
    applied["ipc_namespace"] = libc.unshare(_CLONE_NEWIPC | _CLONE_NEWUTS)
    applied["private_filesystem"] = _enter_private_root(libc, config, applied["pid_namespace"], config["uid"])
    if applied["pid_namespace"]:
        program = os.fork()
        if program:
            _reap_and_report(program, report_fd)
    _exec_program(libc, config, applied, report_fd)


def _exec_program(libc: _Libc, config: dict[str, Any], applied: dict[str, bool], report_fd: int) -> NoReturn:
    private_root = applied["private_filesystem"]
    work_dir = _SANDBOX_DIR if private_root else os.path.join(config["run_dir"], "work")
    _set_limits(config["limits"])
    if os.geteuid() == 0:
        _drop_privileges(config["uid"])
    applied["unprivileged_user"] = applied["process_limit"] = os.getuid() != 0 and os.geteuid() != 0
    applied["separate_user"] = os.getuid() != config["caller_uid"]
    libc.call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    applied["no_new_privileges"] = True
    interpreter = (
        config["interpreter"] if private_root else _usable_interpreter(config["fallback_interpreters"])
    )
    os.chdir(work_dir)
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": work_dir,
        "TMPDIR": "/tmp" if private_root else work_dir,
    }
    _report(report_fd, {"ready": applied})  # report_fd is close-on-exec; it stays open if execve fails
    os.execve(interpreter, [interpreter, "-I", "-S", "-B", "main.py"], environment)


def _report(fd: int, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(message) + "\n").encode())


def _exit_like(child: int) -> NoReturn:
    """Wait for ``child`` and exit with its exit code (128 + signal number when it was killed)."""
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def _reap_and_report(program: int, report_fd: int) -> NoReturn:
    """As PID 1: reap orphans until the program ends, report its status; exiting kills the rest."""
    while True:
        pid, status = os.wait()
        if pid == program:
            break
    _report(report_fd, {"wait_status": status})
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def _die_with_parent(libc: _Libc, lifeline: int) -> None:
    libc.call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if select.select([lifeline], [], [], 0)[0]:  # EOF: the parent died before prctl took effect
        os._exit(_SETUP_FAILED_EXIT)


def _enter_user_namespace(libc: _Libc) -> bool:
    uid, gid = os.getuid(), os.getgid()
    if not libc.unshare(_CLONE_NEWUSER):
        return False
    with open("/proc/self/setgroups", "w") as setgroups:
        setgroups.write("deny")
    with open("/proc/self/uid_map", "w") as uid_map:
        uid_map.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as gid_map:
        gid_map.write(f"{gid} {gid} 1")
    return True


def _enter_private_root(libc: _Libc, config: dict[str, Any], own_pids: bool, uid: int | None) -> bool:
    """Build a minimal root on a tmpfs and switch to it; False (host root kept) if that is impossible."""
    if not libc.unshare(_CLONE_NEWNS):
        return False
    root = os.path.join(config["run_dir"], "root")
    try:
        with open(os.path.join(config["run_dir"], "work", "main.py"), "rb") as script:
            source = script.read()
        libc.mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        scratch = config["limits"]["scratch_mb"] * _MB
        libc.mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={scratch},mode=0755")
        exposed: list[str] = []
        for path in (*_SYSTEM_DIRS, config["interpreter_prefix"]):
            _expose_read_only(libc, path, root, exposed)
        _populate_dev(libc, root)
        if own_pids:  # a /proc of the host would show every host process
            os.mkdir(root + "/proc", 0o555)
            libc.mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        for shared in ("/tmp", "/var/tmp"):
            os.makedirs(root + shared)
            os.chmod(root + shared, 0o1777)
        os.mkdir(root + _SANDBOX_DIR, 0o700)
        with open(root + _SANDBOX_DIR + "/main.py", "wb") as script:
            script.write(source)
        if uid is not None:
            os.chown(root + _SANDBOX_DIR, uid, uid)
            os.chown(root + _SANDBOX_DIR + "/main.py", uid, uid)
    except OSError:
        return False  # the half-built root lives in our private mount namespace only
    _switch_root(libc, root)
    return True


def _expose_read_only(libc: _Libc, path: str, root: str, exposed: list[str]) -> None:
    if (
        path == "/"
        or not os.path.lexists(path)
        or any(path == done or path.startswith(done + "/") for done in exposed)
    ):
        return
    target = root + path
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if os.path.islink(path):  # e.g. /bin -> usr/bin on merged-/usr systems
        os.symlink(os.readlink(path), target)
        return
    os.makedirs(target, mode=0o755, exist_ok=True)
    libc.mount(path, target, None, _MS_BIND | _MS_REC)
    kept = os.statvfs(path).f_flag & _KEPT_MOUNT_FLAGS
    libc.mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | kept)
    exposed.append(path)


def _populate_dev(libc: _Libc, root: str) -> None:
    dev = root + "/dev"
    os.mkdir(dev, 0o755)
    for name in _DEVICES:
        os.close(os.open(f"{dev}/{name}", os.O_WRONLY | os.O_CREAT, 0o644))
        libc.mount(f"/dev/{name}", f"{dev}/{name}", None, _MS_BIND)
    for index, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{index}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")
    os.mkdir(dev + "/shm")
    os.chmod(dev + "/shm", 0o1777)


def _switch_root(libc: _Libc, root: str) -> None:
    os.chdir(root)
    number = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is not None and libc._libc.syscall(number, b".", b".") == 0:
        libc.call("umount2", b".", _MNT_DETACH)  # detach the old root stacked on top of the new one
    else:
        os.chroot(".")  # without CAP_SYS_CHROOT the unprivileged program cannot break out
    os.chdir("/")


def _set_limits(limits: dict[str, Any]) -> None:
    def cap(kind: int, soft: int, hard: int | None = None) -> None:
        resource.setrlimit(kind, (soft, soft if hard is None else hard))

    cap(resource.RLIMIT_CPU, limits["cpu_seconds"], limits["cpu_seconds"] + 1)  # SIGXCPU, then SIGKILL
    cap(resource.RLIMIT_AS, limits["memory_mb"] * _MB)
    cap(resource.RLIMIT_NPROC, limits["max_processes"])
    cap(resource.RLIMIT_FSIZE, max(limits["max_file_mb"] * _MB, limits["max_output_bytes"] + 1))
    cap(resource.RLIMIT_NOFILE, limits["max_open_files"])
    cap(resource.RLIMIT_CORE, 0)


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise SandboxError(f"could not switch to uid {uid}")


def _usable_interpreter(candidates: list[str]) -> str:
    """The first interpreter (with its installation) the now-unprivileged user can run."""
    for path in candidates:
        prefix = os.path.dirname(os.path.dirname(os.path.realpath(path)))
        if os.access(path, os.X_OK) and os.access(prefix, os.R_OK | os.X_OK):
            return path
    raise SandboxError(f"none of {candidates} is usable by uid {os.getuid()}")


if __name__ == "__main__":
    _launch(json.loads(sys.argv[1]))
