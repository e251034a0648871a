"""The steps both training scripts and both test scripts share, each with explicit arguments.

Device and DDP set-up, the fine-tuning wrapper, one epoch of training, the clip-level evaluation,
checkpoints, and the scoring of frames, windows and whole videos. The scripts own their flow: they
build the data, model and optimizer and run the epoch loop themselves. Both models are ResNets with
the same attribute names (conv1, bn1, relu, maxpool, layer1-4, avgpool, fc), so `FineTune` runs
either the way the assignment does: the frozen stem and blocks under no_grad, the top with gradients.
"""
import csv
import json
import os
import pickle
import signal
import zipfile
from contextlib import nullcontext

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import helperFunctions as hf
from utils import atomic_write
from video_io import check_data_root

MIN_TRAIN_BATCH = 2  # BatchNorm in training mode needs two samples once layer4's maps are 1x1
POSTFIX_EVERY = 20   # steps between progress-bar updates (each reads the device's running sums)
TOP_K = (1, 5, 10)


# ----------------------------------------------------------------------------- data, device, DDP

def split_lists(data_root: str, split: int, val_groups: int = 0):
    """(class_list, train, val, test) of a split, each (paths, labels), after checking the data root;
    val holds the last `val_groups` groups of every class of the train list. A wrong root, a missing or
    malformed split file, or too few groups to hold out end the script with one line saying so."""
    try:
        check_data_root(data_root)
        return hf.getUCF101_subsets(data_root, split, val_groups)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--data-root {data_root}: {e}") from None


def setup(device_name: str = "auto", seed: int = 0):
    """Seed, pick the device and join the process group when launched by torchrun.

    Returns (device, rank, world_size). CUDA when present (one GPU per process under torchrun),
    else CPU; distributed runs use nccl on GPU and gloo on CPU.
    """
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    torch.manual_seed(seed)
    return device, rank, world


def autocast(device: torch.device):
    """bf16 autocast on GPU (no loss scaling needed, unlike fp16); full fp32 on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def all_reduce_sum(values: list, device: torch.device) -> list:
    """Sum a list of numbers over all processes (a no-op when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def interruptible(main):
    """Run main(args); on Ctrl-C/SIGTERM say what was kept and how to resume instead of a traceback."""
    def run(args):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            return main(args)
        except KeyboardInterrupt:
            raise SystemExit(f"\ninterrupted: the last completed epoch is in {args.out}/checkpoint.pt; "
                             f"run the same command with --resume to continue") from None
        finally:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
    return run


# ----------------------------------------------------------------------------- the model

def blocks(model: nn.Module, layer4_blocks: int | None = None) -> list:
    """The network in forward order as (name, module) pairs, up to the pooling layer. layer4_blocks
    keeps only the first blocks of layer4: the assignment drops layer4[1:] of the 3D ResNet to fit a
    2018 GPU's memory."""
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


def place(net: FineTune, device: torch.device, world: int):
    """Move the model to the device (channels-last on GPU: faster on tensor cores) and wrap it in DDP
    when distributed. Returns (the model to call, its trainable parameters)."""
    net = net.to(device)
    if device.type == "cuda":
        video = any(p.dim() == 5 for p in net.parameters())
        net = net.to(memory_format=torch.channels_last_3d if video else torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    return net, params


def input_stats(ckpt: dict):
    """(mean, std) to normalise a checkpoint's inputs with: ImageNet for the single-frame model; Kinetics
    or Hara's own for 3D."""
    if ckpt["kind"] == "single_frame":
        return hf.IMAGENET_MEAN, hf.IMAGENET_STD
    if ckpt.get("preprocess", "assignment") == "hara":  # pixels 0-255 minus the ActivityNet mean, no std
        return tuple(m / 255 for m in hf.HARA_MEAN), (1 / 255,) * 3
    return hf.KINETICS_MEAN, hf.KINETICS_STD


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: str, state: dict) -> None:
    """torch.save atomically: a crash never leaves half a checkpoint."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str, kind: str | None = None) -> dict:
    """Load a checkpoint of save_checkpoint with weights_only=True; ValueError / FileNotFoundError naming
    the file when it is missing, partial or corrupt, or holds the other model `kind` ("single_frame", "3d")."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # save_checkpoint writes zip files: a pickle is someone else's
        raise ValueError(f"{path} is corrupt or was not written by this repo's training scripts: it holds "
                         f"more than tensors and plain values ({str(e).splitlines()[-1][:200]})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is partial or corrupt and cannot be loaded ({str(e).split('. ')[0][:200]}); "
                         f"delete it or use another checkpoint") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path} is not a checkpoint written by this repo's training scripts")
    if ckpt.get("kind") == "2d":  # the single-frame model's name in checkpoints written before
        ckpt["kind"] = "single_frame"
    if kind and ckpt.get("kind") != kind:
        script = ("train_3d.py / test_3d.py" if ckpt.get("kind") == "3d"
                  else "train_single_frame.py / test_single_frame.py")
        raise ValueError(f"{path} holds a {ckpt.get('kind')} model ({ckpt.get('arch')}), not a {kind} one; "
                         f"use it with {script}")
    ckpt.setdefault("split", int(ckpt.get("args", {}).get("split", 1)))  # older checkpoints: from their args
    ckpt.setdefault("val_groups", 0)
    return ckpt


def resume(path: str, net: FineTune, optimizer: torch.optim.Optimizer, meta: dict, rank: int = 0):
    """Load the weights, optimizer state and history of the checkpoint at `path`, when there is one, into
    `net` (the FineTune model, not its DDP wrapper) and `optimizer`. Returns (epochs done, history). Stops
    with a message when it is unreadable or was trained otherwise (model, classes, split, validation)."""
    if not os.path.exists(path):
        if rank == 0:
            print(f"--resume: no checkpoint in {os.path.dirname(path)} yet, starting from scratch")
        return 0, []
    try:
        ckpt = load_checkpoint(path, meta["kind"])
    except ValueError as e:  # a message, not a traceback; the file stays for the user to look at
        raise SystemExit(f"--resume: {e}. To start over instead, move it away or use another --out") from None
    def shape(m):  # the model's architecture, classes and width (1 unless --widen-factor said otherwise)
        return f"{m['arch']} with {m['num_classes']} classes" + (
            f" at --widen-factor {m['widen_factor']:g}" if m.get("widen_factor", 1) != 1 else "")
    if shape(ckpt) != shape(meta):
        raise SystemExit(f"{path} holds {shape(ckpt)}; this run asks for {shape(meta)}: use another --out")
    if (ckpt["split"], ckpt["val_groups"]) != (meta["split"], meta["val_groups"]):
        raise SystemExit(f"{path} was trained on split {ckpt['split']} with --val-groups {ckpt['val_groups']}; "
                         f"this run asks for split {meta['split']} with --val-groups {meta['val_groups']}: "
                         f"use another --out")
    net.model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"])  # augmentation does not draw from it, but user code might
    if rank == 0:
        print(f"resumed from {path} after epoch {ckpt['epoch']}")
    return ckpt["epoch"], ckpt["history"]


def kept(path: str, epoch: int) -> str:
    """What a run stopped during epoch `epoch` (0-based) leaves behind, for its error message."""
    return (f"{path} (epoch {epoch}) is kept: add --resume to continue from it" if epoch
            else "no epoch had completed, so there is no checkpoint yet")


def write_log(out: str, args, history: list) -> None:
    """args.json (the run's flags) and log.csv (one row per epoch; the history is kept in the checkpoint,
    so a resumed run's log is whole)."""
    with atomic_write(os.path.join(out, "args.json")) as tmp, open(tmp, "w") as f:
        json.dump(vars(args), f, indent=2)
    with atomic_write(os.path.join(out, "log.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


# ----------------------------------------------------------------------------- one epoch

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


def too_small(n: int, device: torch.device) -> bool:
    """Whether a training batch of `n` samples (on this process) is too small to step on: true on every
    process when it is true on any, so that all of them skip the same steps (a lone step would hang DDP)."""
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([n], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        n = int(t.item())
    return n < MIN_TRAIN_BATCH


def merge_batches(a: dict, b: dict) -> dict:
    """One batch of the samples of collated batches a and b (uint8 videos of one shape)."""
    return {**b, **{k: torch.cat([a[k], b[k]]) for k in ("video", "label", "index")}, "failed": []}


def _epoch(model, batches, device, mean, std, failures, optimizer, desc, rank):
    """train_one_epoch and evaluate: one pass, sums on the device (read every POSTFIX_EVERY steps:
    reading them each step would make the CPU wait for the GPU instead of preparing the next batch)."""
    training = optimizer is not None
    model.train(training)
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    carry = None  # a training batch too small to step on alone, waiting for the next one
    bar = tqdm(batches, desc=desc, leave=False, disable=rank != 0, dynamic_ncols=True)
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
            x = hf.normalize(batch["video"].to(device, non_blocking=True), mean, std)
            y = batch["label"].to(device, non_blocking=True)
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
            if step % POSTFIX_EVERY == 0 and rank == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / max(n, 1):.3f}", acc=f"{correct.item() / max(n, 1):.3f}")
    dropped = len(carry["label"]) if carry else 0
    loss_sum, correct, n, dropped = all_reduce_sum([loss_sum.item(), correct.item(), n, dropped], device)
    return {"loss": loss_sum / max(n, 1), "acc": correct / max(n, 1), "n": int(n), "dropped": int(dropped)}


def train_one_epoch(model, optimizer, batches, device, mean, std, failures, desc="train", rank=0) -> dict:
    """Train on every batch of `batches` (uint8 videos, normalised here on the device). A batch of fewer
    than MIN_TRAIN_BATCH readable videos (the last one, or one thinned by unreadable videos) is merged
    into the next, on every process alike; one left at the end is dropped. Returns {"loss", "acc", "n",
    "dropped"} summed over all processes."""
    return _epoch(model, batches, device, mean, std, failures, optimizer, desc, rank)


def evaluate(model, batches, device, mean, std, failures, desc="test", rank=0) -> dict:
    """Clip-level loss and accuracy over `batches` (one clip or frame per video); as train_one_epoch."""
    return _epoch(model, batches, device, mean, std, failures, None, desc, rank)


def epoch_row(epoch: int, tr: dict, te: dict, failures: FailureLog, device, seconds: float) -> dict:
    """One epoch's line of log.csv (failures summed over all processes)."""
    return {"epoch": epoch + 1, "train_loss": round(tr["loss"], 5), "train_acc": round(tr["acc"], 5),
            "test_clip_loss": round(te["loss"], 5), "test_clip_acc": round(te["acc"], 5),
            "failed_videos": int(all_reduce_sum([failures.count], device)[0]), "seconds": round(seconds, 1)}


def print_epoch(row: dict, epochs: int, dropped: int, sample: str) -> None:
    """The epoch's summary line; `sample`: what the clip-level test scores of each video ("frame", "clip")."""
    print(f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
          f"test (clip-level: one {sample} per video) loss {row['test_clip_loss']:.4f} acc "
          f"{row['test_clip_acc']:.4f}  skipped {row['failed_videos']}  {row['seconds']}s"
          + (f"  ({dropped} left over in a last batch too small to train on)" if dropped else ""), flush=True)
