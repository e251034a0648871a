"""benchmark.py made tiny on CPU: every section is filled and every figure is a positive number.
No timing assertions (the machine is shared). Usage: pytest -q tests/test_benchmark.py"""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import video_io
from benchmarks import benchmark, measure

ROOT = Path(__file__).resolve().parents[1]


def numbers(x):
    """Every int/float inside a JSON-like structure (booleans excluded)."""
    if isinstance(x, dict):
        return [n for v in x.values() for n in numbers(v)]
    if isinstance(x, list):
        return [n for v in x for n in numbers(v)]
    return [x] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


@pytest.mark.slow
def test_benchmark_tiny(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = benchmark.parse_args(["--quick", "--device", "cpu", "--workers", "2", "--seconds", "0.01",
                                 "--arch-single-frame", "resnet18", "--arch-3d", "resnet10", "--size", "32",
                                 "--real-videos", str(tmp_path / "no_videos"), "--out", str(out)])
    R = benchmark.main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(R))  # the file holds the returned results
    assert "toy videos only" in " ".join(R["notes"]) and not R["skipped"]
    assert {(r["set"], r["format"]) for r in R["bytes"]} == {("toy", f) for f in ("jpeg", "hdf5", "avi")}
    # every format x kind at 1 worker; the compact store also with N=2
    assert {(r["format"], r["kind"], r["workers"]) for r in R["loaders"]} == \
        {(f, k, 1) for f in ("jpeg", "hdf5", "avi") for k in ("frame", "clip", "video")} | \
        {("jpeg", k, 2) for k in ("frame", "clip", "video")}
    peers = {"pyav"} | ({"torchcodec"} if importlib.util.find_spec("torchcodec") else set())
    timed = peers | {"pyav, frame.to_ndarray"}
    assert {(r["format"], r["kind"]) for r in R["one_core"]} == {("avi", "seek"), ("avi", "decode all")} | \
        {(f, k) for f in ("jpeg", "hdf5", "avi") for k in ("loadFrame", "loadSequence", "uint8 clip, cold")} | \
        {(f, k) for f in {"jpeg", "hdf5", "avi"} | timed for k in ("uint8 clip", "uint8 frame")} | \
        {("jpeg", k) for k in ("16 JPEGs, cv2.imdecode", "16 JPEGs, simplejpeg",
                               "16 JPEGs, simplejpeg fast")}
    assert [r["set"] for r in R["jpeg_decoder"]] == ["toy"]
    # the frame-exactness check: every toy AVI (MJPG, every frame a keyframe) by every decoder, all exact
    assert {r["format"] for r in R["exactness"]} == {"avi", "pyav, seek by pts"} | peers
    assert len(R["exactness"]) == 12 * len({"avi", "pyav, seek by pts"} | peers)  # the 12 toy videos
    assert all(r["clips"] == 4 and r["exact"] == r["clips"] for r in R["exactness"]), R["exactness"]
    # training fed by the real loader, both decode paths, next to the model alone
    assert {(r["kind"], r["decode"], r["copy_ahead"]) for r in R["pipeline"]} == \
        {(k, "worker", False) for k in ("single_frame", "3d")}
    assert set(R["derived"]["end_to_end"]) == {"single_frame", "3d"}
    assert len(R["seek"]) == 1
    assert [m["name"] for m in R["models"]] == benchmark.MODEL_KEYS
    assert all(m["dtype"] == "fp32" and m["gflop_per_step"] > 0 for m in R["models"])
    d = R["derived"]
    assert set(d["phases"]) >= {"2D training", "3D training", "2D full-video test"}
    assert d["total_min_full"] > 0 and d["total_min_windows"] > 0
    for key in ("bytes", "loaders", "one_core", "jpeg_decoder", "exactness", "seek", "models", "pipeline", "derived"):
        vals = numbers(R[key])
        assert vals and all(math.isfinite(v) and v > 0 for v in vals), (key, R[key])
    printed = capsys.readouterr().out
    assert "Projected assignment" in printed and "3D test windows" in printed and "Training fed by the loader" in printed \
        and "simplejpeg" in printed and "x PyAV" in printed and "Frame-exactness" in printed


def test_frame_exactness_check_catches_wrong_frames(real_root):
    """The check compares with OpenCV's decode from the start, so it can fail: a reader that returns
    frame i-1 for frame i is caught on every clip; PyAV seeking by timestamp is caught on
    the packed-bitstream real clips (decoded timestamps 1, 2, 4, 3, ...) and passes on the others;
    our reader and PyAV from the start are exact on all four."""
    off_by_one = lambda p, idx: measure.reference_frames(p)[np.maximum(idx - 1, 0)]
    avis = [real_root.source[p] for p in real_root.paths]  # the AVIs themselves (no copies beside them)
    rows = measure.frame_exactness("real", avis, {"avi": lambda p, idx: video_io.read_frames(p, idx),
                                                             "pyav": measure.pyav_frames,
                                                             "pts": measure.pyav_pts_frames, "off": off_by_one}, 5)
    got = {(r["format"], r["video"]): (r["exact"], r["clips"]) for r in rows}
    packed = {"v_ApplyEyeMakeup_g01_c01", "v_Shotput_g05_c02"}
    for p in real_root.paths:
        v = video_io.video_name(p)
        assert got["avi", v] == got["pyav", v] == (5, 5), (v, got)
        assert got["off", v] == (0, 5), (v, got)
        assert (got["pts", v][0] < 5) == (v in packed), (v, got)
