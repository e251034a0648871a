"""The toy demo's arithmetic on a CPU: the oneDNN/MKL kernels' instruction set and the number of threads
decide the weights (the order of floating-point sums); the Makefile's PIN fixes both.

Usage: python -m tests.test_determinism [--steps 20] [--kinds 3d 2d] [--facts]   (from the repository root:
       one line `<net> <tensors_sha256 of the weights>` per net after a few Adam steps on seeded inputs)
       pytest tests/test_determinism.py   (that script as subprocesses, with and without the pin)

Measured on a 2-core AMD EPYC (AVX-512), torch 2.14.1 (oneDNN 3.12, MKL 2024.2), 20 steps: OMP_NUM_THREADS
1 vs 2 and ONEDNN_MAX_CPU_ISA=AVX2 each change both nets' digests; ATEN_CPU_CAPABILITY=avx2 and
MKL_ENABLE_INSTRUCTIONS=AVX2 change nothing here (MKL_CBWR=AVX2 does: on an AMD CPU MKL takes it as AUTO,
its reproducible mode, other sums than its default). torch takes MKL_NUM_THREADS over OMP_NUM_THREADS, caps
either at the CPU count (torch.set_num_threads is not capped) and keeps the count asked for under
`taskset -c 0`, where an unset count becomes 1.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import engine
import resnet_3d
import utils
from tools import demo_results

REPO = Path(__file__).resolve().parents[1]
MODELS = ("single_frame", "3d", "fused")


def train_digest(kind: str, steps: int, seed: int = 0, batch: int = 8, frames: int = 16, size: int = 32) -> str:
    """tensors_sha256 of the toy demo's net (3d: Hara's resnet10 with one layer4 block; 2d: torchvision
    resnet18), 6 classes, from scratch, after `steps` Adam steps on seeded uint8 inputs at size x size,
    through engine.FineTune as the training scripts use it."""
    import torchvision
    torch.manual_seed(seed)
    if kind == "3d":
        model, shape, lr = resnet_3d.build("resnet10", num_classes=6, layer4_blocks=1), (batch, frames), 5e-4
    else:
        model, shape, lr = torchvision.models.resnet18(num_classes=6), (batch,), 1e-4
    net = engine.FineTune(model, "all", *engine.input_stats("3d" if kind == "3d" else "single_frame"))
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        x = torch.randint(0, 256, (*shape, size, size, 3), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 6, (batch,), generator=g)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return utils.tensors_sha256(model.state_dict())


def parse_args(argv=None):
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=utils.positive_int, default=20, help="Adam steps per net")
    p.add_argument("--kinds", nargs="+", choices=["3d", "2d"], default=["3d", "2d"], help="the nets to train")
    p.add_argument("--batch", type=utils.positive_int, default=8, help="inputs per step")
    p.add_argument("--frames", type=utils.positive_int, default=16, help="frames per 3D clip")
    p.add_argument("--threads", type=utils.positive_int, help="torch.set_num_threads first (default: leave it)")
    p.add_argument("--facts", action="store_true", help="also print the threads and ATen's CPU capability")
    return p.parse_args(argv)


def main(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.facts:
        print(f"threads {torch.get_num_threads()} capability {torch.backends.cpu.get_cpu_capability()}", flush=True)
    for kind in args.kinds:
        print(kind, train_digest(kind, args.steps, batch=args.batch, frames=args.frames), flush=True)


# ----------------------------------------------------------------------------- the tests

# One Adam step of each net on 4 inputs (3D: 4 frames): enough for the kernels and threads to show.
SMALL = ["--steps", "1", "--batch", "4", "--frames", "4"]
# Settings a user may have that change the arithmetic: cleared before every run, then set as a case says.
ARITHMETIC = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
              "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DYNAMIC")
# OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning (the same floats; about 3x quicker on
# a busy 2-core machine); ONEDNN_VERBOSE=1 prints the instruction set oneDNN's kernels use.
QUIET = {"OMP_WAIT_POLICY": "PASSIVE", "ONEDNN_VERBOSE": "1", "PYTHONUNBUFFERED": "1"}


def measure(cases: dict) -> dict:
    """{name: (user_env, pin, prefix)} -> {name: {"3d", "2d": digest, "threads", "capability", "onednn_isa"}}:
    this script run as `[prefix] [the Makefile's PIN when pin] python -m tests.test_determinism`, the way
    make demo runs its scripts, under the environment `user_env`; the cases run side by side (each has its
    thread count set, so sharing the cores changes their speed only)."""
    pin_words = shlex.split(demo_results.makefile_pin())
    procs = {}
    for name, (user_env, pin, prefix) in cases.items():
        env = {k: v for k, v in os.environ.items() if k not in ARITHMETIC}
        env.update({**QUIET, **user_env})
        cmd = [*prefix, *(pin_words if pin else []), sys.executable, "-m", "tests.test_determinism", "--facts", *SMALL]
        procs[name] = cmd, subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True)
    results = {}
    for name, (cmd, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {shlex.join(cmd)} failed:\n{stderr[-3000:]}"
        out = results[name] = {}
        for line in stdout.splitlines():
            if m := re.fullmatch(r"threads (\d+) capability (\S+)", line):
                out["threads"], out["capability"] = int(m.group(1)), m.group(2)
            elif m := re.fullmatch(r"(3d|2d) ([0-9a-f]{64})", line):
                out[m.group(1)] = m.group(2)
            elif m := re.search(r"onednn_verbose.*,info,cpu,isa:(.*)", line):
                out["onednn_isa"] = m.group(1).strip()
    return results


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


@pytest.mark.slow
def test_the_pin_gives_the_same_weights_whatever_the_threads_asked_for():
    pin = demo_results.pin_settings(demo_results.makefile_pin())
    threads = int(pin.get("MKL_NUM_THREADS") or pin.get("OMP_NUM_THREADS") or 0)  # torch takes MKL's first
    assert threads, f"the Makefile's PIN sets no thread count: {pin}"
    if threads > (os.cpu_count() or 1):
        pytest.skip(f"{os.cpu_count()} CPU(s): torch caps OMP_NUM_THREADS={threads} at the CPU count, so the "
                    f"pin's thread count cannot run here")
    # the user's thread settings, which the pin overrides; ATen's AVX2 kernels (an AVX2 machine's) must
    # give ATen's default ones' floats, or the pin needs ATEN_CPU_CAPABILITY too
    cases = {"OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2": ({"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2"}, True, ()),
             "OMP_NUM_THREADS=4 MKL_NUM_THREADS=1": ({"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}, True, ())}
    if shutil.which("taskset"):
        cases["taskset -c 0"] = ({}, True, ("taskset", "-c", "0"))
    runs = measure(cases)
    digests = {name: (r.get("3d"), r.get("2d")) for name, r in runs.items()}
    assert len(set(digests.values())) == 1, f"the pinned weights depend on the user's settings: {digests}"
    assert {r.get("threads") for r in runs.values()} == {threads}, runs
    if "avx2" in cpu_flags():  # oneDNN on its AVX2 kernels, as on an AVX2-only machine
        assert {r.get("onednn_isa") for r in runs.values()} == {"Intel AVX2"}, runs


@pytest.mark.slow
def test_without_the_pin_the_thread_count_changes_the_weights():
    runs = measure({"1": ({"OMP_NUM_THREADS": "1"}, False, ()), "2": ({"OMP_NUM_THREADS": "2"}, False, ())})
    one, two = runs["1"], runs["2"]
    if two.get("threads", 1) < 2:
        pytest.skip("torch runs 1 thread here whatever OMP_NUM_THREADS says (1 CPU): no second thread count "
                    "to compare")
    assert one["3d"] != two["3d"] and one["2d"] != two["2d"], (one, two)


def test_markdown_table_renders_the_committed_figures():
    summary = json.loads((REPO / "docs" / "results" / "demo.json").read_text())
    lines = demo_results.markdown_table(summary).splitlines()
    assert lines[0] == "| seed | single frame | 3D | fused |"
    table = lines[:2 + len(summary["seeds"])]
    assert summary["seeds"] and all(line.startswith("|") for line in table)
    for line, row in zip(table[2:], summary["seeds"]):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert cells == [str(row["seed"])] + ["%.2f%%" % (100 * row["models"][m]["top1"]) for m in MODELS], line
    # the pin's cost, from the quickest pinned and unpinned runs recorded
    runs = summary["timing"]["runs"]
    ratio = min(r["seconds"] for r in runs if r["pin"]) / min(r["seconds"] for r in runs if not r["pin"])
    assert f"The pin costs {100 * (ratio - 1):.0f}% of wall time" in lines[-1]


if __name__ == "__main__":
    main(parse_args())
