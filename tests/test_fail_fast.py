"""Bad input fails before any compute: in under 10 s offline, one line naming the field and the value, no
traceback (unless --debug), and no output_dir left behind."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tiny" / "r1_zero.yaml"
SECONDS = 10.0


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # the CLI process's own CPU seconds (user + system)

    @property
    def fast(self) -> bool:
        """Under 10 s of work and no long waits. On an idle machine wall time is about the CPU time (4-7 s
        measured); on a machine shared with other jobs wall time stretches (22.8 s once, beside two training
        runs) and CPU time does not. Waiting (network retries, sleeps) shows as wall time: bounded at 3x."""
        return self.cpu < SECONDS and self.wall < 3 * SECONDS


def run_cli(args: list[str], tmp_path: Path, offline: bool = True) -> tuple[subprocess.CompletedProcess, Timing]:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home")}  # an empty Hugging Face cache
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.pop("HF_HUB_OFFLINE", None)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "r1_trl.cli", *args], capture_output=True, text=True,
                               env=env, timeout=120, cwd=tmp_path)  # fmt: skip
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return completed, Timing(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


CASES = {
    "negative max_steps": (["--max_steps", "-5"], "max_steps: ", "-5"),
    "missing local model": (["--model_name_or_path", "/no/such/model"], "model_name_or_path: ", "'/no/such/model'"),
    "hub id not cached offline": (["--model_name_or_path", "someone/not-cached"], "model_name_or_path: ",
                                  "'someone/not-cached'"),
    "unknown reward": (["--reward_funcs", "accuracy", "no_such_reward"], "reward_funcs: ", "'no_such_reward'"),
    "negative learning_rate": (["--learning_rate", "-1"], "learning_rate: ", "-1"),
    "zero batch": (["--per_device_train_batch_size", "0"], "per_device_train_batch_size: ", "0"),
}  # fmt: skip


def assert_one_error_line(completed: subprocess.CompletedProcess, field: str, value: str) -> None:
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and field in errors[0] and value in errors[0], completed.stderr[-2000:]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_recipe_values_fail_fast_naming_the_field(tmp_path: Path, case: str) -> None:
    overrides, field, value = CASES[case]
    output_dir = tmp_path / "out"
    completed, timing = run_cli(["grpo", "--config", str(RECIPE), *overrides, "--output_dir", str(output_dir)],
                                 tmp_path)  # fmt: skip
    assert_one_error_line(completed, field, value)
    assert timing.fast, timing
    assert not output_dir.exists()


def test_missing_recipe_file_and_invalid_yaml(tmp_path: Path) -> None:
    completed, timing = run_cli(["grpo", "--config", str(tmp_path / "nope.yaml")], tmp_path)
    assert_one_error_line(completed, "--config: ", "nope.yaml")
    assert timing.fast, timing
    broken = tmp_path / "broken.yaml"
    broken.write_text("learning_rate: [1e-5\nmax_steps: 3\n")
    completed, timing = run_cli(["grpo", "--config", str(broken)], tmp_path)
    assert_one_error_line(completed, "--config: ", "line 2")
    assert "not valid YAML" in completed.stderr and timing.fast


def test_unreachable_hub_fails_fast_when_not_told_it_is_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: no network needed
    output_dir = tmp_path / "out"
    completed, timing = run_cli(["grpo", "--config", str(RECIPE), "--model_name_or_path", "someone/model",
                                  "--output_dir", str(output_dir)], tmp_path, offline=False)  # fmt: skip
    assert_one_error_line(completed, "model_name_or_path: ", "'someone/model'")
    assert "unreachable" in completed.stderr and timing.fast and not output_dir.exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    completed, _ = run_cli(["grpo", "--config", str(RECIPE), "--max_steps", "-5", "--debug",
                            "--output_dir", str(tmp_path / "out")], tmp_path)  # fmt: skip
    assert completed.returncode != 0 and "Traceback" in completed.stderr and "max_steps: " in completed.stderr


def test_cli_main_returns_2_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from r1_trl import cli

    assert cli.main(["sft", "--config", str(REPO / "recipes" / "tiny" / "cold_start_sft.yaml"), "--max_steps", "-3",
                     "--output_dir", str(tmp_path / "out")]) == 2  # fmt: skip
    assert "max_steps: " in capsys.readouterr().err and not (tmp_path / "out").exists()
