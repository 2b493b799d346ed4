"""The vLLM path's own logic, checked against a stand-in ``vllm`` module (no GPU here): one engine per
model and process, reused across calls, replaced when the model changes; prompts rendered with the chat
template; n samples per prompt with the requested settings."""

import sys
import types
from dataclasses import dataclass, field

import pytest

from r1_trl import generation
from r1_trl.generation import SamplingSettings, generate
from r1_trl.models import build_tiny_tokenizer


@dataclass
class FakeLLM:
    model: str
    requests: list = field(default_factory=list)

    def generate(self, prompts, params):
        self.requests.append((prompts, params))
        outputs = [types.SimpleNamespace(text=f"{prompt[-4:]}#{i}") for prompt in prompts for i in range(params.n)]
        return [types.SimpleNamespace(outputs=outputs[j * params.n:(j + 1) * params.n]) for j in range(len(prompts))]


@pytest.fixture
def fake_vllm(monkeypatch):
    built: list[FakeLLM] = []

    def make_llm(model):
        built.append(FakeLLM(model))
        return built[-1]

    module = types.ModuleType("vllm")
    module.LLM = make_llm
    module.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(generation, "_VLLM_ENGINES", {})
    return built


def test_one_engine_per_model_reused_across_calls(fake_vllm):
    tokenizer = build_tiny_tokenizer(["User: What is 1 + 1? Assistant: 2"] * 10)
    settings = SamplingSettings(num_samples=2, max_new_tokens=7, temperature=0.6, top_p=0.9, seed=3)
    first = generate("org/teacher", tokenizer, ["What is 1 + 1?", [{"role": "user", "content": "Hi"}]], settings,
                     backend="vllm")
    second = generate("org/teacher", tokenizer, ["What is 2 + 2?"], settings, backend="vllm")
    assert len(fake_vllm) == 1, "the engine is built once per model"
    assert [len(group) for group in first] == [2, 2] and len(second) == 1
    prompts, params = fake_vllm[0].requests[0]
    assert prompts[0] == "What is 1 + 1?" and prompts[1].startswith("User: Hi") and prompts[1].endswith("Assistant:")
    assert (params.n, params.max_tokens, params.temperature, params.top_p, params.seed) == (2, 7, 0.6, 0.9, 3)
    generate("org/student", tokenizer, ["What is 3 + 3?"], settings, backend="vllm")
    assert [llm.model for llm in fake_vllm] == ["org/teacher", "org/student"]
    assert list(generation._VLLM_ENGINES) == ["org/student"], "the previous engine is released"
