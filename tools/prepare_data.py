"""Convert a UCF-101 AVI tree, or the course's raw HDF5 tree, into the compact store.

Usage: python prepare_data.py --data-root /path/to/root [--source auto|avi|hdf5] [--quality 90]

Reads `<root>/UCF-101/<Class>/*.avi` (or `<root>/UCF-101-hdf5/<Class>/*.hdf5`) and writes
`<root>/UCF-101-jpeg/<Class>/<video>.hdf5`: one HDF5 per video, dataset `jpeg` holding one JPEG
byte string per frame, attributes n_frames, fps, height, width, quality. The raw uint8 copy is
~500 GB for UCF-101; this store is 13x smaller, and reading a 16-frame clip from it costs about
the same per core as from the raw arrays when they come from disk (see benchmark.py). `--to hdf5` writes
the course's raw format.

The run is resumable: every file is written under a temporary name and renamed when complete and
verified, so finished videos are skipped and an interrupted run never leaves a file that looks done.
"""
import argparse
import glob
import os
import sys
import time
from multiprocessing import Pool

from tqdm import tqdm

import video_io
from video_io import STORE_DIRS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data/toy", help="folder holding UCF-101/ or UCF-101-hdf5/")
    p.add_argument("--source", choices=["auto", "avi", "hdf5"], default="auto",
                   help="which copy to read (auto: the AVIs if present, else the raw HDF5)")
    p.add_argument("--to", choices=["jpeg", "hdf5"], default="jpeg",
                   help="jpeg: the compact store (default); hdf5: the course's raw uint8 copy")
    p.add_argument("--quality", type=int, default=video_io.JPEG_QUALITY,
                   help="JPEG quality (90: ~1.3 grey levels mean abs. error on UCF-101, ~13x smaller than raw)")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    return p.parse_args(argv)


def find_sources(root, source):
    """Source videos and the store path each one goes to."""
    kinds = ["avi", "hdf5"] if source == "auto" else [source]
    for kind in kinds:
        pattern = os.path.join(root, STORE_DIRS[kind], "*", "*." + ("avi" if kind == "avi" else "hdf5"))
        found = sorted(glob.glob(pattern))
        if found:
            return kind, found
    raise FileNotFoundError(f"no source videos under {root}: expected "
                            + " or ".join(os.path.join(root, STORE_DIRS[k], "<Class>", "*") for k in kinds))


def main(args):
    if not os.path.isdir(args.data_root):
        sys.exit(f"--data-root {args.data_root}: folder not found (expected the folder holding UCF-101/ "
                 f"or UCF-101-hdf5/)")
    try:
        kind, sources = find_sources(args.data_root, args.source)
    except FileNotFoundError as e:
        sys.exit(f"--data-root {args.data_root}: {e}")
    out_dir = os.path.join(args.data_root, STORE_DIRS[args.to])
    if args.to == "hdf5" and kind == "hdf5":
        sys.exit("the source is already the raw HDF5 copy; use --to jpeg")
    tasks, skipped = [], 0
    for src in sources:
        cls, name = src.split(os.sep)[-2], video_io.video_name(src)
        dst = os.path.join(out_dir, cls, name + ".hdf5")
        if video_io.is_complete(dst):
            skipped += 1
        else:
            tasks.append((src, kind, dst, args.to, args.quality))
    print(f"{len(sources)} videos in {os.path.join(args.data_root, STORE_DIRS[kind])}; "
          f"{skipped} already converted, {len(tasks)} to convert into {out_dir}")

    t0, failed, n_frames, out_bytes, raw_bytes = time.time(), [], 0, 0, 0
    with Pool(max(1, args.workers)) as pool:
        for _, n, ob, rb, err in tqdm(pool.imap_unordered(video_io.convert, tasks, chunksize=4),
                                      total=len(tasks), desc="convert", unit="video"):
            if err:
                failed.append(err)
                tqdm.write(f"FAILED {err}")
            n_frames, out_bytes, raw_bytes = n_frames + n, out_bytes + ob, raw_bytes + rb

    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(out_dir, "*", "*.hdf5")))
    print(f"converted {len(tasks) - len(failed)} videos ({n_frames} frames) in {time.time() - t0:.1f}s; "
          f"{len(failed)} failed")
    if raw_bytes:
        print(f"this run: {out_bytes / 2**20:.1f} MiB written for {raw_bytes / 2**20:.1f} MiB of raw uint8 "
              f"frames: {raw_bytes / max(out_bytes, 1):.1f}x smaller")
    print(f"store {out_dir}: {total / 2**20:.1f} MiB in all")
    for err in failed:
        print(f"  failed: {err}")
    if failed and len(failed) == len(tasks) and not skipped:
        sys.exit(f"no video could be converted ({len(failed)} failures, listed above)")


if __name__ == "__main__":
    main(parse_args())
