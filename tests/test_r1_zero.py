"""R1-Zero end to end on the tiny base: the demo must show real learning, measured on held-out prompts."""

import json
import subprocess
import sys

import pytest

from r1_trl.models.tiny import BUNDLED_BASE, TinyBaseSpec, bundled_spec, load_or_build_tiny_base, pretrain


def test_bundled_base_is_the_default_spec():
    assert bundled_spec() == TinyBaseSpec()
    assert load_or_build_tiny_base() == BUNDLED_BASE


def test_pretraining_procedure_learns(tmp_path):
    spec = TinyBaseSpec(pretrain_steps=40, batch_size=8, peak_lr=3e-3)
    stats = pretrain(spec, tmp_path / "base", show_progress=False)
    assert stats["final_loss"] < 3.0  # from ~ln(406) = 6.0 at initialisation
    assert (tmp_path / "base" / "model.safetensors").is_file()


def test_build_goes_to_the_cache_atomically(tmp_path):
    spec = TinyBaseSpec(pretrain_steps=2, batch_size=2)
    path = load_or_build_tiny_base(spec, cache_dir=tmp_path, show_progress=False)
    assert path.parent == tmp_path and path.name == spec.cache_key()
    assert [p.name for p in tmp_path.iterdir()] == [spec.cache_key()]  # no staging leftovers
    assert load_or_build_tiny_base(spec, cache_dir=tmp_path) == path  # second call: cache hit


@pytest.mark.slow
def test_demo_r1_zero_learns_format_and_accuracy(tmp_path):
    output_dir = tmp_path / "demo"
    completed = subprocess.run(
        [sys.executable, "-m", "r1_trl.cli", "demo", "r1-zero", "--output_dir", str(output_dir)],
        capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "held-out accuracy" in completed.stdout
    results = json.loads((output_dir / "results.json").read_text())
    before, after = results["before"], results["after"]
    print(json.dumps({"before": before, "after": after, "train": results["train"]}, indent=2))
    assert after["format_rate"] >= 0.9
    assert after["accuracy"] >= before["accuracy"] + 0.10
    assert after["format_rate"] >= before["format_rate"] + 0.3
    assert results["train"]["mean_completion_length_last"] > results["train"]["mean_completion_length_first"]
    assert (output_dir / "curves.png").stat().st_size > 10_000
    assert (output_dir / "checkpoint" / "model.safetensors").is_file()
