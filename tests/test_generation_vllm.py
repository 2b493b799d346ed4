"""The vLLM path of every sampling stage, checked against a stand-in ``vllm`` (tests/fake_vllm) that keeps a
per-device memory ledger and fails as vLLM does when an engine asks for more than is free (no GPU here).

* one process: engines are built as TRL builds its colocated ones (``external_launcher``, explicit memory
  share, tensor-parallel size, context length, dtype), get token-id prompts tokenized as TRL tokenizes
  them, are reused, and are released (the ledger frees their memory);
* a training stage: no engine is alive when the trainer is built, and the post-training evaluation fits
  beside what the trainer leaves;
* 8 simulated ranks (``torchrun``, CPU): sampling stages build one engine per local device, shard the
  prompts, write their dataset once, and release every engine; rejection sampling's generative judge is
  sampled by every rank too (engine set-up is collective: a judge on the main process alone would hang).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from r1_trl import generation
from r1_trl.generation import EngineSettings, SamplingSettings, generate, prompt_token_ids, release_engines
from r1_trl.stages import grpo  # imports TRL's trainers before the stand-in vllm is importable

REPO = Path(__file__).resolve().parents[1]
FAKE_VLLM = Path(__file__).resolve().parent / "fake_vllm"
ENGINE = EngineSettings(backend="vllm", dtype="bfloat16", vllm_gpu_memory_utilization=0.3,
                        vllm_tensor_parallel_size=1, vllm_max_model_length=512)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from r1_trl.models.tiny import random_tiny_model

    return random_tiny_model(tmp_path_factory.mktemp("vllm-model"))


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path):
    launcher_variables = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    saved = {name: os.environ.pop(name) for name in launcher_variables if name in os.environ}
    monkeypatch.setenv("FAKE_VLLM_LEDGER", str(tmp_path / "ledger.json"))
    monkeypatch.syspath_prepend(str(FAKE_VLLM))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    import vllm

    monkeypatch.setattr(vllm.LLM, "built", [])
    monkeypatch.setattr(generation, "_VLLM_ENGINES", {})
    yield vllm
    release_engines()
    sys.modules.pop("vllm", None)
    for name in launcher_variables:  # engines set them, as TRL's do; later tests must not see a launch
        os.environ.pop(name, None)
    os.environ.update(saved)


def test_engines_are_built_like_trl_and_released(fake_vllm, tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompts = ["What is 1 + 2?", [{"role": "user", "content": "What is 3 * 4?"}]]
    settings = SamplingSettings(num_samples=2, max_new_tokens=7, temperature=0.6, top_p=0.9, seed=3)
    first = generate(str(tiny_model), tokenizer, prompts, settings, ENGINE)
    generate(str(tiny_model), tokenizer, prompts[:1], settings, ENGINE)
    assert len(fake_vllm.LLM.built) == 1, "one engine per model and settings, reused"
    assert fake_vllm.LLM.built[0] == {
        "model": str(tiny_model), "tensor_parallel_size": 1, "gpu_memory_utilization": 0.3, "max_model_len": 512,
        "dtype": "bfloat16", "distributed_executor_backend": "external_launcher", "seed": 0,
    }  # fmt: skip
    assert [len(group) for group in first] == [2, 2] and "<answer>\n3\n</answer>" in first[0][0]
    assert "<answer>\n12\n</answer>" in first[1][0]
    engine = next(iter(generation._VLLM_ENGINES.values()))
    sent = [request["prompt_token_ids"] for request in engine.requests[0][0]]
    chat_ids = tokenizer.apply_chat_template([prompts[1]], add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"][0]  # fmt: skip
    assert sent == prompt_token_ids(tokenizer, prompts) and sent[1] == list(chat_ids) and sent[0] == tokenizer(prompts[0])["input_ids"]
    params = engine.requests[0][1]
    assert (params.n, params.max_tokens, params.temperature, params.top_p, params.seed) == (2, 7, 0.6, 0.9, None)
    assert len(fake_vllm.live("vllm")) == 1
    del engine
    assert release_engines() == 1 and fake_vllm.live("vllm") == []


def test_a_plain_engine_per_rank_would_not_fit(fake_vllm, monkeypatch):
    """What the stand-in guards against: vLLM's defaults put every rank's engine on cuda:0 asking for 0.9."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    first = fake_vllm.allocate("rank0", 0, 0.9, "vllm")
    with pytest.raises(ValueError, match="Free memory on device cuda:0"):
        fake_vllm.allocate("rank1", 0, 0.9, "vllm")
    fake_vllm.release(first)
    assert fake_vllm.live() == []


@pytest.mark.slow
def test_training_stage_releases_engines_around_the_trainer(fake_vllm, tiny_model, tmp_path, monkeypatch):
    from r1_trl.configs import R1GRPOConfig
    from r1_trl.trainers import R1GRPOTrainer

    trainer_share = 0.75  # with the evaluation engine's 0.3, the trainer's state must be gone after training
    alive_at_build: list[list] = []

    class MeasuredTrainer(R1GRPOTrainer):  # the trainer's memory on the device, from build to collection
        def __init__(self, *args, **kwargs):
            alive_at_build.append(fake_vllm.live("vllm"))
            reservation = fake_vllm.allocate("trainer", 0, trainer_share, "trainer")
            weakref.finalize(self, fake_vllm.release, reservation)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(grpo, "R1GRPOTrainer", MeasuredTrainer)
    config = R1GRPOConfig(
        output_dir=str(tmp_path / "stage"), model_name_or_path=str(tiny_model), max_steps=2,
        per_device_train_batch_size=4, num_generations=4, max_completion_length=16, train_size=16, eval_size=4,
        eval_num_samples=2, eval_max_new_tokens=32, logging_steps=1, report_to="none", save_strategy="no",
        generation_backend="vllm", bf16=False,
    )  # fmt: skip
    results = grpo.run_grpo_stage(config, "r1-zero")
    assert alive_at_build == [[]], "no sampling engine is alive when the trainer is built"
    events = [(e["event"], e["kind"]) for e in json.loads(Path(os.environ["FAKE_VLLM_LEDGER"]).read_text())["events"]]
    assert events == [("allocate", "vllm"), ("release", "vllm"), ("allocate", "trainer"), ("release", "trainer"),
                      ("allocate", "vllm"), ("release", "vllm")]  # fmt: skip
    assert results["after"]["accuracy"] == 1.0, "the stand-in answers every arithmetic question correctly"


EIGHT_RANKS = 8
# Open questions (no reference: only the judge can decide) beside checkable sums.
JUDGED_PROBLEMS = [{"prompt": f"Name a primary color, answer {i}.", "solution": ""} for i in range(8)] + [
    {"prompt": f"What is {a} + {a + 2}?", "solution": str(2 * a + 2)} for a in range(8)]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_eight_simulated_ranks_build_one_engine_per_device(tiny_model, tmp_path):
    ledger = tmp_path / "ledger.json"
    open_problems = tmp_path / "open.jsonl"
    open_problems.write_text("".join(json.dumps(row) + "\n" for row in JUDGED_PROBLEMS))
    shutil.copytree(tiny_model, tmp_path / "judge")  # a model of its own: the judge gets its own engines
    env = {**os.environ, "FAKE_VLLM_LEDGER": str(ledger), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "FAKE_VLLM_JOIN_SECONDS": "30",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(EIGHT_RANKS),
               __file__, str(tiny_model), str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    book = json.loads(ledger.read_text())
    assert book["live"] == {}, "every engine was released"
    table = []
    for stage, engines in (("generate_sharded", 1), ("rejection-sampling", 1), ("rejection-sampling-judged", 2)):
        built = [e for e in book["events"] if e["stage"] == stage and e["event"] == "allocate"]
        devices = sorted(e["device"] for e in built)
        assert devices == sorted(list(range(EIGHT_RANKS)) * engines), f"{stage}: {engines} per device, got {devices}"
        table.append(f"{stage:<20} engines built {len(built)}  peak per device "
                     f"{max(book['peak'].values()) / 2**30:.1f} GiB of 80")
    print("\n".join(table))
    assert all(peak <= 0.3 * 80 * 2**30 + 1 for peak in book["peak"].values())
    shards = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(EIGHT_RANKS)]
    assert all(s["groups"] == shards[0]["groups"] for s in shards), "every rank gets every group, in prompt order"
    assert sum(s["prompts_sampled"] for s in shards) == 16 and all(s["prompts_sampled"] == 2 for s in shards)
    stats = json.loads((tmp_path / "rs" / "datasets" / "sft_mix" / "stats.json").read_text())
    assert stats["generation"]["processes"] == EIGHT_RANKS and stats["kept_reasoning"] > 0
    assert not list((tmp_path / "rs" / "datasets").glob(".sft_mix.*")), "no staging folder left behind"
    judged = json.loads((tmp_path / "rs-judged" / "datasets" / "sft_mix" / "stats.json").read_text())
    assert judged["judge"]["judged"] > 0 and judged["judge"]["model"] == str(tmp_path / "judge"), judged["judge"]
    assert judged["judge"]["yes"] + judged["judge"]["no"] + judged["judge"]["unclear"] == judged["judge"]["judged"]
    assert judged["kept_reasoning"] > 0, judged["rejected"]


def _eight_rank_worker(model: str, output_dir: str) -> None:
    from transformers import AutoTokenizer

    from r1_trl.distributed import exit_distributed, launch_state
    from r1_trl.stages import rejection_sampling as rs

    sys.path.insert(0, str(FAKE_VLLM))  # after TRL's trainers are imported, as in the one-process tests
    import vllm

    state = launch_state()
    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = [f"What is {a} + {a + 1}?" for a in range(16)]
    os.environ["FAKE_VLLM_STAGE"] = "generate_sharded"
    settings = SamplingSettings(num_samples=2, batch_size=2)  # one prompt per batch: 2 batches per rank
    groups = generation.generate_sharded(model, tokenizer, prompts, settings, ENGINE)
    sampled = sum(len(request[0]) for engine in generation._VLLM_ENGINES.values() for request in engine.requests)
    release_engines()
    Path(output_dir, f"rank{state.process_index}.json").write_text(json.dumps(
        {"groups": groups, "prompts_sampled": sampled, "engines": len(vllm.LLM.built)}))
    os.environ["FAKE_VLLM_STAGE"] = "rejection-sampling"
    rs.run(rs.RejectionSamplingConfig(
        model_name_or_path=model, output_dir=str(Path(output_dir, "rs")), train_size=16, eval_size=4,
        decontaminate=False, num_generations=2, language_candidates=["en"], max_new_tokens=256,
        prompt_template="chat", generation_backend="vllm", generation_batch_size=2, min_reasoning_rows=1,
        task_kwargs={"levels": [2]},
    ))  # fmt: skip
    os.environ["FAKE_VLLM_STAGE"] = "rejection-sampling-judged"
    rs.run(rs.RejectionSamplingConfig(
        model_name_or_path=model, output_dir=str(Path(output_dir, "rs-judged")), dataset_name=str(Path(output_dir,
        "open.jsonl")), task_kwargs=None, train_size=None, eval_size=2, decontaminate=False, num_generations=2,
        language_candidates=["en"], max_new_tokens=256, prompt_template="chat", generation_backend="vllm",
        generation_batch_size=2, min_reasoning_rows=1, judge_model_name_or_path=str(Path(output_dir, "judge")),
    ))  # fmt: skip
    sys.exit(exit_distributed(0))


if __name__ == "__main__":
    _eight_rank_worker(sys.argv[1], sys.argv[2])
