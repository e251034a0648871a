"""benchmark.py made tiny on CPU: every section is filled and every figure is a positive number.
No timing assertions (the machine is shared). Usage: pytest -q tests/test_benchmark.py"""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import video_io
from benchmarks import benchmark, measure
from tools import render_docs

ROOT = Path(__file__).resolve().parents[1]


def numbers(x):
    """Every int/float inside a JSON-like structure (booleans excluded)."""
    if isinstance(x, dict):
        return [n for v in x.values() for n in numbers(v)]
    if isinstance(x, list):
        return [n for v in x for n in numbers(v)]
    return [x] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


def torchcodec_loads():
    try:
        import torchcodec.decoders  # noqa: F401
        return True
    except (ImportError, OSError, RuntimeError):
        return False


@pytest.mark.slow
def test_benchmark_tiny(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = benchmark.parse_args(["--quick", "--device", "cpu", "--workers", "2", "--seconds", "0.01",
                                 "--rounds", "2", "--arch-single-frame", "resnet18", "--arch-3d", "resnet10",
                                 "--size", "32", "--real-videos", str(tmp_path / "no_videos"), "--out", str(out)])
    R = benchmark.main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(R))  # the file holds the returned results
    assert R["tool"] == "benchmark"
    assert "toy videos only" in " ".join(R["notes"]) and not R["skipped"]
    assert {(r["set"], r["format"]) for r in R["bytes"]} == {("toy", f) for f in ("jpeg", "hdf5", "avi")}
    # every format x kind at 1 worker; the compact store also with N=2
    assert {(r["format"], r["kind"], r["workers"]) for r in R["loaders"]} == \
        {(f, k, 1) for f in ("jpeg", "hdf5", "avi") for k in ("frame", "clip", "video")} | \
        {("jpeg", k, 2) for k in ("frame", "clip", "video")}
    peers = {"pyav, seek", "pyav, from the start"} | ({"torchcodec"} if torchcodec_loads() else set())
    assert ("torchcodec not measured" in " ".join(R["notes"])) == ("torchcodec" not in peers)
    assert {(r["format"], r["kind"]) for r in R["one_core"]} == {("avi", "seek"), ("avi", "decode all")} | \
        {(f, k) for f in ("jpeg", "hdf5", "avi") for k in ("loadFrame", "loadSequence", "uint8 clip, cold")} | \
        {(f, k) for f in {"jpeg", "hdf5", "avi", measure.UNCHECKED} | peers for k in ("uint8 clip", "uint8 frame")} | \
        {("jpeg", k) for k in ("16 JPEGs, cv2.imdecode", "16 JPEGs, simplejpeg", "16 JPEGs, simplejpeg fast")}
    assert all(len(r["rounds"]) == 2 for r in R["one_core"])
    assert [r["set"] for r in R["jpeg_decoder"]] == ["toy"]
    # the frame-exactness check: every toy AVI (MJPG, every frame a keyframe) by every decoder, all exact
    decoders = {"avi", "pyav, seek by pts everywhere"} | peers
    assert {r["format"] for r in R["exactness"]} == decoders
    assert len(R["exactness"]) == 12 * len(decoders)  # the 12 toy videos
    assert all(r["clips"] == 4 and r["exact"] == r["clips"] for r in R["exactness"]), R["exactness"]
    # against the best frame-exact peer: a row per format and kind, ratios from the rounds
    comp = measure.peer_comparison(R)
    assert {(r["format"], r["kind"]) for r in comp} == {(f, k) for f in {"jpeg", "hdf5", "avi"} | peers
                                                        for k in ("uint8 clip", "uint8 frame")}
    assert all(r["best_peer"] in peers and r["rounds"] == 2 and 0 <= r["wins"] <= 2 for r in comp)
    # the store's source check against the same read without it, from the rounds by hand
    checks = {r["kind"]: r for r in measure.source_check_cost(R)}
    assert set(checks) == {"uint8 clip", "uint8 frame"}
    for kind, r in checks.items():
        rounds = {f: next(x["rounds"] for x in R["one_core"] if (x["format"], x["kind"]) == (f, kind))
                  for f in ("jpeg", measure.UNCHECKED)}
        ratios = sorted(a / b for a, b in zip(rounds["jpeg"], rounds[measure.UNCHECKED]))
        assert r["cost"] == pytest.approx(1 - (ratios[0] + ratios[1]) / 2)  # the median of two
    # training fed by the real loader (decoded in the workers), next to the model alone
    assert {r["kind"] for r in R["pipeline"]} == {"single_frame", "3d"}
    assert set(R["derived"]["end_to_end"]) == {"single_frame", "3d"}
    assert "gpu_decode_clips_per_s" not in R["derived"] and not R["gpu"]
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
    tables = benchmark.tables(R)
    assert list(tables) == ["run", "disk", "loaders", "one-core", "peers", "source-check", "exactness", "jpeg", "seek", "models",
                            "levers", "pipeline", "projection"]
    assert benchmark.markdown_tables(R) in printed
    assert "x best peer" in printed and "| **total**, 3D tested in windows |" in printed


def test_peer_comparison_takes_the_fastest_exact_peer():
    """The best peer is the fastest of those exact on every clip (a faster inexact one is not), the
    ratio is the median of the per-round ratios, and wins count the rounds a format beat it."""
    one = lambda f, rounds: dict(set="real", format=f, kind="uint8 clip", clips_per_s=sorted(rounds)[1],
                                 rounds=rounds)
    R = {"one_core": [one("jpeg", [12, 9, 11]), one("avi", [9, 11, 10]), one("pyav, seek", [10, 10, 10]),
                      one("fast but wrong", [50, 50, 50])],
         "exactness": [dict(set="real", format=f, video="v", clips=4, exact=e)
                       for f, e in (("avi", 4), ("pyav, seek", 4), ("fast but wrong", 3))]}
    rows = {r["format"]: r for r in measure.peer_comparison(R)}
    assert {r["best_peer"] for r in rows.values()} == {"pyav, seek"}
    assert rows["jpeg"]["ratio"] == pytest.approx(1.1) and rows["jpeg"]["wins"] == 2
    assert rows["avi"]["ratio"] == pytest.approx(1.0) and rows["avi"]["wins"] == 1
    assert rows["jpeg"]["frame_exact"] is None and rows["avi"]["frame_exact"] is True
    assert rows["fast but wrong"]["frame_exact"] is False


def test_docs_agree_with_their_results_files():
    """Every generated table in the docs is what render_docs makes of its committed JSON file."""
    assert render_docs.main(["--check"]) == 0


def test_frame_exactness_check_catches_wrong_frames(real_root):
    """The check compares with OpenCV's decode from the start, so it can fail: a reader that returns
    frame i-1 for frame i is caught on every clip; PyAV seeking by timestamp everywhere is caught on
    the packed-bitstream real clips (decoded timestamps 1, 2, 4, 3, ...) and passes on the others;
    our reader, the PyAV peer that seeks as ours does and PyAV from the start are exact on all four."""
    off_by_one = lambda p, idx: measure.reference_frames(p)[np.maximum(idx - 1, 0)]
    avis = [real_root.source[p] for p in real_root.paths]  # the AVIs themselves (no copies beside them)
    rows = measure.frame_exactness("real", avis, {"avi": lambda p, idx: video_io.read_frames(p, idx),
                                                  "pyav": measure.pyav_from_start, "seek": measure.pyav_seek,
                                                  "pts": measure.pyav_pts_frames, "off": off_by_one}, 5)
    got = {(r["format"], r["video"]): (r["exact"], r["clips"]) for r in rows}
    packed = {"v_ApplyEyeMakeup_g01_c01", "v_Shotput_g05_c02"}
    for p in real_root.paths:
        v = video_io.video_name(p)
        assert got["avi", v] == got["pyav", v] == got["seek", v] == (5, 5), (v, got)
        assert got["off", v] == (0, 5), (v, got)
        assert (got["pts", v][0] < 5) == (v in packed), (v, got)


def test_render_docs_rewrites_and_names_a_stale_table(tmp_path, capsys):
    """A block whose table disagrees with its file: --check exits 1 naming that table; a plain run
    rewrites the block, after which --check passes."""
    results = ROOT / "docs" / "results" / "benchmark-cpu.json"
    md = tmp_path / "doc.md"
    md.write_text(f"# t\n\n<!-- generated from {results} by python -m tools.render_docs: disk, seek -->\n"
                  "| stale |\n<!-- end generated -->\n\nprose after\n")
    assert render_docs.main(["--check", str(md)]) == 1
    out = capsys.readouterr().out
    assert "table disk of" in out and "table seek of" in out
    assert render_docs.main([str(md)]) == 0
    assert render_docs.main(["--check", str(md)]) == 0
    text = md.read_text()
    assert "| stale |" not in text and text.endswith("<!-- end generated -->\n\nprose after\n")
    assert benchmark.markdown_tables(json.loads(results.read_text()), ["disk", "seek"]) in text
