"""Decoding training clips on the GPU (`--decode device`): the loader workers only read JPEG bytes from
the compact store; nvJPEG decodes them and `roi_align` crops, flips and resizes them on the device.

Only the training scripts import this module. Measured by benchmark.py on an H200 with 16 cores, the
single-frame model's loader is CPU-bound and trains 1.4x faster this way (7,365 vs 5,322 frames/s);
the 3D model keeps the GPU busy, so nvJPEG's share of it costs more than it saves (606 vs 701 clips/s):
`choose_decode` picks it for single frames only.
"""
import queue
import threading
from contextlib import nullcontext

import numpy as np
import torch

import helperFunctions as hf
from video_io import VideoReadError, read_jpeg_frames, resolve_video

PREFETCH_DEPTH = 2  # batches decoded ahead of the training step


def choose_decode(decode: str, device: torch.device, paths, frames: int) -> str:
    """Resolve --decode: "worker" (in the loader processes, any format) or "device" (nvJPEG on the GPU,
    from the compact store only); "auto": device for single frames on a GPU when every video has a
    compact-store copy. Stops with a message when "device" is asked for and a copy is missing."""
    if decode == "worker" or (decode == "auto" and (device.type != "cuda" or frames > 1)):
        return "worker"
    missing = []
    for p in paths:
        try:
            if resolve_video(p)[0] != "jpeg":
                missing.append(p)
        except VideoReadError:  # no copy at all: the loader will name it and skip it
            pass
    if not missing:
        return "device"
    if decode == "device":
        raise SystemExit(f"--decode device reads the compact store only, and {len(missing)} of the {len(paths)} "
                         f"videos have no copy in it (e.g. {missing[0]}): run python prepare_data.py "
                         f"--data-root ROOT first, or use --decode worker")
    return "worker"


def load_clip_jpeg(path: str, augment: bool, frames: int, rng: np.random.Generator) -> tuple:
    """The workers' half: one random clip's JPEG byte strings and its augmentation, nothing decoded.

    The random draws are those of `hf.load_clip`, in the same order, so both paths train on the same
    clips, crops, flips and brightness. Returns (list of `frames` uint8 byte arrays, Augment with its
    crop filled in: (y, x, h, w) in source pixels, the whole frame when augmentation drew none).
    """
    bufs, idx, (height, width) = read_jpeg_frames(path, lambda n: hf.clip_indices(n, frames, rng))
    for k, b in zip(idx, bufs):  # a truncated frame would fail the whole batch's decode on the GPU
        if len(b) < 4 or b[0] != 0xFF or b[1] != 0xD8 or b[-2] != 0xFF or b[-1] != 0xD9:
            raise VideoReadError(path, f"frame {k} is not a complete JPEG (no start or end marker)")
    aug = hf.draw_augment(rng, height, width) if augment else hf.Augment()
    aug.crop = aug.crop or (0, 0, height, width)
    return bufs, aug


class JpegClipDataset(hf.ClipDataset):
    """hf.ClipDataset's samples left undecoded: the JPEG bytes of the clip and its augmentation."""

    def load(self, path: str, rng: np.random.Generator) -> dict:
        bufs, aug = load_clip_jpeg(path, self.augment, max(self.frames, 1), rng)
        return {"jpeg": bufs, "box": aug.crop + (int(aug.flip),), "size": self.size, "single": self.frames == 1,
                "brightness": aug.brightness, "path": path}


def collate_jpeg(samples: list) -> dict:
    """hf.collate for JpegClipDataset: "jpeg" uint8 (n_bytes,) all the batch's JPEG frames back to back
    (one tensor: one shared-memory transfer, not B x T), "offsets" (B * T + 1,), "box" (B, 5) crop
    y, x, h, w and flip, "brightness" (B,), "size", "single", "path", plus hf.collate's fields."""
    ok = [s for s in samples if "failed" not in s]
    bufs = [b for s in ok for b in s["jpeg"]]
    return {"jpeg": torch.from_numpy(np.concatenate(bufs)) if bufs else torch.empty(0, dtype=torch.uint8),
            "offsets": torch.from_numpy(np.cumsum([0] + [len(b) for b in bufs])),
            "box": torch.tensor([s["box"] for s in ok]).reshape(-1, 5),
            "brightness": torch.tensor([s["brightness"] for s in ok], dtype=torch.int16),
            "size": ok[0]["size"] if ok else 0, "single": ok[0]["single"] if ok else True,
            "path": [s["path"] for s in ok],
            "label": torch.tensor([s["label"] for s in ok], dtype=torch.int64),
            "index": torch.tensor([s["index"] for s in ok], dtype=torch.int64),
            "failed": [(s["failed"], s["error"]) for s in samples if "failed" in s]}


def decode_on_device(batch: dict, device: torch.device) -> dict:
    """The device's half: decode a collated JpegClipDataset batch on `device` (nvJPEG on a GPU) and crop,
    flip, resize and shift its brightness there, as `hf.apply_augment` does on the CPU.

    Returns the batch as hf.collate gives it, with "video" uint8 (B, T, S, S, 3) (single frames:
    (B, S, S, 3)) on `device`. A clip whose frames fail to decode is dropped and listed in "failed",
    like a video a worker cannot read: one bad video never costs the batch.
    """
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.ops import roi_align

    bufs = list(torch.tensor_split(batch["jpeg"], batch["offsets"][1:-1]))
    B, S = len(batch["label"]), batch["size"]
    T = len(bufs) // max(B, 1)
    try:
        imgs = decode_jpeg(bufs, mode=ImageReadMode.RGB, device=device) if B else []
        ok = list(range(B))
    except RuntimeError:  # nvJPEG fails the whole batch for one bad image: find the clip(s) by decoding each
        imgs, ok = [], []
        for b in range(B):
            try:
                imgs += decode_jpeg(bufs[b * T:(b + 1) * T], mode=ImageReadMode.RGB, device=device)
                ok.append(b)
            except RuntimeError as e:
                batch["failed"].append((batch["path"][b], f"{batch['path'][b]}: a frame is not a valid JPEG "
                                                          f"(decoding on {device}: {str(e)[:200]})"))
    box = batch["box"][ok]
    # roi_align with one sample per output pixel and aligned=True samples each crop at the pixel
    # centres (x + (j + 0.5) * w / S - 0.5), bilinearly: cv2.resize's INTER_LINEAR. One call crops and
    # resizes every frame of the batch; frames are grouped by size (UCF-101's are all 320x240).
    out = torch.empty(len(imgs), 3, S, S, device=device)
    groups = {}
    for i, im in enumerate(imgs):
        groups.setdefault(tuple(im.shape), []).append(i)
    for idx in groups.values():
        y, x, h, w = box[torch.tensor(idx) // T, :4].to(device=device, dtype=torch.float32).unbind(1)
        rois = torch.stack([torch.arange(len(idx), device=device, dtype=torch.float32), x, y, x + w, y + h], 1)
        frames = torch.stack([imgs[i] for i in idx]).float()
        out[idx] = roi_align(frames, rois, (S, S), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    keep = torch.tensor(ok, dtype=torch.int64)
    shift = batch["brightness"][keep].to(device=device, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    video = (out.round_().clamp_(0, 255).view(len(ok), T, 3, S, S) + shift).clamp_(0, 255).to(torch.uint8)
    flip = box[:, 4].bool().to(device)
    video = torch.where(flip[:, None, None, None, None], video.flip(-1), video)
    video = video.permute(0, 1, 3, 4, 2).contiguous()  # (B, T, S, S, 3), as the workers hand it over
    return {"video": video[:, 0] if batch["single"] else video, "label": batch["label"][keep],
            "index": batch["index"][keep], "failed": batch["failed"]}


class DeviceAhead:
    """Iterate a loader with every batch put on the device one step ahead, in a thread (on its own
    CUDA stream on a GPU): batch k+1 is read and decoded (JpegClipDataset batches: `decode_on_device`,
    nvJPEG's host-side work included) or copied (hf.collate batches, with `copy=True`) while the model
    trains on batch k, rather than queued behind it in the training stream.
    """

    _END = object()

    def __init__(self, loader, device, depth=PREFETCH_DEPTH, copy=False):
        self.loader, self.device, self.depth, self.copy = loader, device, depth, copy
        self.dataset, self.sampler = loader.dataset, loader.sampler

    def __len__(self):
        return len(self.loader)

    @staticmethod
    def _put(out, stop, item):
        """Queue `item` unless the training loop has stopped; True when it was queued."""
        while not stop.is_set():  # a bounded queue: stay `depth` batches ahead, no more
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _work(self, out, stop, stream):
        try:
            with torch.cuda.stream(stream) if stream is not None else nullcontext():
                for batch in self.loader:
                    if "jpeg" in batch:
                        batch = decode_on_device(batch, self.device)
                    elif self.copy:
                        batch["video"] = batch["video"].to(self.device, non_blocking=True)
                    if stream is not None:
                        batch["ready"] = torch.cuda.Event()
                        batch["ready"].record(stream)
                    if not self._put(out, stop, batch):
                        return
        except Exception as e:  # handed to the training thread, which raises it
            self._put(out, stop, e)
            return
        self._put(out, stop, self._END)

    def __iter__(self):
        out, stop = queue.Queue(maxsize=self.depth), threading.Event()
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        thread = threading.Thread(target=self._work, args=(out, stop, stream), daemon=True)
        thread.start()
        try:
            while (batch := out.get()) is not self._END:
                if isinstance(batch, Exception):
                    raise batch
                if "ready" in batch:  # the training stream waits for the decode stream, not the CPU
                    main = torch.cuda.current_stream(self.device)
                    main.wait_event(batch.pop("ready"))
                    if batch["video"].is_cuda:
                        batch["video"].record_stream(main)  # freed memory is reused only after training used it
                yield batch
        finally:
            stop.set()
            thread.join(timeout=10)  # it exits within its current loader step
