"""Collect the toy demo's figures per seed (make demo SEED=N) into one JSON file, with the machine they
were measured on and the pin (the Makefile's PIN: the CPU kernels and threads the toy runs with).

Usage:
    python -m tools.demo_results --runs runs/toy runs/toy-seed1 runs/toy-seed2 --out docs/results/demo.json
        [--wall-seconds 151:2.1 149 160] [--unpinned runs/toy-nopin --unpinned-wall-seconds 140]
        [--timing pinned:152.3:1.9 unpinned:140.1:2.0 ...] [--note TEXT] [--markdown]

Each run folder holds combined/results.json of combine_results.py. A run's seed is read from its folder
name as the Makefile names it (runs/toy: 0, runs/toy-seedN: N) unless --seeds says. A wall time is
SECONDS[:LOAD[:CPU]]: LOAD the 1-minute load average when the run started, CPU its user + system
seconds. --timing records `make demo` wall times with and without the pin, in the order they were
run. `markdown_table(summary)` renders the README's table of the file.
"""
import json
import os
import platform
import re
import shlex
from pathlib import Path

import utils

MODELS = ("single_frame", "3d", "fused")
COLUMNS = {"single_frame": "single frame", "3d": "3D", "fused": "fused"}
REPO = Path(__file__).resolve().parents[1]
# the CPU features that decide which kernels oneDNN, ATen and MKL may choose
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "amx_bf16", "amx_tile")


def makefile_pin(makefile: str | os.PathLike = REPO / "Makefile") -> str:
    """The toy branch's `PIN ?= ...` of the Makefile (the prefix of every toy python command)."""
    for line in Path(makefile).read_text().splitlines():
        m = re.fullmatch(r"PIN \?=(.*)", line)
        if m:
            return m.group(1).strip()
    raise ValueError(f"{makefile}: no `PIN ?=` line")


def pin_settings(pin: str) -> dict:
    """`env A=1 B=2` -> {"A": "1", "B": "2"} (an empty pin -> {})."""
    words = shlex.split(pin)
    if words[:1] == ["env"]:
        words = words[1:]
    if not all("=" in w for w in words):
        raise ValueError(f"PIN {pin!r}: expected `env VAR=value ...`")
    return dict(w.split("=", 1) for w in words)


def seed_of(run: str) -> int:
    """The seed of a run folder named as the Makefile names them: runs/toy -> 0, runs/toy-seedN -> N."""
    m = re.search(r"-seed(\d+)$", os.path.normpath(run))
    return int(m.group(1)) if m else 0


def run_figures(run: str) -> dict:
    """A run folder (or its results.json) -> its top-1/5/10 per model, the within-pair accuracies
    (motion_pairs; None when the run has none), the fusion weight and the digests of the two trained
    models' weights (utils.tensors_sha256: equal digests, equal weights); ValueError naming the file."""
    path = run if run.endswith(".json") else os.path.join(run, "combined", "results.json")
    try:
        with open(path) as f:
            results = json.load(f)
        models = {m: {k: results["models"][m][k] for k in ("top1", "top5", "top10")} for m in MODELS}
        results["attrs"]["single_frame"], results["attrs"]["3d"], results["n_videos"], results["weight_single_frame"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found (make demo writes it; run it first)") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a results.json written by combine_results.py ({e!r})") from None
    pairs = results.get("motion_pairs", {}).get("models")
    return {"results": path, "n_videos": results["n_videos"], "models": models,
            "within_pair": {m: pairs[m]["within_pair"] for m in MODELS} if pairs else None,
            "fusion_weight": results["weight_single_frame"],
            "weights_sha256": {m: results["attrs"][m].get("checkpoint_sha256") for m in ("single_frame", "3d")}}


def machine() -> dict:
    """The CPU model, its kernel-deciding ISA flags, the number of CPUs, the torch build."""
    import torch
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    build = torch.__config__.show()
    found = lambda pattern: (m.group(1) if (m := re.search(pattern, build)) else None)
    return {"cpu_model": model, "isa_flags": [f for f in ISA_FLAGS if f in flags], "cpus": os.cpu_count(),
            "torch": torch.__version__, "onednn": found(r"MKL-DNN v([\d.]+)"),
            "mkl": found(r"Math Kernel Library Version ([\d.]+)"), "python": platform.python_version()}


def wall(text: str, flag: str) -> dict:
    """"152.3:1.9:229.4" -> {"seconds": 152.3, "load_1min": 1.9, "cpu_seconds": 229.4} (those not given: None)."""
    parts = text.split(":")
    try:
        if len(parts) > 3:
            raise ValueError
        values = [float(x) for x in parts] + [None] * (3 - len(parts))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected SECONDS[:LOAD[:CPU_SECONDS]]") from None
    return dict(zip(("seconds", "load_1min", "cpu_seconds"), values))


def timing(entries: list) -> dict:
    """["pinned:152.3:1.9", "unpinned:140.1", ...] -> the runs in order and each kind's mean seconds."""
    runs = []
    for e in entries:
        kind, _, rest = e.partition(":")
        if kind not in ("pinned", "unpinned"):
            raise ValueError(f"--timing {e!r}: expected pinned|unpinned:SECONDS[:LOAD]")
        runs.append({"pin": kind == "pinned", **wall(rest, "--timing")})
    out = {"runs": runs}
    for kind, pinned in (("pinned", True), ("unpinned", False)):
        xs = [r["seconds"] for r in runs if r["pin"] == pinned]
        out[f"{kind}_mean_seconds"] = round(sum(xs) / len(xs), 1) if xs else None
        out[f"{kind}_min_seconds"] = min(xs) if xs else None  # the least disturbed run on a shared machine
    if out["pinned_min_seconds"] and out["unpinned_min_seconds"]:
        out["pinned_over_unpinned_min"] = round(out["pinned_min_seconds"] / out["unpinned_min_seconds"], 3)
    return out


def summarize(args) -> dict:
    seeds = args.seeds or [seed_of(r) for r in args.runs]
    if len(seeds) != len(args.runs) or (args.wall_seconds and len(args.wall_seconds) != len(args.runs)):
        raise ValueError("--seeds and --wall-seconds need one value per --runs folder")
    pin = makefile_pin(args.makefile) if args.pin is None else args.pin
    rows = []
    for i, (seed, run) in enumerate(zip(seeds, args.runs)):
        rows.append({"seed": seed, "run": run, **run_figures(run),
                     "wall": wall(args.wall_seconds[i], "--wall-seconds") if args.wall_seconds else None})
    summary = {"what": "make demo (toy UCF-101, CPU) per seed: video-level top-1/5/10 of the single-frame, 3D "
                       "and fused models, within-pair accuracy on the motion-only pairs (chance 0.5)",
               "machine": machine(), "pin": pin, "pin_settings": pin_settings(pin), "seeds": rows}
    if args.unpinned:
        summary["unpinned"] = [{"seed": args.unpinned_seed, "run": args.unpinned, **run_figures(args.unpinned),
                                "wall": wall(args.unpinned_wall_seconds, "--unpinned-wall-seconds")
                                if args.unpinned_wall_seconds else None}]
    if args.timing:
        summary["timing"] = {"what": "make demo SEED=0 wall seconds, data generated, run folders removed "
                                     "before each run; in the order run", **timing(args.timing)}
    if args.note:
        summary["notes"] = args.note
    return summary


def markdown_table(summary: dict) -> str:
    """The README's table of a demo.json summary: `| seed | single frame | 3D | fused |`, one line per
    seed with the video-level top-1 of each model as e.g. 62.50%."""
    lines = ["| seed | " + " | ".join(COLUMNS[m] for m in MODELS) + " |", "|---:|" + "---:|" * len(MODELS)]
    for row in summary["seeds"]:
        lines.append(f"| {row['seed']} | " + " | ".join(f"{100 * row['models'][m]['top1']:.2f}%" for m in MODELS)
                     + " |")
    timing = summary.get("timing", {})
    if timing.get("pinned_over_unpinned_min"):
        runs = timing["runs"]
        lines += ["", f"The pin costs {100 * (timing['pinned_over_unpinned_min'] - 1):.0f}% of wall time: "
                      f"the quickest of {sum(r['pin'] for r in runs)} pinned runs of seed 0 took "
                      f"{timing['pinned_min_seconds']:.0f} s, of {sum(not r['pin'] for r in runs)} unpinned "
                      f"{timing['unpinned_min_seconds']:.0f} s ({summary['machine']['cpus']} CPUs, "
                      f"{summary['machine']['cpu_model']})."]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--runs", nargs="+", required=True, help="pinned make demo run folders, one per seed")
    p.add_argument("--seeds", nargs="+", type=utils.nonnegative_int,
                   help="the seed of each --runs folder (default: from the folder names)")
    p.add_argument("--wall-seconds", nargs="+", metavar="SECONDS[:LOAD[:CPU]]",
                   help="wall time of each --runs folder's make demo, with the load average at its start")
    p.add_argument("--unpinned", help="a run folder of make demo PIN= (the same seed without the pin)")
    p.add_argument("--unpinned-seed", type=utils.nonnegative_int, default=0, help="the seed of --unpinned")
    p.add_argument("--unpinned-wall-seconds", metavar="SECONDS[:LOAD[:CPU]]", help="wall time of the --unpinned run")
    p.add_argument("--timing", nargs="+", metavar="KIND:SECONDS[:LOAD[:CPU]]",
                   help="make demo wall times in the order run: pinned or unpinned, seconds, load average, CPU seconds")
    p.add_argument("--pin", help="the pin the runs were made with (default: the Makefile's PIN ?= line)")
    p.add_argument("--makefile", default=str(REPO / "Makefile"), help="the Makefile whose PIN is recorded")
    p.add_argument("--note", action="append", help="a remark to record with the figures (repeatable)")
    p.add_argument("--out", default="docs/results/demo.json", help="the JSON file to write")
    p.add_argument("--markdown", action="store_true", help="also print the README's table")
    return p.parse_args(argv)


def main(args):
    summary = summarize(args)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with utils.atomic_write(args.out) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    for row in summary["seeds"] + summary.get("unpinned", []):
        pinned = "" if row in summary["seeds"] else " (no pin)"
        print(f"seed {row['seed']}{pinned}: " + "  ".join(
            f"{COLUMNS[m]} {100 * row['models'][m]['top1']:.2f}%" for m in MODELS))
    if args.markdown:
        print(markdown_table(summary), end="")
    print(f"wrote {args.out}")
    return summary


if __name__ == "__main__":
    utils.run_cli(main, parse_args(), "tools/demo_results.py")
