"""benchmarks/bench_sets.py runs in its tiny --quick configuration and writes consistent JSON.

The speed numbers of a smoke run mean nothing; what is checked is that every case ran, that the
summary is what the raw samples say, and that the FLOP count agrees with a closed form.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_sets.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--floors", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, done.stdout


@pytest.fixture(scope="module")
def quick(quick_run):
    """The prompts-only settings group of the run, and what it printed."""
    out, stdout = quick_run
    return json.loads(out.read_text(encoding="utf-8")), stdout


@pytest.fixture(scope="module")
def quick_outputs(quick_run):
    """The other files of the same run: the reference-settings JSON and both Markdown tables."""
    out, _ = quick_run
    return (json.loads(out.with_name("quick_reference.json").read_text(encoding="utf-8")),
            out.with_suffix(".md").read_text(encoding="utf-8"))


def test_both_settings_groups_are_measured_and_tabled(quick, quick_outputs):
    prompts, _ = quick
    reference, markdown = quick_outputs
    assert prompts["settings_group"] == "prompts" and reference["settings_group"] == "reference"
    assert reference["settings"]["share_group_norm"] and reference["settings"]["shared_score_shift"] > 0
    assert not prompts["settings"]["share_group_norm"] and prompts["settings"]["shared_score_shift"] == 0
    for result in (prompts, reference):
        title = f"### {result['settings_group']} settings"
        assert title in markdown
        table = markdown.split(title)[1].split("###")[0]
        entry = result["ratios"][-1]
        rounds = entry["ratio_vs_plain_rounds"]["engine-mb1"]
        # the median and the per-round range of each ratio, as the JSON has them
        assert (f"{entry['ratio_vs_plain']['engine-mb1']:.3f} [{min(rounds):.2f}-{max(rounds):.2f}]"
                in table)


def test_every_case_ran_with_sane_numbers(quick):
    result, stdout = quick
    assert result["sizes"] == [1, 2] and result["micro_batches"] == [1, 2]
    got = {(c["case"], c["panels"]) for c in result["cases"]}
    micro_batched = {("engine-mb1", 1), ("engine-mb1", 2), ("engine-mb2", 2)}
    floors = {(key.replace("engine", method), n) for key, n in micro_batched for method in ("unshared", "keys")}
    assert got == {("plain", 1), ("style_aligned", 1), ("plain", 2), ("style_aligned", 2)} | micro_batched | floors
    for case in result["cases"]:
        n = case["panels"]
        for key in ("step_s_runs", "step_cpu_s_runs"):
            samples = [t for run in case[key] for t in run]
            assert len(samples) == result["rounds"] * result["steps_per_run"]
            assert all(math.isfinite(t) and t > 0 for t in samples)
        assert case["per_image_s_median"] == pytest.approx(case["step_s_median"] / (n + 1))
        assert case["peak_memory_mib"] is not None and case["peak_memory_mib"] >= 0
        # one batched call for the pipelines; the reference plus ceil(n / m) for the engine
        expected_calls = 1 if case["micro_batch"] is None else 1 + math.ceil(n / case["micro_batch"])
        assert case["unet_calls_per_step"] == expected_calls
        assert case["unet_rows_per_step"] == 2 * (n + 1)  # CFG on
    assert "engine-mb" in stdout and "limit" in stdout  # the table was printed


def test_ratios_are_medians_of_paired_rounds(quick):
    result, _ = quick
    assert result["ratio_clock"] == "cpu"  # on CPU the ratios are taken on process CPU time
    runs = {(c["case"], c["panels"]): [statistics.median(r) for r in c["step_cpu_s_runs"]]
            for c in result["cases"]}
    for entry in result["ratios"]:
        n = entry["panels"]
        assert set(entry["ratio_vs_plain"]) == {k for k, p in runs if p == n and k != "plain"}
        for key, ratio in entry["ratio_vs_plain"].items():
            paired = [t / p for t, p in zip(runs[(key, n)], runs[("plain", n)])]
            assert ratio == pytest.approx(statistics.median(paired))
        # the engine over its keys-only floor at the same micro-batch, paired by round
        engine = {k for k, p in runs if p == n and k.startswith("engine-")}
        assert set(entry["ratio_vs_keys_floor"]) == engine
        for key, ratio in entry["ratio_vs_keys_floor"].items():
            paired = [t / f for t, f in zip(runs[(key, n)], runs[(key.replace("engine", "keys"), n)])]
            assert ratio == pytest.approx(statistics.median(paired))


def test_floor_cases_share_what_their_names_say(quick, quick_outputs):
    """keys-mbM shares only keys and values; unshared-mbM nothing; the tables show the floor."""
    sys.path.insert(0, str(SCRIPT.parent))
    import bench_sets

    keys, unshared = bench_sets._floor_settings("keys"), bench_sets._floor_settings("unshared")
    assert keys.share_attention and not (keys.adain_queries or keys.adain_keys or keys.share_group_norm
                                         or keys.shared_score_shift)
    assert not unshared.is_active
    prompts, stdout = quick
    reference, markdown = quick_outputs
    for result in (prompts, reference):
        entry = result["ratios"][-1]
        line = (f"engine vs keys floor at {entry['panels']} panels (same micro-batch, paired rounds): "
                + ", ".join(f"{k} {v:.3f}" for k, v in entry["ratio_vs_keys_floor"].items()))
        assert line in markdown
        # floors are not held to the targets
        assert not any(m.startswith(("keys", "unshared")) for m in result["target_misses"])
    assert "engine vs keys floor at 2 panels" in stdout


def _self_attention_layers(config: dict) -> list[tuple[int, int]]:
    """(level, layers) of self-attention, counted from the UNet config independently."""
    depth, per_block = config["transformer_layers_per_block"], config["layers_per_block"]
    levels = [i for i, kind in enumerate(config["down_block_types"]) if "CrossAttn" in kind]
    counts = []
    for i in levels:
        layers = per_block * depth[i] + (per_block + 1) * depth[i]
        if i == len(config["down_block_types"]) - 1:
            layers += depth[i]
        counts.append((i, layers))
    return counts


def test_flops_agree_with_the_closed_form(quick):
    result, _ = quick
    model, flops = result["model"], result["flops"]
    config = model["unet_config"]
    latent_h, latent_w = model["height"] // 8, model["width"] // 8
    # A panel row attends to 2N keys instead of N: Q K^T and A V each cost 2 N^2 C more per layer.
    extra = sum(4 * ((latent_h >> i) * (latent_w >> i)) ** 2 * config["block_out_channels"][i] * layers
                for i, layers in _self_attention_layers(config))
    assert flops["shared_row_extra_flops"] == extra
    x = flops["shared_row_extra_fraction"]
    assert x == pytest.approx(extra / flops["per_image_flops"])
    for entry in result["ratios"]:
        n = entry["panels"]
        assert entry["limit"] == pytest.approx(1 + x * n / (n + 1))
    # The real SDXL UNet at 1024x1024, as docs/performance.md states it.
    sdxl = result["sdxl_flops"]
    assert sdxl["per_image_tflops"] == pytest.approx(6.76, abs=0.01)
    assert sdxl["shared_row_extra_fraction"] == pytest.approx(0.111, abs=0.001)
    # Scaling channels and tokens by the same factor keeps attention's share of the FLOPs.
    assert flops["attention_share"] == pytest.approx(sdxl["attention_share"], rel=0.1)


def test_scaled_model_keeps_sdxl_structure():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_sets
    finally:
        sys.path.remove(str(SCRIPT.parent))
    published = json.loads((SCRIPT.parent / "sdxl_configs" / "unet" / "config.json").read_text())
    full = bench_sets.bench_model(1)
    assert (full.height, full.width) == (1024, 1024)
    for key, value in published.items():
        if not key.startswith("_"):
            assert full.unet_config[key] == value, key
    scaled = bench_sets.bench_model(10)
    assert scaled.unet_config["block_out_channels"] == [32, 64, 128]
    assert scaled.unet_config["attention_head_dim"] == [1, 1, 2]  # heads of 64 channels, as SDXL
    for key in ("down_block_types", "up_block_types", "transformer_layers_per_block",
                "layers_per_block", "addition_embed_type", "mid_block_type"):
        assert scaled.unet_config[key] == published[key], key
    # tokens per attention level divided by about the channel factor
    ratio = (1024 * 1024) / (scaled.height * scaled.width)
    assert 9 < ratio < 11
    with pytest.raises(ValueError, match="head-dim"):
        bench_sets.bench_model(4, head_dim=64)  # 160 channels are not a whole number of 64-heads


def test_the_references_benchmark_runs_and_its_flop_model_is_the_closed_form(tmp_path):
    out = tmp_path / "refs.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_references.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    rows, n, x = result["rows"], result["panels"], result["shared_row_extra_fraction"]
    assert [r["references"] for r in rows] == [1, 2] and 0 < x < 1
    for row in rows:
        r = row["references"]
        assert row["flop_model_ratio"] == pytest.approx((r + n * (1 + x * r)) / (1 + n * (1 + x)))
        assert row["step_cpu_s_median"] == pytest.approx(statistics.median(row["step_cpu_s_runs"]))
        assert row["peak_memory_mib"] > 0
    assert rows[0]["time_ratio_vs_first"] == 1.0 and rows[1]["memory_over_first_mib"] == pytest.approx(
        rows[1]["peak_memory_mib"] - rows[0]["peak_memory_mib"])


@pytest.fixture(scope="module")
def characters_run(tmp_path_factory):
    """``--characters 0,2`` on the quick model: the engine with no and two characters."""
    out = tmp_path_factory.mktemp("bench") / "chars.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--characters", "0,2", "--settings", "prompts",
                           "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8")), out.with_suffix(".md").read_text(encoding="utf-8")


def test_the_characters_option_runs_each_count_with_its_anchors_and_masks(characters_run):
    result, markdown = characters_run
    assert result["mode"] == "characters" and result["steps_per_run"] >= 2  # anchors shared from step 1
    got = {(c["panels"], c["micro_batch"], c["characters"]) for c in result["cases"]}
    assert got == {(1, 1, 0), (1, 1, 2), (2, 1, 0), (2, 1, 2), (2, 2, 0), (2, 2, 2)}
    for case in result["cases"]:
        n, m, c = case["panels"], case["micro_batch"], case["characters"]
        anchors = 2 * c  # anchors_per_character's default
        assert case["anchors"] == anchors
        # the references' call, the anchors' own call when there are any, then the panels m at a time
        assert case["unet_calls_per_step"] == 1 + (1 if c else 0) + math.ceil(n / m)
        assert case["unet_rows_per_step"] == 2 * (n + 1 + anchors)
        # every panel names every character, and each one's mask was found (not an empty grid)
        assert len(case["mask_coverage"]) == result["rounds"] * n * c
        assert all(0 < share <= 1 for share in case["mask_coverage"])
        runs = case["step_runs"]["cpu"]
        assert len(runs) == result["rounds"] and all(len(r) == result["steps_per_run"] for r in runs)
        sharing = [statistics.median(r[1:]) for r in runs]
        assert case["step_s_median"] == pytest.approx(statistics.median(sharing))
        assert case["first_step_s_median"] == pytest.approx(statistics.median(r[0] for r in runs))
        assert case["per_image_s_median"] == pytest.approx(case["step_s_median"] / (n + 1))
        base = next(b for b in result["cases"] if (b["panels"], b["micro_batch"], b["characters"]) == (n, m, 0))
        paired = [t / b for t, b in zip(sharing, [statistics.median(r[1:]) for r in base["step_runs"]["cpu"]])]
        assert case["ratio_vs_no_characters"] == pytest.approx(statistics.median(paired))
        assert case["peak_memory_over_no_characters_mib"] == pytest.approx(
            case["peak_memory_mib"] - base["peak_memory_mib"])
        assert f"| {n} | {m} | {c} | {anchors} | {case['unet_calls_per_step']} |" in markdown


def test_the_characters_option_refuses_one_step_and_unknown_counts():
    for extra in (["--steps", "1"], ["--characters", "9"], ["--floors"]):
        args = ["--characters", "0,1"] + extra if extra[0] != "--characters" else extra
        done = subprocess.run([sys.executable, str(SCRIPT)] + args, capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
        assert done.returncode == 2 and "--characters" in done.stderr.splitlines()[-1], (extra, done.stderr)
