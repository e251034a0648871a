"""`make demo` and the SLURM job scripts (jobs/), run for real on a reduced toy UCF-101 on the CPU.

- `make demo SPLITS="1 2"`: each split's whole pipeline into <run>/split<N>, then tools.splits_summary
  and the report; splits_summary.json's per-split top-1 is checked against each split's results.json,
  its mean and std recomputed with numpy, and each split's models against that split's lists.
- jobs/slurm_1gpu.sh (REQUIRE_GPU=0) resubmitted onto split 1's run: every step resumes (nothing is
  trained or scored again) and results.json is written again, the same.
- jobs/slurm_multi_gpu.sh with NPROC=2: training under torchrun (gloo), 2 processes, then the rest.
- Bad input (no DATA_ROOT, a missing Kinetics file, no GPU where one is required): one line, exit 2,
  before anything starts (no run folder).

The toy: 4 classes x 4 groups x 2 clips of 20 frames at 80x60, 16x16 inputs, one epoch per model.
Usage: .venv/bin/python -m pytest -q tests/test_jobs.py    (a few minutes: every step is a process)
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TOY_FLAGS = "--classes 4 --groups 4 --clips 2 --frames 20 --width 80 --height 60"
REDUCED = {"SIZE": "16", "EPOCHS_SF": "1", "EPOCHS_3D": "1"}
MODELS = ("single_frame", "3d", "fused")


def clean_env(**extra):
    """The environment of a top-level make (under `make test` the outer make's MAKELEVEL/MAKEFLAGS would
    make it a sub-make), without a SLURM submit folder, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "SLURM_SUBMIT_DIR")}
    return {**env, "OMP_WAIT_POLICY": "PASSIVE", **extra}


def list_names(path):
    return sorted(line.split()[0].split("/")[1][:-4] for line in Path(path).read_text().splitlines() if line.strip())


@pytest.fixture(scope="module")
def demo(tmp_path_factory, no_discussion_left):
    """make demo SPLITS="1 2" on the reduced toy: {"toy", "run", "report", "stdout"}."""
    tmp = tmp_path_factory.mktemp("demo")
    toy, run, report = tmp / "toy", tmp / "runs", tmp / "report.pdf"
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed", "demo", "SPLITS=1 2", f"PY={sys.executable}",
           f"ROOT={toy}", f"RUN={run}", f"REPORT={report}", f"TOY_FLAGS={TOY_FLAGS}",
           *(f"{k}={v}" for k, v in REDUCED.items())]
    r = subprocess.run(cmd, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {"toy": toy, "run": run, "report": report, "stdout": r.stdout}


def test_make_demo_runs_each_split_and_summarises_them(demo):
    toy, run = demo["toy"], demo["run"]
    summary = json.loads((run / "splits_summary.json").read_text())
    assert summary["splits"] == [1, 2] and summary["std_ddof"] == 1
    results = {s: json.loads((run / f"split{s}" / "combined" / "results.json").read_text()) for s in (1, 2)}
    for m in MODELS:
        top1 = np.array([results[s]["models"][m]["top1"] for s in (1, 2)])
        r = summary["models"][m]
        assert r["per_split"] == {"1": top1[0], "2": top1[1]}, m
        assert r["top1_mean"] == pytest.approx(top1.mean()) and r["top1_std"] == pytest.approx(np.std(top1, ddof=1)), m
    for s in (1, 2):
        # each split's models were trained on its train list less one held-out group, tested on its test list
        for kind in ("single_frame", "3d"):
            ckpt = torch.load(run / f"split{s}" / kind / "checkpoint.pt", weights_only=True)
            assert (ckpt["split"], ckpt["val_groups"], ckpt["epoch"], ckpt["size"]) == (s, 1, 1, 16), (s, kind)
            with h5py.File(run / f"split{s}" / f"{kind}_test" / "predictions.h5", "r") as h:
                assert sorted(h["videos"].asstr()[()]) == list_names(toy / "ucfTrainTestlist" / f"testlist0{s}.txt")
                assert h.attrs["split"] == s
        assert results[s]["fusion"]["chosen_on"] == "validation" and results[s]["n_videos"] == 8
        assert (run / f"split{s}" / "report.pdf").read_bytes()[:5] == b"%PDF-"
        assert summary["fusion_weight"][str(s)] == results[s]["fusion"]["weight"]
    assert demo["report"].read_bytes()[:5] == b"%PDF-"
    assert "video-level top-1 over splits 1, 2:" in demo["stdout"]
    # the report is split 1's, with the table over both splits (its Markdown twin beside the PDF)
    md = demo["report"].with_suffix(".md").read_text()
    assert "Test split 1," in md and "| Model | Split 1 | Split 2 | Mean | Std (points) |" in md
    pct = lambda x: f"{100 * x:.2f}%"
    for m in MODELS:
        top1 = np.array([results[s]["models"][m]["top1"] for s in (1, 2)])
        row = f"| {pct(top1[0])} | {pct(top1[1])} | {pct(top1.mean())} | {100 * np.std(top1, ddof=1):.2f} |"
        assert row in md, (m, row)


def job(script, tmp_path, make_args, **env):
    """bash jobs/<script> with MAKE_ARGS (words) and `env`; returns the CompletedProcess."""
    e = clean_env(PY=sys.executable, TOY_FLAGS=TOY_FLAGS, MAKE_ARGS=" ".join(make_args), **env)
    return subprocess.run(["bash", f"jobs/{script}"], cwd=REPO, env=e, capture_output=True, text=True, timeout=1200)


def test_one_gpu_job_resubmitted_resumes_every_step(demo, tmp_path, no_discussion_left):
    """The 1-GPU job on CPU (REQUIRE_GPU=0) onto split 1's finished run, its results.json gone (as if the
    job had been stopped just before the fusion): nothing is trained or scored again, results.json is
    written again with the same figures, and the job ends with status 0."""
    run = demo["run"] / "split1"
    before = json.loads((run / "combined" / "results.json").read_text())
    ckpts = {k: (run / k / "checkpoint.pt").read_bytes() for k in ("single_frame", "3d")}
    os.remove(run / "combined" / "results.json")
    make_args = ["-o", ".venv/.installed", f"PY={sys.executable}", f"ROOT={demo['toy']}", f"RUN={run}",
                 f"REPORT={tmp_path / 'report.pdf'}", "VAL_GROUPS=1", *(f"{k}={v}" for k, v in REDUCED.items())]
    r = job("slurm_1gpu.sh", tmp_path, make_args, REQUIRE_GPU="0", DATA_ROOT="data/toy")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for k in ("single_frame", "3d"):
        assert f"resumed from {run / k / 'checkpoint.pt'} after epoch 1" in r.stdout
        assert (run / k / "checkpoint.pt").read_bytes() == ckpts[k]  # not trained again
    assert r.stdout.count("8 test videos of split 1: 8 already scored") == 2  # test lists, both models
    assert r.stdout.count("validation videos") >= 1 and "train loss" not in r.stdout
    after = json.loads((run / "combined" / "results.json").read_text())
    assert {m: after["models"][m]["top1"] for m in MODELS} == {m: before["models"][m]["top1"] for m in MODELS}
    assert after["fusion"] == before["fusion"] and (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-"


def test_multi_gpu_job_trains_under_torchrun(demo, tmp_path, no_discussion_left):
    """The several-GPU job with NPROC=2 on CPU: both models trained by 2 processes (gloo), one
    checkpoint each, then tested and fused; results.json written."""
    run = tmp_path / "runs"
    make_args = ["-o", ".venv/.installed", f"PY={sys.executable}", f"ROOT={demo['toy']}", f"RUN={run}",
                 f"REPORT={tmp_path / 'report.pdf'}", *(f"{k}={v}" for k, v in REDUCED.items())]
    r = job("slurm_multi_gpu.sh", tmp_path, make_args, REQUIRE_GPU="0", DATA_ROOT="data/toy", NPROC="2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "torch.distributed.run --standalone --nproc_per_node 2 train_single_frame.py" in r.stdout
    assert r.stdout.count(", 2 processes") == 2  # each training script's header, printed once (rank 0)
    for k in ("single_frame", "3d"):
        ckpt = torch.load(run / k / "checkpoint.pt", weights_only=True)
        assert ckpt["processes"] == 2 and ckpt["epoch"] == 1
        assert len((run / k / "log.csv").read_text().splitlines()) == 2  # header and one epoch, written once
    results = json.loads((run / "combined" / "results.json").read_text())
    assert results["n_videos"] == 8 and set(results["models"]) == set(MODELS)
    assert results["attrs"]["single_frame"]["processes"] == 2


@pytest.mark.parametrize("script", ["slurm_1gpu.sh", "slurm_multi_gpu.sh"])
@pytest.mark.parametrize("case", ["no_data_root", "missing_kinetics", "no_gpu"])
def test_job_that_cannot_run_stops_in_one_line(tmp_path, script, case):
    run = tmp_path / "runs"
    env = {"REQUIRE_GPU": "0"}
    if case == "missing_kinetics":  # a real-looking data root, but no Hara checkpoint where KINETICS says
        root = tmp_path / "ucf101"
        (root / "ucfTrainTestlist").mkdir(parents=True)
        (root / "UCF-101").mkdir()
        env.update(DATA_ROOT=str(root), KINETICS=str(tmp_path / "resnet-50-kinetics.pth"))
        says = f"KINETICS={tmp_path / 'resnet-50-kinetics.pth'}: no such file"
    elif case == "no_gpu":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        env.update(DATA_ROOT="data/toy", REQUIRE_GPU="1")
        says = "PyTorch sees no GPU on"
    else:
        says = "set DATA_ROOT to the folder holding ucfTrainTestlist/"
    r = job(script, tmp_path, [f"RUN={run}", f"ROOT={tmp_path / 'toy'}"], **env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert lines[0].startswith(f"{script}: {says}"), lines[0]
    assert not run.exists() and not (tmp_path / "toy").exists()  # nothing started
