"""The steps both training scripts share, each with explicit arguments.

Their flags, the device (DDP, precision), the fine-tuning wrapper, one epoch of training and of
clip-level evaluation, and checkpoints with the run identity that --resume checks. The scripts own
their flow: they build the data, model and optimizer and run the epoch loop themselves. Both models
are ResNets with the same attribute names (conv1, bn1, relu, maxpool, layer1-4, avgpool, fc), so
`FineTune` runs either the way the assignment does: the frozen stem and blocks under no_grad, the
top with gradients.
"""
import argparse
import csv
import os
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import helperFunctions as hf
import utils
from video_io import check_data_root

MIN_TRAIN_BATCH = 2  # BatchNorm in training mode needs two samples once layer4's maps are 1x1
POSTFIX_EVERY = 20   # steps between progress-bar updates (each reads the device's running sums)
# Frames smaller than this leave layer3 and layer4 convolving one pixel of data amid padding.
MIN_SIZE = 16
MIN_FRAMES = 2       # a clip of one frame is the single-frame model's input
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# torchvision's 2D ResNets: blocks per layer (the 3D ones are in resnet_3d.ARCHS)
ARCHS_2D = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3),
            "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}


# ----------------------------------------------------------------------------- flags

def add_data_flags(p: argparse.ArgumentParser, val_groups_default: int | None) -> None:
    """--data-root, --split, --val-groups: the videos a script reads."""
    p.add_argument("--data-root", required=True,
                   help="folder holding ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or "
                        "UCF-101-jpeg/ (make demo builds a toy one in data/toy)")
    p.add_argument("--split", type=int, choices=[1, 2, 3],
                   default=None if val_groups_default is None else 1,
                   help="official split: trainlist0N.txt / testlist0N.txt"
                        + (" (default: the checkpoint's)" if val_groups_default is None else ""))
    p.add_argument("--val-groups", type=utils.nonnegative_int, default=val_groups_default,
                   help="the last N groups of every class of the train list are held out for "
                        "validation (0: the assignment's whole train list"
                        + ("; default: as the checkpoint was trained)" if val_groups_default is None
                           else ")"))


def add_device_flags(p: argparse.ArgumentParser) -> None:
    """--precision, --workers, --device: how a script runs, not what it computes (precision
    aside)."""
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="arithmetic on the GPU: auto is bf16 where the GPU supports it, else fp16 "
                        "(with a gradient scaler in training); fp32 everywhere on the CPU")
    p.add_argument("--workers", type=utils.nonnegative_int, default=min(8, os.cpu_count()),
                   help="data loading processes (0: load in the main process)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: the GPU when PyTorch sees one, else the CPU")


def add_training_flags(p: argparse.ArgumentParser, batch_size: int, train_from: str,
                       out: str) -> None:
    """The flags both training scripts share, their defaults the assignment's."""
    add_data_flags(p, val_groups_default=0)
    p.add_argument("--train-from", default=train_from,
                   help="first trained block (earlier ones stay frozen): e.g. layer4.2, layer4, "
                        "layer3, ..., all; fc: only the classifier")
    p.add_argument("--frozen-bn", choices=["eval", "train"], default="eval",
                   help="BatchNorm in the frozen blocks while training: eval keeps the pretrained "
                        "statistics; train (the handout's model.train()) normalises with each "
                        "batch's own and updates them")
    p.add_argument("--size", type=utils.int_at_least(MIN_SIZE), default=224,
                   help="input height and width")
    p.add_argument("--batch-size", type=utils.positive_int, default=batch_size,
                   help="samples per optimizer step, in all: under torchrun each process takes its "
                        "share")
    p.add_argument("--lr", type=utils.positive_float, default=1e-4, help="Adam learning rate")
    p.add_argument("--epochs", type=utils.positive_int, default=10,
                   help="passes over the train list (with --resume: the total, counting those "
                        "done)")
    add_device_flags(p)
    p.add_argument("--seed", type=utils.nonnegative_int, default=0,
                   help="seeds the initial weights, the sample order and every augmentation draw")
    p.add_argument("--out", default=out, help="run folder: checkpoint.pt, args.json, log.csv")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out (its flags must match the checkpoint's)")
    again.add_argument("--overwrite", action="store_true",
                       help="start over, replacing the run already in --out")


def block_names(layers: tuple, layer4_blocks: int | None = None) -> list[str]:
    """The blocks of a ResNet with `layers` blocks per layer, in forward order: conv1, layer1.0, ...
    (the stem's bn1, relu, maxpool go with conv1); layer4 cut to its first `layer4_blocks`."""
    counts = list(layers[:3]) + [layers[3] if layer4_blocks is None else layer4_blocks]
    return ["conv1"] + [f"layer{i + 1}.{j}" for i, n in enumerate(counts) for j in range(n)]


def check_train_from(p: argparse.ArgumentParser, train_from: str, arch: str, layers: tuple,
                     layer4_blocks: int | None = None) -> None:
    """Stop with a usage error (exit 2) when --train-from names no block of the architecture."""
    names = block_names(layers, layer4_blocks)
    layers_named = sorted({n.split(".")[0] for n in names if n.startswith("layer")})
    if train_from in ("all", "fc", "conv1", *names, *layers_named):
        return
    kept = "" if layer4_blocks is None else f" with --layer4-blocks {layer4_blocks}"
    p.error(f"argument --train-from: {arch}{kept} has no block {train_from}; its blocks are "
            f"{names[1]} ... {names[-1]}: pass e.g. --train-from {names[-1]} (its last block), "
            f"layer4, all or fc")


# ----------------------------------------------------------------------------- data, device, DDP

def split_lists(data_root: str, split: int, val_groups: int = 0) -> tuple:
    """(class_list, train, val, test) of a split, each (paths, labels), after checking the data
    root; val holds the last `val_groups` groups of every class of the train list. A wrong root, a
    missing or malformed split file, or too few groups to hold out end the script with one line
    saying so."""
    try:
        check_data_root(data_root)
        return hf.getUCF101_subsets(data_root, split, val_groups)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--data-root {data_root}: {e}") from None


@dataclass
class Run:
    """How this process runs: its device, its place among the processes, the arithmetic (bf16, fp16
    or fp32) and, for fp16 training, the gradient scaler."""
    device: torch.device
    rank: int = 0
    world: int = 1
    precision: str = "fp32"
    scaler: torch.amp.GradScaler | None = None


def resolve_precision(precision: str, device: torch.device) -> str:
    """--precision auto -> bf16 on a GPU that supports it, fp16 on an older GPU, fp32 on the CPU."""
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise SystemExit("--precision fp16 needs a GPU: on the CPU use fp32 (or bf16)")
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def setup(device_name: str = "auto", seed: int = 0, precision: str = "auto") -> Run:
    """Seed, pick the device and the arithmetic, and join the process group when launched by
    torchrun.

    CUDA when present (one GPU per process under torchrun), else CPU; distributed runs use nccl on
    GPU and gloo on CPU.
    """
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        # fixed input sizes: let cuDNN pick the fastest kernels
        torch.backends.cudnn.benchmark = True
    else:
        pin_threads()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    torch.manual_seed(seed)
    precision = resolve_precision(precision, device)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return Run(device, rank, world, precision, scaler)


def pin_threads() -> None:
    """The thread count MKL_NUM_THREADS (or OMP_NUM_THREADS) asks for, exactly: torch caps the one
    it reads at import at the machine's CPU count, and the number of threads decides the order of
    a CPU's floating-point sums (make demo's PIN asks for 2 on any machine)."""
    asked = os.environ.get("MKL_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if asked and asked.isdigit() and int(asked) > 0:
        torch.set_num_threads(int(asked))


def autocast(run: Run) -> AbstractContextManager:
    """The run's arithmetic for the forward pass: bf16 or fp16 autocast, or plain fp32."""
    if run.precision == "fp32":
        return nullcontext()
    return torch.autocast(run.device.type,
                          dtype=torch.bfloat16 if run.precision == "bf16" else torch.float16)


def all_reduce_sum(values: list, device: torch.device) -> list:
    """Sum a list of numbers over all processes (a no-op when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def training_loaders(lists: tuple, size: int, frames: int, batch_size: int, workers: int, seed: int,
                     run: Run) -> tuple:
    """(train_loader, test_loader) of split_lists' output: one random augmented clip (frames 1:
    frame) of every training video per epoch, one fixed clip per test video for the clip-level
    check. --batch-size is the batch of an optimizer step over all processes: each takes its
    share."""
    _, (train_paths, train_labels), _, test = lists
    train = hf.ClipDataset(train_paths, train_labels, augment=True, size=size, frames=frames,
                           seed=seed)
    test = hf.ClipDataset(*test, augment=False, size=size, frames=frames, seed=seed)
    return tuple(hf.make_loader(ds, batch_size, shuffle, workers, seed, run.world, run.rank)
                 for ds, shuffle in ((train, True), (test, False)))


def kept_on_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted training run keeps, and how to go on (utils.interruptible)."""
    return (f"the last completed epoch is in {args.out}/checkpoint.pt; run the same command with "
            f"--resume to continue")


# ----------------------------------------------------------------------------- the model

def blocks(model: nn.Module) -> list:
    """The network in forward order as (name, module) pairs, up to the pooling layer. A 3D ResNet's
    `layer4_blocks` keeps only the first blocks of layer4: the assignment drops layer4[1:] of the 3D
    ResNet to fit a 2018 GPU's memory."""
    out = [(n, getattr(model, n)) for n in ("conv1", "bn1", "relu", "maxpool")]
    for i in range(1, 5):
        layer = getattr(model, f"layer{i}")
        n = len(layer) if i < 4 else (getattr(model, "layer4_blocks", None) or len(layer))
        out += [(f"layer{i}.{j}", layer[j]) for j in range(n)]
    return out


class FineTune(nn.Module):
    """Fine-tune the top of a ResNet: blocks before `train_from` are frozen, the rest and fc train.

    The input is uint8 and normalised here, on the model's device, with `mean` and `std` (RGB, for
    pixels scaled to [0, 1]). Frozen blocks run under no_grad (no activations kept for backward, the
    assignment's memory trick) and stay in eval mode, so their BatchNorm layers keep the pretrained
    running statistics instead of drifting towards small, highly correlated UCF-101 batches they
    cannot adapt to (`frozen_bn` "train": as the handout's model.train(), they use and update batch
    statistics).

    forward: uint8 (B, H, W, 3) or (B, T, H, W, 3) -> logits (B, num_classes).
    """

    def __init__(self, model: nn.Module, train_from: str, mean: tuple, std: tuple,
                 frozen_bn: str = "eval") -> None:
        super().__init__()
        self.model, self.frozen_bn = model, frozen_bn
        named = blocks(model)
        names = [n for n, _ in named]
        if train_from in ("all", "conv1"):
            n_frozen = 0
        elif train_from == "fc":
            n_frozen = len(names)
        elif train_from in names or f"{train_from}.0" in names:
            n_frozen = names.index(train_from if train_from in names else f"{train_from}.0")
        else:
            raise ValueError(f"--train-from {train_from!r}: expected one of all, fc, "
                             + ", ".join(n for n in names if "layer" in n))
        for p in model.parameters():
            p.requires_grad_(False)
        # plain lists, not submodules: the weights stay registered once, under self.model
        self.frozen, self.trained = ([m for _, m in named[:n_frozen]],
                                     [m for _, m in named[n_frozen:]])
        for m in self.trained + [model.fc]:
            m.requires_grad_(True)
        # buffers: moved by .to(device), kept out of the state_dict (checkpoints: the ResNet alone)
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)

    def train(self, mode: bool = True) -> "FineTune":
        super().train(mode)
        if self.frozen_bn == "eval":
            for m in self.frozen:
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = hf.normalize(x, self.mean, self.std)
        with torch.no_grad():
            for m in self.frozen:
                x = m(x)
        for m in self.trained:
            x = m(x)
        return self.model.fc(torch.flatten(self.model.avgpool(x), 1))


def place(net: FineTune, run: Run) -> tuple:
    """Move the model to the device (channels-last on GPU: faster on tensor cores) and wrap it in
    DDP when distributed. Returns (the model to call, its trainable parameters)."""
    net = net.to(run.device)
    if run.device.type == "cuda":
        video = any(p.dim() == 5 for p in net.parameters())
        net = net.to(memory_format=torch.channels_last_3d if video else torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    if run.world > 1:
        ids = [run.device.index] if run.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    return net, params


def input_stats(kind: str, preprocess: str = "assignment") -> tuple:
    """(mean, std) a model's inputs are normalised with: ImageNet's for the single-frame model;
    Kinetics' or Hara's own convention (pixels 0-255 minus the ActivityNet mean, no std) for 3D."""
    if kind == "single_frame":
        return hf.IMAGENET_MEAN, hf.IMAGENET_STD
    if preprocess == "hara":
        return tuple(m / 255 for m in hf.HARA_MEAN), (1 / 255,) * 3
    return hf.KINETICS_MEAN, hf.KINETICS_STD


# ----------------------------------------------------------------------------- checkpoints

# What shapes the weights, as recorded in a checkpoint's "identity", and the flag a user changes it
# with. --resume continues only when every one matches (more --epochs is allowed). The number of
# processes is not among them: the batches of an optimizer step are the same whatever their number.
IDENTITY_FLAGS = {
    "kind": "the script (train_single_frame.py / train_3d.py)", "arch": "--arch",
    "classes_sha256": "--data-root (its classInd.txt)",
    "train_list_sha256": "--data-root (its train list)", "split": "--split",
    "val_groups": "--val-groups", "train_from": "--train-from", "frozen_bn": "--frozen-bn",
    "layer4_blocks": "--layer4-blocks",
    "widen_factor": "--widen-factor", "preprocess": "--preprocess", "size": "--size",
    "frames": "--frames", "lr": "--lr", "batch_size": "--batch-size", "seed": "--seed",
    "pretrained_sha256": "--pretrained (the weights' contents)", "precision": "--precision",
}


def run_identity(args: argparse.Namespace, kind: str, lists: tuple, pretrained_sha256: str,
                 run: Run, **model: object) -> dict:
    """The run identity of a training run (IDENTITY_FLAGS' keys): its flags, the digests of its
    class and train lists (their entries, whatever the data root's path or line endings) and of the
    pretrained weights; `model`: the architecture's own settings (layer4_blocks, widen_factor,
    ...)."""
    class_list, (train_paths, train_labels), _, _ = lists
    entries = [f"{os.path.basename(os.path.dirname(p))}/{os.path.basename(p)} {y}"
               for p, y in zip(train_paths, train_labels)]
    identity = {"kind": kind, "arch": args.arch,
                "classes_sha256": utils.text_sha256(*map(str, class_list)),
                "train_list_sha256": utils.text_sha256(*entries), "split": args.split,
                "val_groups": args.val_groups, "train_from": args.train_from,
                "frozen_bn": args.frozen_bn, "size": args.size,
                "frames": model.pop("frames", 1), "lr": args.lr, "batch_size": args.batch_size,
                "seed": args.seed, "pretrained_sha256": pretrained_sha256,
                "precision": run.precision}
    return {**identity, **model}


def read_weights(path: str, flag: str, what: str) -> object:
    """torch.load (weights_only=True) of a pretrained weights file, or stop with one line naming the
    flag when it is missing, empty, partial or corrupt (`what`: the weights to download again)."""
    if not os.path.isfile(path):
        raise SystemExit(f"{flag} {path}: file not found (expected {what}; or {flag} imagenet, "
                         f"or none)")
    if os.path.getsize(path) == 0:
        raise SystemExit(f"{flag} {path} is empty (0 bytes), a failed download? "
                         f"Download {what} again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise SystemExit(f"{flag} {path} is partial, corrupt or not a weights file "
                         f"({utils.first_line(e)}): download {what} again") from None


def save_checkpoint(path: str, state: dict) -> None:
    """torch.save atomically: a crash never leaves half a checkpoint."""
    with utils.atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str, kind: str | None = None) -> dict:
    """Load a checkpoint of this repo's training scripts with weights_only=True and check its
    weights against the digest it records. ValueError / FileNotFoundError naming the file when it is
    missing, partial or corrupt, or holds the other model `kind` ("single_frame", "3d")."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # save_checkpoint writes zip files: a pickle is someone else's
        raise ValueError(f"{path} is corrupt or was not written by this repo's training scripts: "
                         f"it holds more than tensors and plain values "
                         f"({utils.first_line(e)})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is partial or corrupt and cannot be loaded "
                         f"({utils.first_line(e)}); delete it or use another checkpoint") from e
    if not isinstance(ckpt, dict) or not {"model", "identity", "weights_sha256"} <= set(ckpt):
        raise ValueError(f"{path} is not a checkpoint written by this repo's training scripts")
    if kind and ckpt["kind"] != kind:
        script = ("train_3d.py / test_3d.py" if ckpt["kind"] == "3d"
                  else "train_single_frame.py / test_single_frame.py")
        raise ValueError(f"{path} holds a {ckpt['kind']} model ({ckpt['arch']}), not a {kind} one; "
                         f"use it with {script}")
    if utils.tensors_sha256(ckpt["model"]) != ckpt["weights_sha256"]:
        raise ValueError(f"{path}: its weights do not match the digest it records (damaged?); "
                         f"use another checkpoint or train again")
    return ckpt


def describe_run(ckpt: dict) -> str:
    """'a 3d resnet50 run (epoch 3)' for messages."""
    return f"a {ckpt['kind']} {ckpt['arch']} run (epoch {ckpt['epoch']})"


def start(out: str, identity: dict, net: FineTune, optimizer: torch.optim.Optimizer, run: Run,
          resume: bool, overwrite: bool, epochs: int) -> int:
    """Where this run starts: 0 for a new run, or the epochs a checkpoint in `out` holds after
    loading its weights, optimizer and scaler state into `net` (the FineTune model, not its DDP
    wrapper). Nothing in `out` is replaced unless asked: without --resume or --overwrite a
    checkpoint there stops the run, and --resume continues only a run with the same identity."""
    path = os.path.join(out, "checkpoint.pt")
    if not os.path.exists(path) or overwrite:
        if resume and run.rank == 0:
            print(f"--resume: no checkpoint in {out} yet, starting from scratch")
        if overwrite and os.path.exists(path) and run.rank == 0:
            print(f"--overwrite: {path} will be replaced after the first epoch")
        return 0
    try:
        ckpt = load_checkpoint(path, identity["kind"])
    except ValueError as e:  # a message, not a traceback; the file stays for the user to look at
        raise SystemExit(f"{out}: {e}. To start over instead, add --overwrite or use another "
                         f"--out") from None
    if not resume:
        raise SystemExit(f"--out {out} already holds {describe_run(ckpt)}: add --resume to "
                         f"continue it, --overwrite to replace it, or use another --out")
    saved = ckpt["identity"]
    changed = utils.differences(saved, identity)
    if changed:
        what = "; ".join(f"{IDENTITY_FLAGS.get(k, k)} was {utils.shown(saved.get(k))}, "
                         f"now {utils.shown(identity.get(k))}" for k in changed)
        raise SystemExit(f"--resume: {path} holds {describe_run(ckpt)} made otherwise: {what}. "
                         f"Use its settings to continue it, or --overwrite / another --out to "
                         f"start over")
    if ckpt["epoch"] > epochs:
        raise SystemExit(f"--resume: {path} has already trained {ckpt['epoch']} epochs, more than "
                         f"--epochs {epochs}: pass --epochs {ckpt['epoch']} or more, or use "
                         f"another --out")
    net.model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if run.scaler is not None and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    if run.rank == 0:
        print(f"resumed from {path} after epoch {ckpt['epoch']}")
    return ckpt["epoch"]


def save_epoch(out: str, record: dict, net: FineTune, optimizer: torch.optim.Optimizer, run: Run,
               row: dict, args: argparse.Namespace) -> None:
    """After an epoch (on rank 0): its row appended to log.csv and args.json written, then the
    checkpoint (`record`: the model's description and identity), in that order, so that a kill
    between the two leaves a log row that a resume drops and redoes, never a checkpoint without
    it."""
    write_log(out, args, read_log(out, row["epoch"] - 1) + [row])
    state = net.model.state_dict()
    save_checkpoint(os.path.join(out, "checkpoint.pt"), {
        **record, "model": state, "weights_sha256": utils.tensors_sha256(state),
        "optimizer": optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "epoch": row["epoch"], "processes": run.world, "args": vars(args)})


def kept(path: str, epoch: int) -> str:
    """What a run stopped during epoch `epoch` (0-based) leaves behind, for its error message."""
    return (f"{path} (epoch {epoch}) is kept: add --resume to continue from it" if epoch
            else "no epoch had completed, so there is no checkpoint yet")


@contextmanager
def out_of_memory_message(batch_size: int, checkpoint: str, epoch: int,
                          more: str = "") -> Iterator[None]:
    """A CUDA out-of-memory error in training as one line saying what to change and what is
    kept."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise SystemExit(f"CUDA out of memory at batch size {batch_size}: try a smaller "
                         f"--batch-size or a later --train-from (trains fewer blocks){more}; "
                         f"{kept(checkpoint, epoch)}") from None


def write_log(out: str, args: argparse.Namespace, history: list) -> None:
    """args.json (the run's flags) and log.csv (one row per epoch)."""
    utils.write_json(os.path.join(out, "args.json"), vars(args), indent=2)
    with utils.atomic_write(os.path.join(out, "log.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def read_log(out: str, epochs: int) -> list:
    """The rows of <out>/log.csv for the first `epochs` epochs (a kill after a row was written but
    before its checkpoint leaves one more; it is redone)."""
    path = os.path.join(out, "log.csv")
    if not epochs or not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = [{k: (int(float(v)) if k in ("epoch", "failed_videos") else float(v))
                 if v not in ("", "n/a") else v
                 for k, v in r.items()}
                for r in csv.DictReader(f)]
    return [r for r in rows if r["epoch"] <= epochs]


# ----------------------------------------------------------------------------- one epoch

class FailureLog:
    """Log each unreadable video once (with its file name) and count failures per epoch."""

    def __init__(self, rank: int = 0) -> None:
        self.seen, self.count, self.rank = set(), 0, rank

    def add(self, failed: list) -> None:
        for path, err in failed:
            self.count += 1
            if path not in self.seen and self.rank == 0:
                tqdm.write(f"skipping unreadable video: {err}")
            self.seen.add(path)


def batch_sizes(n: int, device: torch.device) -> list:
    """The size of this step's batch on every process (one all_gather when distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [n]
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([n], dtype=torch.int64, device=device))
    return [int(s.item()) for s in sizes]


def merge_batches(a: dict, b: dict) -> dict:
    """One batch of the samples of collated batches a and b (uint8 videos of one shape)."""
    return {**b, **{k: torch.cat([a[k], b[k]]) for k in ("video", "label", "index")}, "failed": []}


class Sums:
    """Loss and accuracy summed on the device over an epoch (read every POSTFIX_EVERY steps: reading
    them each step would make the CPU wait for the GPU instead of preparing the next batch)."""

    def __init__(self, device: torch.device) -> None:
        self.loss, self.correct, self.n = (torch.zeros((), device=device),
                                           torch.zeros((), device=device), 0)

    def add(self, loss_sum: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss_sum.detach()
        self.correct += (logits.argmax(1) == y).sum()
        self.n += len(y)

    def postfix(self) -> dict:
        n = max(self.n, 1)
        return {"loss": f"{self.loss.item() / n:.3f}", "acc": f"{self.correct.item() / n:.3f}"}

    def result(self, device: torch.device, dropped: int = 0) -> dict:
        """{"loss", "acc", "n", "dropped"} over all processes; loss and acc None when n is 0."""
        loss, correct, n, dropped = all_reduce_sum(
            [self.loss.item(), self.correct.item(), self.n, dropped], device)
        return {"loss": loss / n if n else None, "acc": correct / n if n else None, "n": int(n),
                "dropped": int(dropped)}


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[dict],
                    run: Run, failures: FailureLog, desc: str = "train") -> dict:
    """Train on every batch of `batches` (uint8 videos; the model normalises them). The loss of a
    step is the mean over the step's whole batch, over all processes alike (DDP averages the
    processes' gradients, so each one's summed loss is scaled by world / batch). A batch of fewer
    than MIN_TRAIN_BATCH readable videos on any process (the last one, or one thinned by unreadable
    videos) is merged into the next; one left at the end is dropped. Returns {"loss", "acc", "n",
    "dropped"} summed over all processes."""
    model.train()
    # carry: a batch too small to step on alone, for the next one
    sums, carry = Sums(run.device), None
    bar = tqdm(batches, desc=desc, leave=False, disable=run.rank != 0, dynamic_ncols=True)
    for step, batch in enumerate(bar):
        failures.add(batch["failed"])
        batch, carry = (merge_batches(carry, batch) if carry else batch), None
        sizes = batch_sizes(len(batch["label"]), run.device)
        if min(sizes) < MIN_TRAIN_BATCH:  # BatchNorm needs 2+ samples; all processes agree
            carry = batch
            continue
        x = batch["video"].to(run.device, non_blocking=True)
        y = batch["label"].to(run.device, non_blocking=True)
        with autocast(run):
            logits = model(x)
        loss_sum = F.cross_entropy(logits.float(), y, reduction="sum")
        loss = loss_sum * (run.world / sum(sizes))
        optimizer.zero_grad(set_to_none=True)
        if run.scaler is None:
            loss.backward()
            optimizer.step()
        else:  # fp16: scale the loss so that small gradients do not flush to zero
            run.scaler.scale(loss).backward()
            run.scaler.step(optimizer)
            run.scaler.update()
        sums.add(loss_sum, logits, y)
        if step % POSTFIX_EVERY == 0 and run.rank == 0:
            bar.set_postfix(sums.postfix())
    return sums.result(run.device, dropped=len(carry["label"]) if carry else 0)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[dict], run: Run, failures: FailureLog,
             desc: str = "test") -> dict:
    """Clip-level loss and accuracy over `batches` (one clip or frame per video), in eval mode.
    Returns {"loss", "acc", "n", "dropped"} over all processes (loss and acc None when no video
    could be read)."""
    model.eval()
    sums = Sums(run.device)
    for batch in tqdm(batches, desc=desc, leave=False, disable=run.rank != 0, dynamic_ncols=True):
        failures.add(batch["failed"])
        if len(batch["label"]) == 0:  # every video of this batch failed; nothing to score
            continue
        y = batch["label"].to(run.device, non_blocking=True)
        with autocast(run):
            logits = model(batch["video"].to(run.device, non_blocking=True))
        sums.add(F.cross_entropy(logits.float(), y, reduction="sum"), logits, y)
    return sums.result(run.device)


def epoch_row(epoch: int, tr: dict, te: dict, failures: FailureLog, run: Run,
              seconds: float) -> dict:
    """One epoch's line of log.csv (failures summed over all processes; n/a: no test video read)."""
    num = lambda x: "n/a" if x is None else round(x, 5)
    return {"epoch": epoch + 1, "train_loss": num(tr["loss"]), "train_acc": num(tr["acc"]),
            "test_clip_loss": num(te["loss"]), "test_clip_acc": num(te["acc"]),
            "failed_videos": int(all_reduce_sum([failures.count], run.device)[0]),
            "seconds": round(seconds, 1)}


def check_trained(tr: dict, n_videos: int, split: int, data_root: str) -> None:
    """Stop when no training video of the epoch could be read: checkpointing a model that saw no
    data would only hide the problem."""
    if tr["n"] == 0:
        raise SystemExit(f"none of the {n_videos} training videos of split {split} could be read "
                         f"(each is named above with the reason): check --data-root {data_root}, "
                         f"or convert the videos again with python -m tools.prepare_data")


def print_epoch(row: dict, epochs: int, dropped: int, sample: str) -> None:
    """The epoch's summary line; `sample`: what the clip-level test scores of each video ("frame",
    "clip")."""
    f = lambda x: x if x == "n/a" else f"{x:.4f}"
    test = ("n/a (no test video could be read)" if row["test_clip_acc"] == "n/a" else
            f"loss {f(row['test_clip_loss'])} acc {f(row['test_clip_acc'])}")
    print(f"epoch {row['epoch']}/{epochs}  train loss {f(row['train_loss'])} "
          f"acc {f(row['train_acc'])}  "
          f"test (clip-level: one {sample} per video) {test}  skipped {row['failed_videos']}  "
          f"{row['seconds']}s"
          + (f"  ({dropped} left over in a last batch too small to train on)" if dropped else ""),
          flush=True)
