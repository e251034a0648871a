"""What tools/prepare_data.py costs on UCF-101: CPU time and disk per frame, measured, and scaled.

Usage: python -m benchmarks.prepare_cost [--videos ../shared/data/videos]
           [--out docs/results/prepare-cost.json]

Converts each AVI of --videos to the compact store with video_io.convert (what prepare_data runs in
each of its worker processes) `--rounds` times, measuring the process's CPU time, and scales the
time and the bytes per frame to UCF-101's frames. One core's time: prepare_data runs one worker per
core, so N cores take about 1/N of it when the disk keeps up.
"""
import argparse
import glob
import os
import platform
import tempfile
import time

import utils
import video_io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# UCF-101: 13,320 videos, 186 frames on average (the test list of split 1), about 2.5 million frames
UCF101_VIDEOS, UCF101_MEAN_FRAMES = 13320, 186


def measure(videos: list[str], rounds: int) -> dict:
    """CPU seconds and bytes per frame of converting `videos` (AVIs) to the compact store."""
    frames = cpu = out = raw = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for i, src in enumerate(videos):
                dst = os.path.join(tmp, f"{r}-{i}.hdf5")
                t = time.process_time()
                _, n, out_bytes, raw_bytes, err = video_io.convert(
                    (src, "avi", dst, "jpeg", video_io.JPEG_QUALITY))
                cpu += time.process_time() - t
                if err:
                    raise SystemExit(f"cannot convert {src}: {err}")
                frames, out, raw = frames + n, out + out_bytes, raw + raw_bytes
    return {"frames": frames, "cpu_ms_per_frame": 1000 * cpu / frames,
            "store_bytes_per_frame": out / frames, "raw_bytes_per_frame": raw / frames}


def markdown_table(results: dict) -> str:
    """The README's figures of a prepare_cost results file."""
    m, n = results["measured"], UCF101_VIDEOS * UCF101_MEAN_FRAMES
    core_hours = m["cpu_ms_per_frame"] * n / 1000 / 3600
    store, raw = m["store_bytes_per_frame"], m["raw_bytes_per_frame"]
    return (f"Measured on {results['videos']} real clips ({m['frames']} frames converted): "
            f"{m['cpu_ms_per_frame']:.2f} ms of one core and {store / 1000:.0f} KB per frame; for "
            f"UCF-101's {n / 1e6:.1f} million frames {core_hours:.2f} core-hours "
            f"({60 * core_hours / 8:.0f} minutes on 8 cores, more when the disk is slow) and "
            f"{store * n / 2**30:.0f} GiB, {raw / store:.0f}x less than the raw copy's "
            f"{raw * n / 2**30:.0f} GiB.")


def parse_args(argv=None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--videos", default=os.path.join(REPO, "..", "shared", "data", "videos"),
                   help="folder of real UCF-101 AVIs")
    p.add_argument("--rounds", type=utils.positive_int, default=3, help="conversions of each video")
    p.add_argument("--out", default=None, help="results JSON to write")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    videos = sorted(glob.glob(os.path.join(args.videos, "*.avi")))
    if not videos:
        raise SystemExit(f"--videos {args.videos}: no .avi there")
    results = {"tool": "prepare_cost", "videos": len(videos), "rounds": args.rounds,
               "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "load_average": [round(x, 2) for x in os.getloadavg()],
               "measured": measure(videos, args.rounds)}
    if args.out:
        utils.write_json(args.out, results)
    print(markdown_table(results))
    return results


if __name__ == "__main__":
    main(parse_args())
