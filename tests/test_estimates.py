"""The figures the README computes rather than measures on a GPU: benchmarks/memory_estimate.py (the
peak of live tensor bytes, checked by hand on small cases, and the 3D test phase against the
tensors that must coexist in it) and benchmarks/prepare_cost.py (frames and bytes against the files).

Usage: pytest -q tests/test_estimates.py
"""
import json
import os

import pytest
import torch

import resnet_3d
import video_io
from benchmarks import memory_estimate, prepare_cost


def test_peak_counts_live_tensors_and_frees():
    """a (4,000 B) and b = 2a (4,000 B) coexist, then a goes and c = b + 1 takes its place: 8,000 B;
    a view shares its storage and adds nothing."""
    with memory_estimate.PeakMemory() as mem:
        a = torch.empty(1000, device="meta")
        b = a * 2
        del a
        c = b + 1
        v = c.view(10, 100)
        assert mem.live == 8000
    assert mem.peak == 8000 and v.shape == (10, 100)


def test_base_bytes_are_counted_from_the_start():
    with memory_estimate.PeakMemory(base=500) as mem:
        x = torch.empty(10, device="meta")
        y = x + 1
    assert mem.peak == 500 + 40 + 40 and y.numel() == 10


def test_3d_test_phase_holds_at_least_its_weights_and_first_maps():
    """Batch 2 of 16x64x64 clips through the 3D ResNet-50 with one layer4 block, by hand: the
    weights and buffers (fp32), and conv1's output (2, 64, 16, 32, 32) fp32 together with bn1's of
    the same size, which exist at once; the estimate must hold at least that and at most twice as
    much again (the normalised input and a few maps besides)."""
    model = resnet_3d.build("resnet50", num_classes=101, layer4_blocks=1)
    weights = sum(t.numel() * 4 for t in [*model.parameters(), *model.buffers()])
    conv1 = 2 * 64 * 16 * 32 * 32 * 4
    peak = memory_estimate.peak_bytes("3d", batch=2, frames=16, training=False, size=64)
    assert weights + 2 * conv1 <= peak <= 2 * (weights + 2 * conv1)


def test_markdown_table_renders_the_file(tmp_path):
    results = {"phases": [{"phase": "train 3D", "batch": 32, "layer4_blocks": 1, "peak_gib": 3.47}]}
    assert "| train 3D | 32 | 3.47 |" in memory_estimate.markdown_table(json.loads(json.dumps(results)))


def test_prepare_cost_counts_the_clips_frames_and_the_stores_bytes(shared_data, tmp_path):
    """One real clip (Archery, 131 frames) converted twice: 262 frames, and bytes per frame equal to
    the store file's size over its frames, computed here from a conversion of our own."""
    clip = shared_data / "videos" / "v_Archery_g01_c01.avi"
    (tmp_path / "v").mkdir()
    os.symlink(clip, tmp_path / "v" / clip.name)
    m = prepare_cost.measure([str(tmp_path / "v" / clip.name)], rounds=2)
    assert m["frames"] == 2 * 131 and m["cpu_ms_per_frame"] > 0
    dst = str(tmp_path / "one.hdf5")
    video_io.convert((str(clip), "avi", dst, "jpeg", video_io.JPEG_QUALITY))
    assert m["store_bytes_per_frame"] == pytest.approx(os.path.getsize(dst) / 131)
    assert m["raw_bytes_per_frame"] == 240 * 320 * 3
    line = prepare_cost.markdown_table({"videos": 1, "measured": m})
    n = prepare_cost.UCF101_VIDEOS * prepare_cost.UCF101_MEAN_FRAMES
    assert f"{m['store_bytes_per_frame'] * n / 2**30:.0f} GiB" in line
