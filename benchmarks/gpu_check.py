"""The whole assignment end to end on one GPU, on a full-size subset of a synthetic UCF-101.

Usage: python -m benchmarks.gpu_check [--out docs/results/gpu-<gpu>.json] [--lists DIR]
       python -m benchmarks.gpu_check --cpu-smoke        (the same in miniature on a CPU, ~1 min)
       (bash benchmarks/gpu_check.sh sets up the Python it runs under first)

1. Writes a synthetic UCF-101 subset at the real frame size (make_toy_ucf101 --like-ucf101,
   320x240, UCF-101's median length of 165 frames, 10 videos per class of the official split-1
   names: --lists, else lists generated with UCF-101's statistics) and converts it to the
   compact store (prepare_data).
2. Runs the assignment's scripts at the assignment's settings on it: train_single_frame.py,
   train_3d.py, test_single_frame.py, test_3d.py (windows), combine_results.py,
   report/make_report.py. The pretrained weights are stand-ins of the real files' layout (random
   tensors): the timing does not depend on their values. Each training and test script runs in a
   child Python process through its own main(parse_args([...])), which measures inside it: the wall
   time of main, the time in the per-video loops (train_one_epoch / evaluate / the test scripts'
   loop over scoring.video_batches), the time spent waiting in the loader's __next__, and the peak
   GPU memory.
3. Scales every phase to all of UCF-101 (split 1: 9,537 training videos x 10 epochs, 3,783 test
   videos; 13,320 videos to convert): its per-video loops by videos, its fixed costs (start-up,
   checkpoints) once. The sum is the measured time of the whole assignment.
4. Times the 3D training step (FineTune around the 3D ResNet-50, batch 32, 16x224x224, bf16
   autocast) under each lever, one after the other: memory format, cuDNN autotuning, torch.compile
   of the frozen trunk, CUDA graphs, conv1's input channels padded to 4 or 8, the frozen trunk's
   batch, --layer4-blocks 1/2/3; each with its step time and share of the GPU's dense bf16 peak.

Writes the results JSON (--out) and prints the tables; tools/render_docs.py puts them in
docs/performance.md.
"""
import argparse
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import engine
import helperFunctions as hf
import resnet_3d
import scoring
from benchmarks.measure import PEAK_BF16_TFLOPS
from utils import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_LISTS = os.path.join(REPO, "..", "shared", "data", "ucfTrainTestlist")
PINNED_TORCH = "2.14.1"
# UCF-101, split 1: what each phase's per-video figures are scaled to
UCF101 = dict(videos=13320, train=9537, test=3783, epochs=10, mean_frames=186)
UCF_MEDIAN_FRAMES = 165  # make_toy_ucf101 --frames is the median; 165 gives a mean of ~186


# ----------------------------------------------------------------------------- settings

def settings(smoke: bool) -> dict:
    """The run's sizes: the assignment's on a GPU; the same scripts in miniature on a CPU."""
    if smoke:
        return dict(width=80, height=60, frames=20, max_per_class=2, arch_2d="resnet18",
                    arch_3d="resnet10", size=16, epochs=1, batch_2d=16, batch_3d=8,
                    lever_batch=2, lever_size=16, lever_arch="resnet10", lever_steps=2)
    return dict(width=320, height=240, frames=UCF_MEDIAN_FRAMES, max_per_class=10,
                arch_2d="resnet50", arch_3d="resnet50", size=None, epochs=None, batch_2d=None,
                batch_3d=None, lever_batch=32, lever_size=224, lever_arch="resnet50",
                lever_steps=10)


# ----------------------------------------------------------------------------- the scripts' flags
# The one place that names the scripts' flags. Every --out is a fresh folder, so neither --resume
# nor --overwrite is needed; --precision is left at auto (bf16 on the H200).
PRETRAINED_FLAG = {"2d": "--pretrained", "3d": "--pretrained"}


def script_argv(phase: str, root: str, run: str, weights: dict, s: dict,
                workers: int | None) -> list:
    """The command-line arguments of one phase's script (every --out a fresh folder in `run`;
    workers None: the scripts' own default)."""
    common = ["--data-root", root, "--split", "1"]
    common += ["--workers", str(workers)] if workers else []
    small_2d = [] if s["size"] is None else ["--arch", s["arch_2d"], "--train-from", "layer4",
                                             "--size", str(s["size"]),
                                             "--epochs", str(s["epochs"]),
                                             "--batch-size", str(s["batch_2d"])]
    small_3d = [] if s["size"] is None else ["--arch", s["arch_3d"], "--size", str(s["size"]),
                                             "--epochs", str(s["epochs"]),
                                             "--batch-size", str(s["batch_3d"])]
    j = lambda *p: os.path.join(run, *p)
    return {
        "train 2D": common + [PRETRAINED_FLAG["2d"], weights["2d"], "--out", j("single_frame")]
        + small_2d,
        "train 3D": common + [PRETRAINED_FLAG["3d"], weights["3d"], "--out", j("3d")] + small_3d,
        "test 2D": common + ["--checkpoint", j("single_frame", "checkpoint.pt"),
                             "--out", j("single_frame_test")],
        "test 3D": common + ["--checkpoint", j("3d", "checkpoint.pt"), "--mode", "windows",
                             "--out", j("3d_test")],
        "combine": ["--single-frame", j("single_frame_test"), "--3d", j("3d_test"),
                    "--out", j("combined")],
        "report": ["--results", j("combined"), "--pdf", j("report.pdf"),
                   "--discussion", j("discussion.md")],
    }[phase]


SCRIPTS = {"train 2D": "train_single_frame", "train 3D": "train_3d",
           "test 2D": "test_single_frame", "test 3D": "test_3d",
           "combine": "combine_results.py", "report": "report/make_report.py"}


# ----------------------------------------------------------------------------- weights

def kinetics_stand_in(arch: str = "resnet50") -> dict:
    """A stand-in of Hara et al.'s resnet-50-kinetics.pth: random tensors with the real file's
    names and shapes (resnet_3d's own keys, which a test checks against the real file's layout),
    saved as the real file is: the DataParallel `module.` prefix, no BatchNorm
    num_batches_tracked (a 2017 file), inside {'epoch', 'arch', 'state_dict', 'optimizer'}."""
    state = resnet_3d.build(arch, num_classes=400).state_dict()
    sd = OrderedDict((f"module.{k}", v) for k, v in state.items()
                     if not k.endswith("num_batches_tracked"))
    return {"epoch": 200, "arch": arch.replace("resnet", "resnet-"), "state_dict": sd,
            "optimizer": {}}


def write_weights(folder: str, s: dict) -> dict:
    """{"2d": path, "3d": path}: random ImageNet-shaped torchvision weights for the 2D model (the
    real ones are a download this machine may not reach) and the Kinetics stand-in."""
    os.makedirs(folder, exist_ok=True)
    paths = {"2d": os.path.join(folder, f"{s['arch_2d']}-imagenet-shaped.pth"),
             "3d": os.path.join(folder, f"{s['arch_3d']}-kinetics-stand-in.pth")}
    torch.save(getattr(torchvision.models, s["arch_2d"])(weights=None).state_dict(), paths["2d"])
    torch.save(kinetics_stand_in(s["arch_3d"]), paths["3d"])
    return paths


# ----------------------------------------------------------------------------- a child phase

class Clock:
    """Seconds spent in the loops that run per video, and waiting for the loader in them."""

    def __init__(self) -> None:
        self.loops, self.wait = {}, 0.0

    def loop(self, name: str, fn: Callable) -> Callable:
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.loops[name] = self.loops.get(name, 0.0) + time.perf_counter() - t
        return timed

    def loop_over(self, name: str, generator_fn: Callable[..., Iterator]
                  ) -> Callable[..., Iterator]:
        """generator_fn timed from its first item asked for to its last consumed: the whole loop
        a test script runs over it (scoring.video_batches), the loop's body included."""
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                yield from generator_fn(*a, **k)
            finally:
                self.loops[name] = self.loops.get(name, 0.0) + time.perf_counter() - t
        return timed


class TimedLoader:
    """A DataLoader whose iteration counts the time spent waiting in its __next__ (the training
    or test process idle for data: an upper bound of the GPU's wait, which may still be busy with
    the steps queued before)."""

    def __init__(self, loader: torch.utils.data.DataLoader, clock: Clock) -> None:
        self.loader, self.clock = loader, clock

    def __getattr__(self, name: str) -> object:
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict]:
        it = iter(self.loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.clock.wait += time.perf_counter() - t
            yield batch


def child(spec: dict) -> dict:
    """Run one script's main(parse_args(argv)) in this process, measuring inside it."""
    clock = Clock()
    make_loader = hf.make_loader
    hf.make_loader = lambda *a, **k: TimedLoader(make_loader(*a, **k), clock)
    engine.train_one_epoch = clock.loop("train", engine.train_one_epoch)
    engine.evaluate = clock.loop("evaluate", engine.evaluate)
    scoring.video_batches = clock.loop_over("score", scoring.video_batches)
    mod = importlib.import_module(spec["module"])
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    mod.main(mod.parse_args(spec["argv"]))
    wall = time.perf_counter() - t
    return dict(wall_s=wall, loops=clock.loops, data_wait_s=clock.wait,
                peak_gpu_gb=torch.cuda.max_memory_allocated() / 2**30 if cuda else None)


# ----------------------------------------------------------------------------- levers

class PaddedConv1(nn.Module):
    """conv1 with its 3 input channels zero-padded to `channels` (weights and input alike: the
    same output), for the tensor cores' preferred channel multiples."""

    def __init__(self, conv: nn.Conv3d, channels: int) -> None:
        super().__init__()
        self.pad = channels - conv.in_channels
        self.conv = nn.Conv3d(channels, conv.out_channels, conv.kernel_size, conv.stride,
                              conv.padding, bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :conv.in_channels] = conv.weight
        self.conv.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.pad)))


def lever_plan(cuda: bool, batch: int) -> list:
    """(name, options, why skipped or None) of every lever, the assignment's set-up first; the
    frozen trunk's batches relative to the training batch (32: 16, 64, 128)."""
    plan = [("assignment (channels_last_3d, cuDNN autotuning)", {}),
            ("contiguous memory", dict(channels_last=False)),
            ("cuDNN autotuning off", dict(benchmark=False)),
            ("conv1 input padded to 4 channels", dict(pad=4)),
            ("conv1 input padded to 8 channels", dict(pad=8)),
            (f"frozen trunk at batch {batch // 2} (2 passes per step)",
             dict(trunk_batch=batch // 2)),
            (f"frozen trunk at batch {2 * batch} (2 steps per pass)", dict(trunk_batch=2 * batch)),
            (f"frozen trunk at batch {4 * batch} (4 steps per pass)", dict(trunk_batch=4 * batch)),
            ("--layer4-blocks 2", dict(layer4_blocks=2)),
            ("--layer4-blocks 3", dict(layer4_blocks=3)),
            # the longest warm-ups last, where --budget-s cuts first
            ("CUDA graph of the whole step", dict(graph=True)),
            ("torch.compile of the frozen trunk", dict(compile_trunk=True))]
    needs_cuda = ("channels_last", "benchmark", "graph")
    return [(n, o, None if cuda or not any(k in o for k in needs_cuda)
             else "CUDA only") for n, o in plan]


def lever_case(s: dict, device: torch.device, opt: dict) -> dict:
    """Seconds per training step of the 3D model (FineTune: layer4.0 + fc trained, bf16
    autocast on a GPU) under the options `opt`, and the FLOPs of one step."""
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = cuda and opt.get("benchmark", True)
    lb = opt.get("layer4_blocks", 1)
    model = resnet_3d.build(s["lever_arch"], num_classes=101, layer4_blocks=lb)
    if opt.get("pad"):
        model.conv1 = PaddedConv1(model.conv1, opt["pad"])
    net = engine.FineTune(model, "layer4.0", *engine.input_stats("3d")).to(device)
    memory = torch.channels_last_3d if cuda and opt.get("channels_last", True) else None
    if memory:
        net = net.to(memory_format=memory)
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    adam = torch.optim.Adam(params, lr=1e-4, capturable=bool(opt.get("graph")))
    B, S = s["lever_batch"], s["lever_size"]
    tb = opt.get("trunk_batch", B)
    n = max(B, tb)  # clips per call: a trunk pass of tb clips, or tb-sized passes over B
    x = torch.randint(0, 256, (n, 16, S, S, 3), dtype=torch.uint8, device=device)
    y = torch.randint(0, 101, (n,), device=device)
    # hf.normalize's arithmetic with its constants on the device beforehand: a graph capture
    # allows no host-to-device copy
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device)
                 for v in engine.input_stats("3d"))
    norm = lambda u: ((u.float().div_(255) - mean) / std).movedim(-1, 1)
    mods = dict(trunk=nn.Sequential(*net.frozen))  # compiled after the FLOPs are counted
    arithmetic = engine.Run(device, precision=engine.resolve_precision("auto", device))
    cast = lambda: engine.autocast(arithmetic) if not opt.get("graph") else torch.autocast(
        "cuda", dtype=torch.bfloat16, cache_enabled=False)

    def top(h, yy):
        for m in net.trained:
            h = m(h)
        logits = model.fc(torch.flatten(model.avgpool(h), 1))
        loss = F.cross_entropy(logits.float(), yy)
        adam.zero_grad(set_to_none=not opt.get("graph"))
        loss.backward()
        adam.step()

    def step():
        with cast():
            v = norm(x)
            if memory:
                v = v.contiguous(memory_format=memory)
            with torch.no_grad():
                h = torch.cat([mods["trunk"](c) for c in v.split(tb)])
            for k in range(0, n, B):
                top(h[k:k + B], y[k:k + B])

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    t = time.perf_counter()
    if opt.get("compile_trunk"):
        mods["trunk"] = torch.compile(mods["trunk"])
    run = step
    if opt.get("graph"):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
    for _ in range(3 if cuda else 1):  # autotuning, compilation
        run()
    sync()
    warm = time.perf_counter() - t
    times = []
    for _ in range(s["lever_steps"]):
        t = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times) * B / n  # per step of B clips
    return dict(s_per_step=step_s, clips_per_s=B / step_s, gflop_per_step=flops * B / n / 1e9,
                warmup_s=warm)


def levers(spec: dict) -> list:
    """Every lever of lever_plan, one after the other in this process; each row written to
    spec["out"] as soon as it is measured (a crash keeps the rows before it)."""
    s, cuda = spec["settings"], torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    peak = next((p for k, p in PEAK_BF16_TFLOPS if cuda and all(
        w in torch.cuda.get_device_name() for w in k.split())), None)
    rows, deadline = [], spec["deadline"]
    for name, opt, skip in lever_plan(cuda, s["lever_batch"]):
        row = dict(name=name, options=opt)
        if not cuda and opt.get("compile_trunk"):
            skip = "compiled on a GPU only (minutes of CPU compile time)"
        blocks = resnet_3d.ARCHS[s["lever_arch"]][1][3]
        if opt.get("layer4_blocks", 1) > blocks:
            skip = f"{s['lever_arch']} has {blocks} layer4 block{'s' * (blocks > 1)}"
        if skip is None and time.time() > deadline:
            skip = "out of --budget-s"
        if skip:
            rows.append(dict(row, skipped=skip))
        else:
            try:
                rows.append(dict(row, **lever_case(s, device, opt)))
            except Exception as e:  # out of memory, a compiler or graph-capture error: noted
                rows.append(dict(row, skipped=f"{type(e).__name__}: {str(e)[:200]}"))
            finally:
                torch.backends.cudnn.benchmark = cuda
                if cuda:
                    torch.cuda.empty_cache()
        r = rows[-1]
        if "s_per_step" in r:
            base = rows[0].get("s_per_step")
            r["x_assignment"] = base / r["s_per_step"] if base else None
            r["tflops"] = r["gflop_per_step"] / r["s_per_step"] / 1e3
            r["peak_share"] = r["tflops"] / peak if peak else None
        print(f"  lever {name}: " + (f"{r['s_per_step'] * 1e3:.1f} ms/step" if "s_per_step" in r
                                     else f"skipped ({r['skipped']})"), flush=True)
        write_json(spec["out"], rows, indent=None)
    return rows


# ----------------------------------------------------------------------------- the parent

def run_child(spec: dict, work: str) -> dict:
    """Run `spec` in a child Python process (python -m benchmarks.gpu_check --child); returns
    what it measured. A failing child ends the check, naming the phase."""
    path = os.path.join(work, f"child-{re.sub(r'[^a-z0-9]+', '-', spec['phase'].lower())}.json")
    spec = dict(spec, out=path + ".out")
    with open(path, "w") as f:
        json.dump(spec, f)
    t = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--child", path],
                        cwd=REPO, env=child_env()).returncode
    if rc != 0 and not os.path.exists(spec["out"]):
        raise SystemExit(f"gpu_check: the {spec['phase']} phase failed (exit status {rc}; its "
                         f"message is above)")
    with open(spec["out"]) as f:
        got = json.load(f)
    return dict(process_s=time.perf_counter() - t, result=got, rc=rc)


def child_env() -> dict:
    """The environment of every phase's process: passive OpenMP waits, so that PyTorch's threads
    sleep instead of spinning while the loader workers decode on the same cores (on a small
    CPU, spinning made the scripts several times slower; on a GPU node it changes nothing)."""
    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def run_process(phase: str, argv: list) -> float:
    """Run a script or tool as its own process from the repository root; its wall time."""
    print(f"\n=== {phase}: {' '.join(argv)}", flush=True)
    t = time.perf_counter()
    if subprocess.run([sys.executable, *argv], cwd=REPO, env=child_env()).returncode != 0:
        raise SystemExit(f"gpu_check: the {phase} phase failed (its message is above)")
    return time.perf_counter() - t


def scaled(phase: dict) -> float:
    """A phase's time on all of UCF-101: its fixed part once, each per-video part (`parts`: its
    seconds over its videos) times UCF-101's videos."""
    return phase["fixed_s"] + sum(p["s"] / p["videos"] * p["ucf_videos"] for p in phase["parts"])


def subset_stats(root: str) -> dict:
    """Videos of the generated subset: all, split 1's train and test lists, test frames."""
    lists = os.path.join(root, "ucfTrainTestlist")
    names = lambda f: [ln.split()[0].replace("\\", "/").split("/")[1][:-4] for ln in
                       open(os.path.join(lists, f), encoding="utf-8").read().splitlines()
                       if ln.strip()]
    frames = json.load(open(os.path.join(root, "toy_classes.json")))["n_frames"]
    test = names("testlist01.txt")
    return dict(all=len(frames), train=len(names("trainlist01.txt")), test=len(test),
                test_frames=sum(frames[n] for n in test),
                mean_test_frames=sum(frames[n] for n in test) / len(test))


def gpu_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def parse_args(argv: list | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-smoke", action="store_true",
                   help="the same check in miniature on a CPU (a few tiny videos, small models)")
    p.add_argument("--lists", default=None,
                   help=f"the official ucfTrainTestlist/ (default {SHARED_LISTS} where it exists, "
                        f"else lists generated with UCF-101's statistics)")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "gpu-check"),
                   help="data and run folders (the data is reused by a rerun, runs never are)")
    p.add_argument("--workers", type=int, default=None,
                   help="loader workers of the scripts (default: theirs)")
    p.add_argument("--budget-s", type=float, default=360,
                   help="start no lever after this many seconds since the start")
    p.add_argument("--no-levers", action="store_true", help="the assignment's phases only")
    p.add_argument("--out", default=None,
                   help="results JSON (default docs/results/gpu-<gpu>.json; --cpu-smoke: in the "
                        "run folder)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    if args.child:
        with open(args.child) as f:
            spec = json.load(f)
        got = levers(spec) if spec["phase"] == "levers" else child(spec)
        write_json(spec["out"], got, indent=None)
        return got
    t0 = time.time()
    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_smoke:
        raise SystemExit("gpu_check: PyTorch sees no CUDA GPU here; --cpu-smoke runs the check in "
                         "miniature on a CPU")
    s = settings(args.cpu_smoke)
    gpu = torch.cuda.get_device_name() if cuda else None
    lists = args.lists or (SHARED_LISTS if os.path.isfile(os.path.join(SHARED_LISTS,
                                                                       "classInd.txt")) else None)
    os.makedirs(args.work, exist_ok=True)
    root = os.path.join(args.work, f"data-{s['width']}x{s['height']}-f{s['frames']}-"
                                   f"m{s['max_per_class']}-{'official' if lists else 'generated'}")
    run = tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=args.work)
    out = args.out or (os.path.join(run, "gpu-check-smoke.json") if args.cpu_smoke else
                       os.path.join(REPO, "docs", "results", f"gpu-{gpu_slug(gpu)}.json"))
    results = dict(tool="gpu_check", meta=dict(
        device=gpu or f"CPU ({os.cpu_count()} cores)", cpu_smoke=args.cpu_smoke,
        torch=torch.__version__, pinned_torch=PINNED_TORCH, cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None, python=platform.python_version(),
        cpu_count=os.cpu_count(), workers=args.workers, settings=s,
        lists="official split files" if lists else "generated with UCF-101's statistics",
        ucf101=UCF101), phases=[], levers=[], notes=[])
    if not torch.__version__.startswith(PINNED_TORCH):
        results["notes"].append(f"PyTorch {torch.__version__}, not the pinned {PINNED_TORCH}: "
                                f"the figures are this version's")

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        write_json(out, results)

    def add(name, wall, parts, fixed, items=None, unit=None, extra=None):
        ph = dict(name=name, wall_s=wall, parts=parts, fixed_s=fixed, items=items, unit=unit,
                  **(extra or {}))
        loop = sum(p["s"] for p in parts)
        ph["items_per_s"] = items / loop if items and loop else None
        ph["scaled_s"] = scaled(ph)
        results["phases"].append(ph)
        save()
        return ph

    gen = ["-m", "tools.make_toy_ucf101", "--like-ucf101", "--out", root, "--width",
           str(s["width"]), "--height", str(s["height"]), "--frames", str(s["frames"]),
           "--max-per-class", str(s["max_per_class"]), "--workers", str(os.cpu_count())]
    gen += ["--lists", lists] if lists else []
    setup_s = run_process("generate", gen)
    n = subset_stats(root)
    results["meta"]["subset"] = n
    wall = run_process("prepare (compact store)", ["-m", "tools.prepare_data", "--data-root",
                                                   root, "--workers", str(os.cpu_count())])
    add("prepare (compact store)", wall, [dict(what="videos", s=wall, videos=n["all"],
                                               ucf_videos=UCF101["videos"])], 0.0,
        n["all"], "videos")
    weights = write_weights(os.path.join(run, "weights"), s)
    epochs = s["epochs"] or UCF101["epochs"]
    for phase in ("train 2D", "train 3D", "test 2D", "test 3D"):
        argv = script_argv(phase, root, run, weights, s, args.workers)
        print(f"\n=== {phase}: {SCRIPTS[phase]}.py {' '.join(argv)}", flush=True)
        got = run_child(dict(phase=phase, module=SCRIPTS[phase], argv=argv), run)["result"]
        loops = got["loops"]
        if phase.startswith("train"):
            parts = [dict(what="training", s=loops.get("train", 0.0), videos=n["train"] * epochs,
                          ucf_videos=UCF101["train"] * UCF101["epochs"]),
                     dict(what="clip test per epoch", s=loops.get("evaluate", 0.0),
                          videos=n["test"] * epochs, ucf_videos=UCF101["test"] * UCF101["epochs"])]
            items, unit = (n["train"] + n["test"]) * epochs, "clips" if "3D" in phase else "frames"
        else:
            parts = [dict(what="test videos", s=loops.get("score", 0.0), videos=n["test"],
                          ucf_videos=UCF101["test"])]
            items, unit = n["test_frames"], "frames"
        loop = sum(p["s"] for p in parts)
        add(phase, got["wall_s"], parts, max(got["wall_s"] - loop, 0.0), items, unit,
            dict(peak_gpu_gb=got["peak_gpu_gb"], data_wait_s=got["data_wait_s"],
                 data_wait_share=got["data_wait_s"] / loop if loop else None))
    for phase in ("combine", "report"):
        wall = run_process(phase, [SCRIPTS[phase]] + script_argv(phase, root, run, weights, s,
                                                                 args.workers))
        per_video = [dict(what="test videos", s=wall, videos=n["test"],
                          ucf_videos=UCF101["test"])] if phase == "combine" else []
        add(phase, wall, per_video, 0.0 if per_video else wall)
    results["setup"] = dict(generate_s=setup_s, note="writing the synthetic videos: not a phase "
                                                     "of the assignment")
    results["total"] = dict(measured_s=sum(p["wall_s"] for p in results["phases"]),
                            scaled_s=sum(p["scaled_s"] for p in results["phases"]))
    save()
    if not args.no_levers:
        print("\n=== levers of the 3D training step", flush=True)
        spec = dict(phase="levers", settings=s, deadline=t0 + args.budget_s)
        got = run_child(spec, run)
        results["levers"] = got["result"]
        if got["rc"]:
            results["notes"].append(f"the levers' process ended with exit status {got['rc']} "
                                    f"after {len(got['result'])} levers")
    results["meta"]["total_s"] = time.time() - t0
    save()
    print("\n" + markdown_tables(results))
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"\nwrote {out} ({results['meta']['total_s']:.0f} s)")
    return results


# ----------------------------------------------------------------------------- tables

def markdown_tables(results: dict, names: list | None = None) -> str:
    """The check's tables as Markdown (`names`: "phases", "levers"), each under its caption:
    what docs/performance.md shows between its generated-block markers."""
    from benchmarks.benchmark import md_table, num
    m, got = results["meta"], {}
    gpu = f"{m['device']}, PyTorch {m['torch']}, {m['cpu_count']} CPU cores"
    sub = m["subset"]
    rows = []
    for p in results["phases"]:
        rows.append([p["name"], num(p["wall_s"]),
                     f"{num(p['items_per_s'])} {p['unit']}/s" if p.get("items_per_s") else "-",
                     num(p.get("peak_gpu_gb")), "-" if p.get("data_wait_share") is None
                     else f"{100 * p['data_wait_share']:.0f}%", num(p["scaled_s"] / 60)])
    t = results["total"]
    rows.append(["**whole assignment**", f"**{num(t['measured_s'])}**", "", "", "",
                 f"**{num(t['scaled_s'] / 60)}**"])
    got["phases"] = (
        f"The assignment's scripts on {gpu}: a synthetic subset of {sub['all']:,} videos at "
        f"{m['settings']['width']}x{m['settings']['height']} ({sub['train']} training, "
        f"{sub['test']} test videos of {sub['mean_test_frames']:.0f} frames on average), "
        f"scaled to all of UCF-101 split 1", md_table(
            ["phase", "measured s", "rate", "peak GPU GB", "waiting for data",
             "UCF-101 minutes"], rows))
    if results.get("levers"):
        lrows = []
        for r in results["levers"]:
            if "s_per_step" in r:
                lrows.append([r["name"], num(r["s_per_step"] * 1e3), num(r["clips_per_s"]),
                              f"{r['x_assignment']:.2f}x" if r.get("x_assignment") else "-",
                              num(r["tflops"]), "-" if r.get("peak_share") is None
                              else f"{100 * r['peak_share']:.1f}%", num(r["warmup_s"])])
            else:
                lrows.append([r["name"], f"skipped: {r['skipped']}", "", "", "", "", ""])
        s = m["settings"]
        got["levers"] = (
            f"The 3D training step ({s['lever_arch']}, layer4.0 + fc trained, batch "
            f"{s['lever_batch']}, 16x{s['lever_size']}x{s['lever_size']}) under each lever on "
            f"{gpu}; % peak: of the dense bf16 peak; warm-up: cuDNN autotuning, compilation or "
            f"graph capture before the first timed step", md_table(
                ["lever", "ms/step", "clips/s", "x assignment", "TFLOP/s", "% peak",
                 "warm-up s"], lrows))
    missing = [n for n in names or () if n not in got]
    if missing:
        raise KeyError(f"no figures for table(s) {', '.join(missing)} in these results")
    return "\n\n".join(f"{got[n][0]}:\n\n{got[n][1]}" for n in names or got)


if __name__ == "__main__":
    main(parse_args())
