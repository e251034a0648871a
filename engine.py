"""Training and evaluation code shared by train_single_frame.py and train_3d.py (and the test scripts).

Both models are ResNets with the same attribute names (conv1, bn1, relu, maxpool, layer1-4,
avgpool, fc), so one `FineTune` wrapper runs either the way the assignment does: the frozen stem
and blocks under no_grad, the chosen top blocks and fc with gradients.
"""
import csv
import json
import os
import pickle
import signal
import time
import zipfile
from contextlib import nullcontext

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import helperFunctions as hf

MIN_TRAIN_BATCH = 2  # BatchNorm in training mode needs two samples once layer4's maps are 1x1


# ----------------------------------------------------------------------------- command line

def add_common_args(p, batch_size, arch, out, frames, size=224, train=False):
    """The flags every script shares; defaults are the assignment's settings. `train`: also the
    training scripts' flags."""
    p.add_argument("--data-root", default="data/toy",
                   help="folder with ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or UCF-101-jpeg/")
    p.add_argument("--split", type=int, default=1, choices=[1, 2, 3])
    p.add_argument("--batch-size", type=int, default=batch_size)
    if train:
        p.add_argument("--epochs", type=int, default=10)
        p.add_argument("--lr", type=float, default=1e-4)
        p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
        p.add_argument("--decode", choices=["auto", "worker", "device"], default="auto",
                       help="where training clips are decoded and augmented: in the loader processes (worker, "
                            "any video format) or on the GPU from the compact store (device: nvJPEG); auto: "
                            "device for single frames on a GPU when every video is in the compact store")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count()), help="data loading processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=out, help="run folder: checkpoint, logs, predictions")
    p.add_argument("--arch", default=arch)
    p.add_argument("--size", type=int, default=size, help="input height and width")
    p.add_argument("--frames", type=int, default=frames,
                   help="frames per clip" + (" (the single-frame model: 1)" if frames == 1 else ""))
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--val-groups", type=int, default=0 if train else None,
                   help="hold out the last N groups of every class of the split's train list as a validation "
                        "set " + ("(trained on the rest; 0: the assignment's whole train list)" if train else
                                  "(default: as the checkpoint was trained)"))


SUBSETS = ("test", "val")  # what the test scripts score: the split's test list, or the held-out groups


def add_test_args(p):
    """The flags both test scripts add: which videos to score and the test-time views."""
    p.add_argument("--subset", choices=SUBSETS, default="test",
                   help="test: the split's test list; val: the --val-groups held out of its train list")
    p.add_argument("--crops", choices=hf.TEST_CROPS, default="center",
                   help="center: the whole frame resized (the assignment's); three: three squares along the "
                        "longer side; predictions averaged over views like frames or windows")
    p.add_argument("--flip", action="store_true", help="also score every view mirrored")


def training_lists(args):
    """(class_list, train, test) of a training run: the split's train list less the --val-groups
    held out for validation, and its test list (for the clip-level check after each epoch)."""
    load_split(args.data_root, args.split, ())  # the data root and classInd.txt, checked with one clear line
    try:
        class_list, train, val, test = hf.getUCF101_subsets(args.data_root, args.split, args.val_groups)
    except (FileNotFoundError, ValueError) as e:  # a missing or bad split file, or too few groups to hold out
        raise SystemExit(f"--data-root {args.data_root}: {e}") from None
    if args.val_groups and int(os.environ.get("RANK", 0)) == 0:
        print(f"--val-groups {args.val_groups}: {len(val[0])} videos of split {args.split}'s train list held out "
              f"for validation, training on the other {len(train[0])}", flush=True)
    return class_list, train, test


def load_split(data_root, split, subsets=("train", "test")):
    """(class_list, (paths, labels) for each of `subsets`) of a split, after checking the data root.
    A wrong root or a missing or malformed split file ends the script with one line saying so."""
    try:
        hf.check_data_root(data_root)
        class_list = hf.read_class_list(data_root)
        return (class_list,) + tuple(hf.read_split(data_root, split, s, class_list) for s in subsets)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--data-root {data_root}: {e}") from None


# ----------------------------------------------------------------------------- device, AMP, DDP

def setup(device_name="auto", seed=0):
    """Seed, pick the device and join the process group when launched by torchrun.

    Returns (device, rank, world_size). CUDA when present (one GPU per process under torchrun),
    else CPU; distributed runs use nccl on GPU and gloo on CPU.
    """
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if device_name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    torch.manual_seed(seed)
    return device, rank, world


def autocast(device):
    """bf16 autocast on GPU (no loss scaling needed, unlike fp16); full fp32 on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def all_reduce_sum(values, device):
    """Sum a list of numbers over all processes (a no-op when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ----------------------------------------------------------------------------- model wrapper

def blocks(model, layer4_blocks=None):
    """The network in forward order as (name, module) pairs, up to the pooling layer.

    layer4_blocks keeps only the first blocks of layer4: the assignment drops layer4[1:] of the
    3D ResNet to fit a 2018 GPU's memory.
    """
    out = [(n, getattr(model, n)) for n in ("conv1", "bn1", "relu", "maxpool")]
    for i in range(1, 5):
        layer = getattr(model, f"layer{i}")
        n = len(layer) if i < 4 or layer4_blocks is None else layer4_blocks
        out += [(f"layer{i}.{j}", layer[j]) for j in range(n)]
    return out


class FineTune(nn.Module):
    """Fine-tune the top of a ResNet: blocks before `train_from` are frozen, the rest and fc train.

    Frozen blocks run under no_grad (no activations kept for backward, the assignment's memory
    trick) and stay in eval mode, so their BatchNorm layers keep the pretrained running statistics
    instead of drifting towards small, highly correlated UCF-101 batches they cannot adapt to.

    forward: (B, 3, H, W) or (B, 3, T, H, W) -> logits (B, num_classes).
    """

    def __init__(self, model, train_from="layer4.2", layer4_blocks=None):
        super().__init__()
        self.model, self.layer4_blocks = model, layer4_blocks
        names = [n for n, _ in blocks(model, layer4_blocks)]
        if train_from in ("all", "conv1"):
            train_from = names[0]
        if train_from == "fc":
            self.n_frozen = len(names)
        elif train_from in names or f"{train_from}.0" in names:
            self.n_frozen = names.index(train_from if train_from in names else f"{train_from}.0")
        else:
            raise ValueError(f"--train-from {train_from!r}: expected one of all, fc, "
                             + ", ".join(n for n in names if "layer" in n))
        for p in model.parameters():
            p.requires_grad_(False)
        bl = [m for _, m in blocks(model, layer4_blocks)]
        # plain lists, not submodules: the weights stay registered once, under self.model
        self.frozen, self.trained = bl[:self.n_frozen], bl[self.n_frozen:]
        for m in self.trained + [model.fc]:
            m.requires_grad_(True)

    def train(self, mode=True):
        super().train(mode)
        for m in self.frozen:
            m.eval()
        return self

    def forward(self, x):
        with torch.no_grad():
            for m in self.frozen:
                x = m(x)
        for m in self.trained:
            x = m(x)
        return self.model.fc(torch.flatten(self.model.avgpool(x), 1))


def build_model(kind, arch, num_classes, layer4_blocks=None):
    """A randomly initialised 2D (torchvision) or 3D (Hara) ResNet."""
    if kind == "3d":
        import resnet_3d
        return resnet_3d.build(arch, num_classes=num_classes, layer4_blocks=layer4_blocks)
    import torchvision
    if not hasattr(torchvision.models, arch):
        raise ValueError(f"unknown 2D architecture {arch!r} (try resnet18, resnet50)")
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, state):
    """torch.save atomically: write a temporary file, then rename (a crash never leaves half a file)."""
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, kind=None):
    """Load a checkpoint written by save_checkpoint with weights_only=True; clear errors when it is
    missing, partial or corrupt, or is of the other model kind ("2d" or "3d")."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # save_checkpoint writes zip files, so a legacy pickle is garbage or someone else's file
        raise ValueError(f"{path} is corrupt or was not written by this repo's training scripts: it holds "
                         f"more than tensors and plain values ({str(e).splitlines()[-1][:200]})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is partial or corrupt and cannot be loaded ({str(e).split('. ')[0][:200]}); "
                         f"delete it or use another checkpoint") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path} is not a checkpoint written by this repo's training scripts")
    if kind and ckpt.get("kind") != kind:
        script = "train_3d.py / test_3d.py" if ckpt.get("kind") == "3d" else "train_single_frame.py / test_single_frame.py"
        raise ValueError(f"{path} holds a {ckpt.get('kind')} model ({ckpt.get('arch')}), not a {kind} one; "
                         f"use it with {script}")
    return ckpt


def trained_split(ckpt):
    """The split a checkpoint was trained on (older checkpoints: from the arguments they saved)."""
    return int(ckpt.get("split", ckpt.get("args", {}).get("split", 1)))


def model_from_checkpoint(ckpt):
    """Rebuild the trained network of a checkpoint (eval mode, on CPU)."""
    model = build_model(ckpt["kind"], ckpt["arch"], ckpt["num_classes"], ckpt.get("layer4_blocks"))
    model.load_state_dict(ckpt["model"])
    return FineTune(model, "fc", ckpt.get("layer4_blocks")).eval()


def input_stats(ckpt_or_args):
    """(mean, std) to normalise inputs with: ImageNet for 2D; Kinetics or Hara's own for 3D."""
    get = ckpt_or_args.get if isinstance(ckpt_or_args, dict) else lambda k, d=None: getattr(ckpt_or_args, k, d)
    if get("kind") == "2d":
        return hf.IMAGENET_MEAN, hf.IMAGENET_STD
    if get("preprocess", "assignment") == "hara":  # pixels 0-255 minus the ActivityNet mean, no std
        return tuple(m / 255 for m in hf.HARA_MEAN), (1 / 255,) * 3
    return hf.KINETICS_MEAN, hf.KINETICS_STD


# ----------------------------------------------------------------------------- loops

class FailureLog:
    """Log each unreadable video once (with its file name) and count failures per epoch."""

    def __init__(self, rank=0):
        self.seen, self.count, self.rank = set(), 0, rank

    def add(self, failed):
        for path, err in failed:
            self.count += 1
            if path not in self.seen and self.rank == 0:
                tqdm.write(f"skipping unreadable video: {err}")
            self.seen.add(path)


def to_input(batch, device, mean, std):
    """Copy a uint8 batch to the device and normalise it there. Returns (x, y)."""
    x = batch["video"].to(device, non_blocking=True)
    x = hf.normalize(x, batch["brightness"].to(device, non_blocking=True), mean, std)
    return x, batch["label"].to(device, non_blocking=True)


def run_epoch(model, loader, device, mean, std, failures, optimizer=None, desc="", rank=0, copy_ahead=False):
    """One pass over `loader`: trains when an optimizer is given, else evaluates (clip-level).

    `copy_ahead`: copy each worker-decoded batch to the device one step ahead, on a side stream
    (benchmark.py measures it against the default, the copy in the training stream).
    A training batch of fewer than MIN_TRAIN_BATCH readable videos (the last one of an epoch, or one
    thinned by unreadable videos) is merged into the next batch, on every process alike; one left at
    the end of the epoch is dropped. Returns {"loss", "acc", "n", "dropped"} summed over all processes.
    """
    training = optimizer is not None
    model.train(training)
    # Sums stay on the device and are read every 20 steps: reading them each step would make the CPU
    # wait for the GPU, so it could not prepare (or, with --decode device, decode) the next batch meanwhile.
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    if getattr(loader.dataset, "decode", "worker") == "device" or copy_ahead:  # device: workers only read JPEGs
        loader = hf.DeviceAhead(loader, device, copy=copy_ahead)
    bar = tqdm(loader, desc=desc, leave=False, disable=rank != 0, dynamic_ncols=True)
    carry = None  # a training batch too small to step on alone, waiting for the next one
    with torch.set_grad_enabled(training):
        for step, batch in enumerate(bar):
            failures.add(batch["failed"])
            if training:
                batch, carry = (merge_batches(carry, batch) if carry else batch), None
                if too_small(len(batch["label"]), device):  # BatchNorm needs 2+ samples; ranks agree
                    carry = batch
                    continue
            elif len(batch["label"]) == 0:  # every video of this batch failed; nothing to score
                continue
            x, y = to_input(batch, device, mean, std)
            with autocast(device):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
            if step % 20 == 0 and rank == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / max(n, 1):.3f}", acc=f"{correct.item() / max(n, 1):.3f}")
    dropped = len(carry["label"]) if carry else 0
    loss_sum, correct, n, dropped = all_reduce_sum([loss_sum.item(), correct.item(), n, dropped], device)
    return {"loss": loss_sum / max(n, 1), "acc": correct / max(n, 1), "n": int(n), "dropped": int(dropped)}


def too_small(n, device):
    """Whether a training batch of `n` samples (on this process) is too small to step on: true on every
    process when it is true on any, so that all of them skip the same steps (a lone step would hang DDP)."""
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([n], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        n = int(t.item())
    return n < MIN_TRAIN_BATCH


def merge_batches(a, b):
    """One batch of the samples of collated batches a and b (uint8 videos of one shape)."""
    out = {k: torch.cat([a[k], b[k]]) for k in ("video", "brightness", "label", "index")}
    return {**b, **out, "failed": []}


def write_log(out, history):
    """Per-epoch metrics as log.csv (history is kept in the checkpoint, so a resumed run's log is whole)."""
    with open(os.path.join(out, "log.csv.tmp"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    os.replace(os.path.join(out, "log.csv.tmp"), os.path.join(out, "log.csv"))


def fit(args, net, optimizer, train_loader, test_loader, device, rank, meta):
    """The epoch loop of both training scripts: train, test (clip-level), checkpoint, log.

    `net` is the FineTune model (wrapped in DDP when distributed); `meta` holds what a checkpoint
    needs besides weights (kind, arch, class_list, ...). Resumes from `<out>/checkpoint.pt` when
    args.resume is set. Returns the history (one dict per epoch).
    """
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    inner = net.module if hasattr(net, "module") else net
    start, history = 0, []
    if args.resume and os.path.exists(ckpt_path):
        try:
            ckpt = load_checkpoint(ckpt_path, meta["kind"])
        except ValueError as e:  # a message, not a traceback; the file stays for the user to look at
            raise SystemExit(f"--resume: {e}. To start over instead, move it away or use another --out") from None
        if ckpt["num_classes"] != meta["num_classes"] or ckpt["arch"] != meta["arch"]:
            raise SystemExit(f"{ckpt_path} holds {ckpt['arch']} with {ckpt['num_classes']} classes; this run "
                             f"asks for {meta['arch']} with {meta['num_classes']}: use another --out")
        trained_on = (trained_split(ckpt), ckpt.get("val_groups", 0))
        if trained_on != (meta["split"], meta["val_groups"]):
            raise SystemExit(f"{ckpt_path} was trained on split {trained_on[0]} with --val-groups {trained_on[1]}; "
                             f"this run asks for split {meta['split']} with --val-groups {meta['val_groups']}: "
                             f"use another --out")
        inner.model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, history = ckpt["epoch"], ckpt["history"]
        torch.set_rng_state(ckpt["rng"])  # augmentation does not draw from it, but user code might
        if rank == 0:
            print(f"resumed from {ckpt_path} after epoch {start}")
    elif args.resume and rank == 0:
        print(f"--resume: no checkpoint in {args.out} yet, starting from scratch")
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "args.json"), "w") as f:
            json.dump(vars(args), f, indent=2)
    mean, std = input_stats(meta)
    failures = FailureLog(rank)
    for epoch in range(start, args.epochs):
        t0, failures.count = time.time(), 0
        train_loader.sampler.set_epoch(epoch)
        try:
            tr = run_epoch(net, train_loader, device, mean, std, failures, optimizer,
                           f"epoch {epoch + 1}/{args.epochs} train", rank)
            te = run_epoch(net, test_loader, device, mean, std, failures, None, "test", rank)
        except torch.cuda.OutOfMemoryError:
            kept = (f"{ckpt_path} (epoch {epoch}) is kept: add --resume to continue from it" if epoch
                    else "no epoch had completed, so there is no checkpoint yet")
            fewer = ", or fewer --layer4-blocks" if hasattr(args, "layer4_blocks") else ""
            raise SystemExit(f"CUDA out of memory at batch size {args.batch_size}: try a smaller --batch-size "
                             f"or a later --train-from (trains fewer blocks){fewer}; {kept}") from None
        n_failed = int(all_reduce_sum([failures.count], device)[0])
        if tr["n"] == 0:  # stop: checkpointing a model that saw no data would only hide the problem
            raise SystemExit(f"none of the {len(train_loader.dataset)} training videos of split {args.split} "
                             f"could be read (each is named above with the reason): check --data-root "
                             f"{args.data_root}, or convert the videos again with prepare_data.py")
        row = {"epoch": epoch + 1, "train_loss": round(tr["loss"], 5), "train_acc": round(tr["acc"], 5),
               "test_clip_loss": round(te["loss"], 5), "test_clip_acc": round(te["acc"], 5),
               "failed_videos": n_failed, "seconds": round(time.time() - t0, 1)}
        history.append(row)
        if rank == 0:
            print(f"epoch {epoch + 1}/{args.epochs}  train loss {tr['loss']:.4f} acc {tr['acc']:.4f}  "
                  f"test (clip-level: one {'frame' if meta['kind'] == '2d' else 'clip'} per video) "
                  f"loss {te['loss']:.4f} acc {te['acc']:.4f}  skipped {n_failed}  {row['seconds']}s"
                  + (f"  ({tr['dropped']} left over in a last batch too small to train on)" if tr["dropped"] else ""),
                  flush=True)
            save_checkpoint(ckpt_path, {**meta, "model": inner.model.state_dict(),
                                        "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                                        "history": history, "args": vars(args), "rng": torch.get_rng_state()})
            write_log(args.out, history)
    return history


def interruptible(main):
    """Run main(args); on Ctrl-C/SIGTERM say what was kept and how to resume instead of a traceback."""
    def run(args):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            return main(args)
        except KeyboardInterrupt:
            out = getattr(args, "out", ".")
            raise SystemExit(f"\ninterrupted: the last completed epoch is in {out}/checkpoint.pt; "
                             f"run the same command with --resume to continue") from None
        finally:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
    return run


def choose_decode(decode, device, paths, frames):
    """Resolve --decode: "worker" (OpenCV in the loader processes, any format) or "device" (nvJPEG on
    the GPU: the workers only read JPEG bytes, which the compact store alone holds).

    auto, measured by benchmark.py on an H200 with 16 cores: the single-frame model's loader is
    CPU-bound and decoding on the GPU trains 1.4x faster (7,365 vs 5,322 frames/s); the 3D model
    keeps the GPU busy, so nvJPEG's share of it costs more than it saves (606 vs 701 clips/s).
    """
    if decode == "worker" or (decode == "auto" and (device.type != "cuda" or frames > 1)):
        return "worker"
    missing = []
    for p in paths:
        try:
            if hf.resolve_video(p)[0] != "jpeg":
                missing.append(p)
        except hf.VideoReadError:  # no copy at all: the loader will name it and skip it
            pass
    if not missing:
        return "device"
    if decode == "device":
        raise SystemExit(f"--decode device reads the compact store only, and {len(missing)} of the {len(paths)} "
                         f"videos have no copy in it (e.g. {missing[0]}): run python prepare_data.py "
                         f"--data-root ROOT first, or use --decode worker")
    return "worker"


def train(args, net, train_set, test_set, device, rank, world, meta):
    """Everything both training scripts do once their data sets and FineTune model exist:
    loaders (one shard per process), device placement, DDP, Adam on the trainable weights, fit."""
    meta = {**meta, "class_list": [str(c) for c in meta["class_list"]],  # plain str: weights_only loads
            "split": args.split, "val_groups": args.val_groups}
    train_set.decode = test_set.decode = choose_decode(args.decode, device, train_set.paths + test_set.paths,
                                                       train_set.frames)
    loader = lambda ds, shuffle: hf.make_loader(ds, args.batch_size, shuffle, args.workers, args.seed, world, rank)
    train_loader, test_loader = loader(train_set, True), loader(test_set, False)
    net = net.to(device)
    if device.type == "cuda":  # NHWC / NDHWC convolutions are faster on tensor cores
        net = net.to(memory_format=torch.channels_last if meta["kind"] == "2d" else torch.channels_last_3d)
    params = [p for p in net.parameters() if p.requires_grad]
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(params, lr=args.lr)
    if rank == 0:
        n_train = sum(p.numel() for p in params)
        print(f"{meta['kind']} {meta['arch']}: {len(train_set)} train / {len(test_set)} test videos, "
              f"{meta['num_classes']} classes, {n_train:,} trained parameters, device {device}, "
              f"decoding in the {'loader workers' if train_set.decode == 'worker' else 'device'}"
              f"{f', {world} processes' if world > 1 else ''}", flush=True)
    return fit(args, net, optimizer, train_loader, test_loader, device, rank, meta)


# ----------------------------------------------------------------------------- full-video testing

def prediction_file(out, video_path):
    """Where a video's saved predictions go: <out>/UCF-101-predictions/<Class>/<video>.hdf5,
    mirroring the dataset as the assignment does."""
    cls = os.path.basename(os.path.dirname(str(video_path)))
    return os.path.join(out, "UCF-101-predictions", cls, hf.video_name(video_path) + ".hdf5")


def save_prediction(path, logits, attrs):
    """Per-video logits (n, C) -> HDF5 dataset `predictions`, atomically; attrs say how they were made."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path + ".tmp", "w") as h:
        h.create_dataset("predictions", data=logits.astype(np.float32))
        h.attrs.update(attrs)
    os.replace(path + ".tmp", path)


def load_prediction(path, attrs):
    """Saved logits of a finished video, or None when absent, unreadable or made another way
    (other checkpoint, mode or stride), so that a rerun resumes but never mixes settings."""
    try:
        with h5py.File(path, "r") as h:
            if any(h.attrs.get(k) != v for k, v in attrs.items()):
                return None
            return h["predictions"][()]
    except (OSError, KeyError):
        return None


def subset_lists(args, ckpt, subset):
    """(class_list, paths, labels) of the videos a test script scores: the split's test list, or
    (subset "val") the groups held out of its train list. Stops with a message when the checkpoint
    was trained on another split or validation set, or the subset is empty. Sets args.val_groups
    to the checkpoint's when it was not given."""
    trained = (trained_split(ckpt), ckpt.get("val_groups", 0))
    if args.val_groups is None:
        args.val_groups = trained[1]
    if (args.split, args.val_groups) != trained:
        raise SystemExit(f"{args.checkpoint} was trained on split {trained[0]} with --val-groups {trained[1]}, "
                         f"not split {args.split} with --val-groups {args.val_groups}: its scores on these "
                         f"videos would not be held out; test it with the settings it was trained with")
    if subset == "test":  # the test list alone: testing never needs the train list
        class_list, test = load_split(args.data_root, args.split, ("test",))
    else:
        load_split(args.data_root, args.split, ())
        try:
            class_list, _, val, _ = hf.getUCF101_subsets(args.data_root, args.split, args.val_groups)
        except (FileNotFoundError, ValueError) as e:  # a missing train list, or too few groups to hold out
            raise SystemExit(f"--data-root {args.data_root}: {e}") from None
    if list(class_list) != list(ckpt["class_list"]):
        raise SystemExit(f"{args.checkpoint} was trained on {ckpt['num_classes']} other classes than the "
                         f"{len(class_list)} of {args.data_root}")
    paths, labels = val if subset == "val" else test
    if len(paths) == 0:
        raise SystemExit(f"--subset {subset} of split {args.split} is empty in {args.data_root}/ucfTrainTestlist: "
                         + ("train with --val-groups N (N > 0) to hold groups out for validation"
                            if subset == "val" else "its test list names no video"))
    return class_list, paths, labels


def test_videos(args, kind, video_logits, attrs):
    """Score every test video of the split; save per-video and consolidated predictions and metrics.

    video_logits(net, video, device, mean, std) maps uint8 (T, H, W, 3) to logits (n, C).
    A video that fails to decode is listed and counted wrong: the denominator is the whole test list.
    Videos whose predictions were saved by an earlier run with the same settings are not recomputed.
    """
    import metrics
    try:
        ckpt = load_checkpoint(args.checkpoint, kind)
    except (FileNotFoundError, ValueError) as e:  # a message, not a traceback: wrong or missing file
        raise SystemExit(f"--checkpoint: {e}") from None
    args.size, args.frames = ckpt["size"], ckpt["frames"]  # test as the model was trained
    subset = getattr(args, "subset", "test")
    class_list, paths, labels = subset_lists(args, ckpt, subset)
    device, _, _ = setup(args.device, args.seed)
    net = model_from_checkpoint(ckpt).to(device)
    mean, std = input_stats(ckpt)
    attrs = {**attrs, "checkpoint_epoch": ckpt["epoch"], "size": args.size, "arch": ckpt["arch"], "split": args.split,
             "subset": subset, "val_groups": args.val_groups, "crops": getattr(args, "crops", "center"),
             "flip": bool(getattr(args, "flip", False))}
    # Only each video's aggregated scores (C,) stay in memory: its logits (frames or windows x C) go to
    # its prediction file, so the process stays flat over thousands of test videos.
    scores = np.full((len(paths), len(class_list)), np.nan, dtype=np.float32)
    todo = []
    for i, p in enumerate(paths):
        lg = load_prediction(prediction_file(args.out, p), attrs)
        if lg is None:
            todo.append(i)
        else:
            scores[i] = metrics.aggregate(lg, args.average)
    print(f"{len(paths)} {subset} videos of split {args.split}: {len(paths) - len(todo)} already scored "
          f"in {args.out}, {len(todo)} to go", flush=True)
    dataset = hf.MultiViewDataset(paths[todo], labels[todo], size=args.size, crops=attrs["crops"], flip=attrs["flip"])
    loader = hf.make_loader(dataset, 1, False, args.workers, args.seed)
    failed, hits, done = {}, np.zeros(3), 0
    bar = tqdm(loader, desc="test videos", dynamic_ncols=True)
    with torch.inference_mode():
        for batch in bar:
            for path, err in batch["failed"]:
                failed[path] = err
                tqdm.write(f"FAILED (counted wrong) {err}")
            if len(batch["label"]) == 0:
                continue
            i = todo[batch["index"][0].item()]
            try:
                with autocast(device):  # every view's rows together: averaged like frames or windows
                    lg = torch.cat([video_logits(net, view, device, mean, std) for view in batch["video"][0]])
                    lg = lg.float().cpu().numpy()
            except torch.cuda.OutOfMemoryError:
                raise SystemExit(f"CUDA out of memory on {paths[i]} ({batch['video'].shape[2]} frames): try a "
                                 f"smaller --batch-size (test_3d.py: or --mode windows); the {done} videos "
                                 f"scored so far are saved in {args.out} and a rerun skips them") from None
            save_prediction(prediction_file(args.out, paths[i]), lg, attrs)
            scores[i] = metrics.aggregate(lg, args.average)
            top = np.argsort(-scores[i])[:10]
            hits += [labels[i] in top[:k] for k in (1, 5, 10)]
            done += 1
            bar.set_postfix_str("running top1/5/10 %.3f/%.3f/%.3f" % tuple(hits / done))

    summary = metrics.summarize(scores, labels, class_list)
    save_results(args.out, paths, labels, scores, class_list, summary, failed, {**attrs, **training_attrs(ckpt, args)})
    if summary["n_failed"] == len(paths):  # all-zero metrics are no result: say so with the exit status
        raise SystemExit(f"none of the {len(paths)} {subset} videos of split {args.split} could be read (each is "
                         f"named above with the reason): check --data-root {args.data_root}")
    return summary


def training_attrs(ckpt, args):
    """How the tested model was made, for the report's methods section (None values left out: HDF5
    attributes cannot hold them)."""
    train = ckpt.get("args", {})
    about = {"checkpoint": os.path.abspath(args.checkpoint), "epochs": ckpt["epoch"], "frames": ckpt["frames"],
             "train_from": ckpt.get("train_from"), "layer4_blocks": ckpt.get("layer4_blocks"),
             "preprocess": ckpt.get("preprocess"), "lr": train.get("lr"), "batch_size": train.get("batch_size"),
             "pretrained": train.get("weights", train.get("kinetics_checkpoint"))}
    return {k: v for k, v in about.items() if v is not None}


def save_results(out, paths, labels, scores, class_list, summary, failed, attrs):
    """Write predictions.h5, metrics.json and confusion_matrix.npy, and print the video-level results."""
    names = [hf.video_name(p) for p in paths]
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "predictions.h5.tmp")
    with h5py.File(tmp, "w") as h:
        h.create_dataset("videos", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
        h.create_dataset("class_list", data=np.array(class_list, dtype=object), dtype=h5py.string_dtype())
        h.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        h.create_dataset("scores", data=scores)
        h.create_dataset("failed", data=np.isnan(scores).all(1))
        h.attrs.update({**attrs, "level": "video"})
    os.replace(tmp, os.path.join(out, "predictions.h5"))
    np.save(os.path.join(out, "confusion_matrix.npy"), summary["confusion"])
    failed_names = [hf.video_name(p) for p in paths if p in failed]
    keys = ("level", "n_videos", "n_failed", "top1", "top5", "top10", "mean_class_accuracy")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({**{k: summary[k] for k in keys}, "failed": failed_names, **attrs}, f, indent=2)

    acc, counts = summary["per_class"]["accuracy"], summary["per_class"]["n_videos"]
    print("\nper-class accuracy (video-level), worst first:")
    for c in np.argsort(np.nan_to_num(acc, nan=2.0), kind="stable"):
        if counts[c]:
            print(f"  {class_list[c]:<28s} {acc[c]:6.3f}  ({counts[c]} videos)")
    if failed_names:
        print(f"{len(failed_names)} videos could not be decoded and count as wrong: {', '.join(failed_names)}")
    print(f"video-level accuracy over {summary['n_videos']} {attrs.get('subset', 'test')} videos "
          f"({summary['n_failed']} failed): "
          f"top1 {summary['top1']:.4f}  top5 {summary['top5']:.4f}  top10 {summary['top10']:.4f}  "
          f"mean class {summary['mean_class_accuracy']:.4f}")
    print(f"saved {out}/predictions.h5, metrics.json, confusion_matrix.npy and UCF-101-predictions/")
