"""benchmarks/gpu_check: the script's flags parse, the Kinetics stand-in has the real file's layout,
and the whole check runs in miniature on a CPU with every phase measured and scaled right.
Usage: pytest -q tests/test_gpu_check.py"""
import importlib
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import torch

import resnet_3d
from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]
KEYS = ROOT.parent / "shared" / "data" / "hara_resnet50_kinetics_keys.json"
# UCF-101 split 1, typed here again on purpose: the test's own arithmetic, not the module's
TRAIN_VIDEOS, TEST_VIDEOS, ALL_VIDEOS, EPOCHS = 9537, 3783, 13320, 10
PHASES = ["prepare (compact store)", "train 2D", "train 3D", "test 2D", "test 3D", "combine",
          "report"]


@pytest.mark.parametrize("smoke", [True, False])
def test_every_script_accepts_its_flags(smoke, tmp_path):
    """The flags gpu_check passes (all in script_argv) parse with each script's own parse_args."""
    weights = {"2d": str(tmp_path / "w2d.pth"), "3d": str(tmp_path / "w3d.pth")}
    for phase, script in gpu_check.SCRIPTS.items():
        argv = gpu_check.script_argv(phase, str(tmp_path / "data"), str(tmp_path / "run"),
                                     weights, gpu_check.settings(smoke), None)
        if script.endswith(".py"):  # run as a file: report/ is no package
            spec = importlib.util.spec_from_file_location(Path(script).stem, ROOT / script)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(script)
        args = module.parse_args(argv)
        outs = [v for k, v in vars(args).items() if k == "out"]
        assert all(str(tmp_path / "run") in o for o in outs), (phase, outs)


def test_kinetics_stand_in_has_the_real_layout(tmp_path):
    """The stand-in's keys and shapes are the real resnet-50-kinetics.pth's (as listed beside the
    repo), and the 3D model loads it strictly, as it loads the real file."""
    if not KEYS.is_file():
        pytest.skip(f"{KEYS} not found (the real checkpoint's key layout)")
    real = json.loads(KEYS.read_text())["state_dict"]
    ckpt = gpu_check.kinetics_stand_in("resnet50")
    assert {k: list(v.shape) for k, v in ckpt["state_dict"].items()} == real
    path = tmp_path / "resnet-50-kinetics.pth"
    torch.save(ckpt, path)
    model = resnet_3d.load_kinetics(str(path), arch="resnet50", num_classes=101, layer4_blocks=1)
    assert model.fc.out_features == 101


def test_scaled_is_fixed_once_plus_parts_per_video():
    phase = dict(fixed_s=3.0, parts=[dict(s=10.0, videos=100, ucf_videos=1000),
                                     dict(s=2.0, videos=4, ucf_videos=8)])
    assert gpu_check.scaled(phase) == pytest.approx(3.0 + 100.0 + 4.0)


@pytest.mark.slow
def test_cpu_smoke(tmp_path):
    """bash benchmarks/gpu_check.sh --cpu-smoke: every phase with positive figures, each scaled to
    UCF-101 per video (checked here by its own arithmetic), the levers measured or skipped with a
    reason, and the tables printed."""
    out = tmp_path / "smoke.json"
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-smoke", "--work",
                          str(tmp_path / "work"), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert [p["name"] for p in r["phases"]] == PHASES
    n = r["meta"]["subset"]
    epochs = r["meta"]["settings"]["epochs"]
    assert n["train"] > 0 and n["test"] > 0 and n["all"] >= n["train"] + n["test"]
    for p in r["phases"]:
        assert p["wall_s"] > 0 and p["scaled_s"] > 0, p
        assert all(q["s"] > 0 and q["videos"] > 0 for q in p["parts"]), p
        assert p["fixed_s"] >= 0 and p["fixed_s"] + sum(q["s"] for q in p["parts"]) <= \
            p["wall_s"] * (1 + 1e-9), p
        if p["name"].startswith(("train", "test")):
            assert p["items_per_s"] > 0 and 0 <= p["data_wait_share"] <= 1, p
    by = {p["name"]: p for p in r["phases"]}
    for name in ("train 2D", "train 3D"):
        p = by[name]
        train, test = p["parts"]
        assert (train["videos"], test["videos"]) == (n["train"] * epochs, n["test"] * epochs)
        assert p["scaled_s"] == pytest.approx(
            p["fixed_s"] + train["s"] / (n["train"] * epochs) * TRAIN_VIDEOS * EPOCHS
            + test["s"] / (n["test"] * epochs) * TEST_VIDEOS * EPOCHS)
    for name in ("test 2D", "test 3D", "combine"):
        p = by[name]
        assert p["scaled_s"] == pytest.approx(p["fixed_s"] + p["parts"][0]["s"] / n["test"]
                                              * TEST_VIDEOS)
    p = by["prepare (compact store)"]
    assert p["scaled_s"] == pytest.approx(p["wall_s"] / n["all"] * ALL_VIDEOS)
    assert by["report"]["scaled_s"] == pytest.approx(by["report"]["wall_s"])
    assert r["total"]["scaled_s"] == pytest.approx(sum(p["scaled_s"] for p in r["phases"]))
    assert r["total"]["measured_s"] == pytest.approx(sum(p["wall_s"] for p in r["phases"]))
    levers = {x["name"]: x for x in r["levers"]}
    assert len(levers) == len(gpu_check.lever_plan(False, r["meta"]["settings"]["lever_batch"]))
    base = r["levers"][0]
    assert base["s_per_step"] > 0 and base["gflop_per_step"] > 0 and base["x_assignment"] == 1
    assert levers["CUDA graph of the whole step"]["skipped"] == "CUDA only"
    measured = [x for x in r["levers"] if "s_per_step" in x]
    assert len(measured) >= 5 and all(x["clips_per_s"] > 0 for x in measured)
    assert all("skipped" in x or "s_per_step" in x for x in r["levers"])
    assert "| **whole assignment** |" in run.stdout and "| lever |" in run.stdout
