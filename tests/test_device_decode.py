"""`--decode device`: training clips decoded and augmented on the device (torchvision's decode_jpeg,
nvJPEG on a GPU; libjpeg on the CPU here, which runs the very same code) must equal what the loader
workers make with OpenCV, skip a bad video without losing the batch, and train alike.

Usage: pytest -q tests/test_device_decode.py
"""
import json

import h5py
import numpy as np
import pytest
import torch

import gpu_decode
import helperFunctions as hf
import prepare_data
import train_3d
import video_io

CPU = torch.device("cpu")


def both_paths(paths, frames, size, epoch, seed=3):
    """The same samples (seed, epoch, index) through the workers' path and through decode_on_device."""
    worker = hf.ClipDataset(paths, range(len(paths)), True, size, frames, seed)
    device = gpu_decode.JpegClipDataset(paths, range(len(paths)), True, size, frames, seed)
    keys = [(i, epoch) for i in range(len(paths))]
    return (hf.collate([worker[k] for k in keys]),
            gpu_decode.decode_on_device(gpu_decode.collate_jpeg([device[k] for k in keys]), CPU))


@pytest.mark.parametrize("frames,size", [(16, 112), (1, 224)])
def test_device_decode_matches_workers(real_root, frames, size):
    drawn = set()
    for epoch in range(4):
        ref, got = both_paths(real_root.paths, frames, size, epoch)
        assert got["video"].shape == ref["video"].shape == \
            ((4, size, size, 3) if frames == 1 else (4, frames, size, size, 3))
        assert got["video"].dtype == torch.uint8
        for k in ("label", "index"):  # brightness is in the pixels on both paths
            assert torch.equal(got[k], ref[k]), k
        # Two JPEG decoders and two bilinear resizers: off by one grey level in places; a crop's border
        # row/column may differ more (roi_align reads the pixel beyond the crop, cv2 repeats the edge).
        d = (got["video"].int() - ref["video"].int()).abs()
        assert d.float().mean() < 0.3 and (d > 2).float().mean() < 1e-3, (d.float().mean(), d.max())
        ds = gpu_decode.JpegClipDataset(real_root.paths, range(4), True, size, frames, 3)
        drawn |= {(s["box"][2:4] != (240, 320), bool(s["box"][4])) for s in (ds[(i, epoch)] for i in range(4))}
    assert {True, False} <= {c for c, _ in drawn} and {True, False} <= {f for _, f in drawn}  # crops and flips seen


def test_device_decode_skips_bad_videos_not_the_batch(tmp_path, write_video):
    rng = np.random.default_rng(0)
    grad = np.linspace(0, 255, 48, dtype=np.float32)
    frames = lambda k: np.clip(grad[None, None, :, None] + rng.normal(0, 20, (20, 36, 48, 3)) + 10 * k, 0, 255)
    paths = [write_video(tmp_path, f"v_Cls{k}_g01_c01", frames(k), fmt="jpeg") for k in range(4)]
    with h5py.File(video_io.store_path(paths[1], "jpeg"), "r+") as h:  # complete markers, corrupt data
        ds = h["jpeg"]
        bufs = list(ds[:])
        bufs = [np.concatenate([b[:2], np.full(len(b) - 4, 7, np.uint8), b[-2:]]) for b in bufs]
        del h["jpeg"]
        h.create_dataset("jpeg", data=np.array(bufs + [None], dtype=object)[:-1], dtype=h5py.vlen_dtype(np.uint8))
    with h5py.File(video_io.store_path(paths[2], "jpeg"), "r+") as h:  # a truncated frame: caught in the worker
        bufs = list(h["jpeg"][:])
        bufs[3] = bufs[3][:len(bufs[3]) // 2]
        del h["jpeg"]
        h.create_dataset("jpeg", data=np.array(bufs + [None], dtype=object)[:-1], dtype=h5py.vlen_dtype(np.uint8))
    ds = gpu_decode.JpegClipDataset(paths, range(4), False, 16, 16)
    loader = hf.make_loader(ds, batch_size=4, shuffle=False, workers=0, collate_fn=gpu_decode.collate_jpeg)
    batch = gpu_decode.decode_on_device(next(iter(loader)), CPU)
    assert batch["label"].tolist() == [0, 3]
    assert batch["video"].shape == (2, 16, 16, 16, 3)
    failed = dict(batch["failed"])
    assert set(failed) == {paths[1], paths[2]}
    assert "not a valid JPEG" in failed[paths[1]] and "not a complete JPEG" in failed[paths[2]]


def test_choose_decode(make_root):
    avi_only, stored = make_root(formats=("avi",)), make_root(formats=("jpeg",))
    gpu = torch.device("cuda")
    assert gpu_decode.choose_decode("auto", CPU, stored.paths, 1) == "worker"  # no GPU: OpenCV in the workers
    assert gpu_decode.choose_decode("device", CPU, stored.paths, 16) == "device"
    assert gpu_decode.choose_decode("auto", gpu, stored.paths, 1) == "device"  # single frames: the faster path
    assert gpu_decode.choose_decode("auto", gpu, stored.paths, 16) == "worker"  # 3D: nvJPEG would slow the GPU
    assert gpu_decode.choose_decode("auto", gpu, avi_only.paths, 1) == "worker"  # nothing to hand the GPU
    with pytest.raises(SystemExit, match=r"4 of the 4 videos .*v_ApplyEyeMakeup_g01_c01.avi.*prepare_data.py"):
        gpu_decode.choose_decode("device", CPU, avi_only.paths, 1)


@pytest.mark.slow
def test_training_with_device_decode_matches_workers(toy_root, tmp_path):
    """Through train_3d.py both paths feed the model the same clips, crops and flips, so with --lr 0 the
    epoch's mean loss agrees to the pixel noise (trained weights would diverge: Adam's first steps
    amplify tiny gradient differences). Batch 8 at 32x32: batch-norm over fewer values amplifies more."""
    root = tmp_path / "toy"
    root.mkdir()
    for d in ("ucfTrainTestlist", "UCF-101"):
        (root / d).symlink_to(toy_root / d, target_is_directory=True)
    prepare_data.main(prepare_data.parse_args(["--data-root", str(root), "--workers", "1"]))
    logs = {}
    for decode in ("worker", "device"):
        out = tmp_path / decode
        train_3d.main(train_3d.parse_args(
            ["--data-root", str(root), "--kinetics-checkpoint", "none", "--arch", "resnet10", "--train-from", "all",
             "--size", "32", "--frames", "8", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--lr", "0",
             "--decode", decode, "--out", str(out)]))
        logs[decode] = dict(zip(*[r.split(",") for r in (out / "log.csv").read_text().splitlines()]))
        assert json.loads((out / "args.json").read_text())["decode"] == decode
        assert logs[decode]["failed_videos"] == "0"
    for col in ("train_loss", "test_clip_loss"):
        loss = {k: float(v[col]) for k, v in logs.items()}
        assert loss["device"] == pytest.approx(loss["worker"], rel=5e-3), (col, loss)


def test_device_ahead_thread(tmp_path, write_video, monkeypatch):
    """The look-ahead thread yields every batch decoded, stops when the loop stops early, and hands
    its errors to the training thread."""
    import threading
    frames = np.random.default_rng(1).integers(0, 255, (20, 24, 32, 3))
    paths = [write_video(tmp_path, f"v_Cls{k}_g01_c01", frames, fmt="jpeg") for k in range(5)]
    loader = hf.make_loader(gpu_decode.JpegClipDataset(paths, range(5), True, 8, 4), 2, False, 0,
                            collate_fn=gpu_decode.collate_jpeg)
    batches = list(gpu_decode.DeviceAhead(loader, CPU))
    assert [b["label"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert all(b["video"].shape[1:] == (4, 8, 8, 3) and "jpeg" not in b for b in batches)
    before = threading.active_count()
    it = iter(gpu_decode.DeviceAhead(loader, CPU))
    next(it)
    it.close()  # a loop left early (an exception, Ctrl-C): the thread ends with it
    assert threading.active_count() == before

    def boom(batch, device):
        raise ValueError("boom")
    monkeypatch.setattr(gpu_decode, "decode_on_device", boom)
    with pytest.raises(ValueError, match="boom"):
        list(gpu_decode.DeviceAhead(loader, CPU))


def test_device_ahead_copies_worker_batches(tmp_path, write_video):
    """With copy=True, the workers' decoded batches come through whole, in order and on the given
    device (the "meta" device stands in for a GPU: the copy happens, with no data moved)."""
    frames = np.random.default_rng(2).integers(0, 255, (20, 24, 32, 3))
    paths = [write_video(tmp_path, f"v_Cls{k}_g01_c01", frames, fmt="jpeg") for k in range(5)]
    loader = hf.make_loader(hf.ClipDataset(paths, range(5), True, 8, 4), 2, False, 0)
    direct, ahead = list(loader), list(gpu_decode.DeviceAhead(loader, CPU, copy=True))
    assert [b["label"].tolist() for b in ahead] == [[0, 1], [2, 3], [4]]
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(direct, ahead))
    moved = list(gpu_decode.DeviceAhead(loader, torch.device("meta"), copy=True))
    assert [(b["video"].device.type, b["video"].shape) for b in moved] == \
        [("meta", a["video"].shape) for a in direct] and all(b["label"].device == CPU for b in moved)
