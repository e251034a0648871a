"""Convert a UCF-101 AVI tree, or the course's raw HDF5 tree, into the compact store.

Usage: python -m tools.prepare_data --data-root /path/to/root [--source auto|avi|hdf5]
       [--quality 90]

Reads `<root>/UCF-101/<Class>/*.avi` (or `<root>/UCF-101-hdf5/<Class>/*.hdf5`) and writes
`<root>/UCF-101-jpeg/<Class>/<video>.hdf5`: one HDF5 per video, dataset `jpeg` holding one JPEG
byte string per frame, attributes n_frames, fps, height, width, quality and the source's format,
size, modification time and frame count. The raw uint8 copy is ~500 GB for UCF-101; this store is
13x smaller. `--to hdf5` writes the course's raw format.

The run is resumable: every file is written under a temporary name and renamed when complete and
verified, so finished videos are skipped and an interrupted run never leaves a file that looks
done.
A store file whose source changed since (another size or modification time) is converted again.
"""
import argparse
import glob
import os
import signal
import time
from multiprocessing import Pool

from tqdm import tqdm

import utils
import video_io
from video_io import STORE_DIRS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", required=True,
                   help="folder holding UCF-101/ or UCF-101-hdf5/")
    p.add_argument("--source", choices=["auto", "avi", "hdf5"], default="auto",
                   help="which copy to read (auto: the AVIs if present, else the raw HDF5)")
    p.add_argument("--to", choices=["jpeg", "hdf5"], default="jpeg",
                   help="jpeg: the compact store; hdf5: the course's raw uint8 copy")
    p.add_argument("--quality", type=utils.int_between(1, 100), default=video_io.JPEG_QUALITY,
                   help="JPEG quality (90: ~1.3 grey levels mean abs. error on UCF-101, ~13x "
                        "smaller than raw)")
    p.add_argument("--workers", type=utils.positive_int, default=os.cpu_count(),
                   help="parallel processes")
    return p.parse_args(argv)


def find_sources(root: str, source: str) -> tuple:
    """(kind, sorted source video paths) of the first kind of copy found."""
    kinds = ["avi", "hdf5"] if source == "auto" else [source]
    for kind in kinds:
        pattern = os.path.join(root, STORE_DIRS[kind], "*",
                               "*." + ("avi" if kind == "avi" else "hdf5"))
        found = sorted(glob.glob(pattern))
        if found:
            return kind, found
    raise FileNotFoundError("no source videos: expected "
                            + " or ".join(os.path.join(root, STORE_DIRS[k], "<Class>", "*")
                                          for k in kinds))


def _ignore_interrupt() -> None:
    # Ctrl-C is the main process's to handle (it says what is kept); the workers just stop with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(args: argparse.Namespace) -> None:
    try:
        video_io.check_data_root(args.data_root)
        kind, sources = find_sources(args.data_root, args.source)
    except FileNotFoundError as e:
        raise SystemExit(f"--data-root {args.data_root}: {e}") from None
    if args.to == "hdf5" and kind == "hdf5":
        raise SystemExit("the source is already the raw HDF5 copy; use --to jpeg")
    out_dir = os.path.join(args.data_root, STORE_DIRS[args.to])
    # before decoding anything: a read-only root fails here
    utils.check_writable(out_dir, "--data-root")
    tasks, done, stale = [], 0, 0
    for src in sources:
        cls, name = src.split(os.sep)[-2], video_io.video_name(src)
        dst = os.path.join(out_dir, cls, name + ".hdf5")
        if video_io.is_complete(dst, src):
            done += 1
        else:
            stale += os.path.exists(dst)
            tasks.append((src, kind, dst, args.to, args.quality))
    print(f"{len(sources)} videos in {os.path.join(args.data_root, STORE_DIRS[kind])}; {done} "
          f"already converted, {len(tasks)} to convert into {out_dir}"
          + (f" ({stale} of them again: their source changed or their copy is incomplete)"
             if stale else ""))

    t0, failed, n_frames, out_bytes, raw_bytes, converted = time.time(), [], 0, 0, 0, 0
    try:
        with Pool(args.workers, initializer=_ignore_interrupt) as pool:
            for _, n, ob, rb, err in tqdm(pool.imap_unordered(video_io.convert, tasks, chunksize=4),
                                          total=len(tasks), desc="convert", unit="video"):
                if err:
                    failed.append(err)
                    tqdm.write(f"FAILED {err}")
                else:
                    converted += 1
                n_frames, out_bytes, raw_bytes = n_frames + n, out_bytes + ob, raw_bytes + rb
    except KeyboardInterrupt:  # the workers are stopped: count the files they finished
        converted = sum(video_io.is_complete(dst, src) for src, _, dst, _, _ in tasks)
        raise SystemExit(f"\ninterrupted: the {done + converted} videos converted so far are kept "
                         f"in {out_dir}; "
                         f"run the same command again to convert the rest") from None

    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(out_dir, "*", "*.hdf5")))
    print(f"converted {converted} videos ({n_frames} frames) in {time.time() - t0:.1f}s; "
          f"{len(failed)} failed")
    if raw_bytes:
        print(f"this run: {out_bytes / 2**20:.1f} MiB written for {raw_bytes / 2**20:.1f} MiB of "
              f"raw uint8 frames: {raw_bytes / max(out_bytes, 1):.1f}x smaller")
    print(f"store {out_dir}: {total / 2**20:.1f} MiB in all")
    for err in failed:
        print(f"  failed: {err}")
    if failed and len(failed) == len(tasks) and not done:
        raise SystemExit(f"no video could be converted ({len(failed)} failures, listed above)")


if __name__ == "__main__":
    main(parse_args())
