"""Part 1: fine-tune an ImageNet ResNet-50 on single random frames of UCF-101 videos.

Usage: python train_single_frame.py --data-root /path/to/root [--weights imagenet|none|PATH] [--out runs/single_frame]
       torchrun --nproc_per_node 4 train_single_frame.py ...   (several GPUs, same flags)

Defaults are the assignment's: ResNet-50, fc -> 101 classes, train layer4[2] + fc, Adam lr 1e-4,
batch 100, 10 epochs, 224x224 frames with random crop/flip/brightness. Expected on real UCF-101
split 1: ~100% train accuracy and 73-75% on single test frames (77-79% on whole videos with
test_single_frame.py). Writes <out>/checkpoint.pt after every epoch, args.json and log.csv.
"""
import argparse
import os
import pickle
import time
import zipfile

import torch
import torchvision

import engine
import helperFunctions as hf


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data/toy",
                   help="folder with ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or UCF-101-jpeg/")
    p.add_argument("--split", type=int, default=1, choices=[1, 2, 3])
    p.add_argument("--val-groups", type=int, default=0,
                   help="hold out the last N groups of every class of the train list for validation "
                        "(0: the assignment's whole train list)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (torchvision download), a local .pth of torchvision's resnet weights, or none")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--train-from", default="layer4.2",
                   help="first trained block: layer4.2 (assignment), layer4, layer3, ..., all; fc alone: fc")
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count()), help="data loading processes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/single_frame", help="run folder: checkpoint.pt, args.json, log.csv")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    return p.parse_args(argv)


def is_3d_state(state) -> bool:
    """Whether a state_dict holds 3D convolutions (5-D weights), e.g. Hara's `module.conv1.weight`."""
    return isinstance(state, dict) and any(torch.is_tensor(v) and v.dim() == 5 for v in state.values())


def pretrained_resnet(arch, weights, num_classes):
    """A torchvision ResNet with ImageNet weights (download, local file or none), fc -> num_classes."""
    model = getattr(torchvision.models, arch)(weights=None)
    if weights == "imagenet":
        try:  # IMAGENET1K_V1: the weights behind the assignment's `pretrained=True`
            model = getattr(torchvision.models, arch)(weights="IMAGENET1K_V1")
        except OSError as e:  # urllib's URLError is an OSError
            raise SystemExit(f"could not download the ImageNet weights of {arch} ({e}). Offline? Copy "
                             f"them from a machine online and pass --weights /path/to/{arch}.pth, "
                             f"or train from scratch with --weights none") from e
    elif weights != "none":
        if not os.path.isfile(weights):
            raise SystemExit(f"--weights {weights}: file not found; use imagenet (download), the path of a "
                             f"torchvision {arch} .pth, or none (random init)")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as e:
            raise SystemExit(f"--weights {weights}: truncated, corrupt or not a weights file; download "
                             f"torchvision's {arch} weights again ({str(e).splitlines()[0][:200]})") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if is_3d_state(state):
            raise SystemExit(f"--weights {weights} is a 3D (video) checkpoint, such as Hara et al.'s Kinetics "
                             f"ResNet: use it with train_3d.py --kinetics-checkpoint {weights}")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            first = str(e).splitlines()[0][:200]
            raise SystemExit(f"--weights {weights} does not hold torchvision {arch} weights ({first})") from None
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    return model


def main(args):
    device, rank, world = engine.setup(args.device, args.seed)

    # data: one random frame of every training video per epoch; one fixed frame per test video for the
    # clip-level check after each epoch (test_single_frame.py scores whole videos)
    class_list, (train_paths, train_labels), val, test = engine.split_lists(args.data_root, args.split, args.val_groups)
    if args.val_groups and rank == 0:
        print(f"--val-groups {args.val_groups}: {len(val[0])} videos held out for validation, "
              f"training on the other {len(train_paths)}", flush=True)
    train_set = hf.ClipDataset(train_paths, train_labels, augment=True, size=args.size, frames=1, seed=args.seed)
    test_set = hf.ClipDataset(*test, augment=False, size=args.size, frames=1, seed=args.seed)
    train_loader = hf.make_loader(train_set, args.batch_size, True, args.workers, args.seed, world, rank)
    test_loader = hf.make_loader(test_set, args.batch_size, False, args.workers, args.seed, world, rank)

    # model: ImageNet ResNet, fc -> len(class_list); layers before --train-from frozen
    net = engine.FineTune(pretrained_resnet(args.arch, args.weights, len(class_list)), args.train_from)
    model, params = engine.place(net, device, world)  # model: what to call (DDP under torchrun); net: inside it
    optimizer = torch.optim.Adam(params, lr=args.lr)
    meta = {"kind": "single_frame", "arch": args.arch, "num_classes": len(class_list),
            "class_list": [str(c) for c in class_list], "size": args.size, "frames": 1,
            "train_from": args.train_from, "split": args.split, "val_groups": args.val_groups}
    if rank == 0:
        print(f"single frame {args.arch}: {len(train_set)} train / {len(test_set)} test videos, "
              f"{len(class_list)} classes, {sum(p.numel() for p in params):,} trained parameters, device "
              f"{device}"
              f"{f', {world} processes' if world > 1 else ''}", flush=True)

    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    start, history = engine.resume(ckpt_path, net, optimizer, meta, rank) if args.resume else (0, [])
    os.makedirs(args.out, exist_ok=True)
    mean, std = engine.input_stats(meta)
    failures = engine.FailureLog(rank)
    for epoch in range(start, args.epochs):
        t0, failures.count = time.time(), 0
        train_loader.sampler.set_epoch(epoch)
        try:
            tr = engine.train_one_epoch(model, optimizer, train_loader, device, mean, std, failures,
                                        f"epoch {epoch + 1}/{args.epochs} train", rank)
            te = engine.evaluate(model, test_loader, device, mean, std, failures, "test", rank)
        except torch.cuda.OutOfMemoryError:
            raise SystemExit(f"CUDA out of memory at batch size {args.batch_size}: try a smaller --batch-size or "
                             f"a later --train-from (trains fewer blocks); {engine.kept(ckpt_path, epoch)}") from None
        row = engine.epoch_row(epoch, tr, te, failures, device, time.time() - t0)
        if tr["n"] == 0:  # stop: checkpointing a model that saw no data would only hide the problem
            raise SystemExit(f"none of the {len(train_set)} training videos of split {args.split} could be "
                             f"read (each is named above with the reason): check --data-root {args.data_root}, "
                             f"or convert the videos again with prepare_data.py")
        history.append(row)
        if rank == 0:
            engine.print_epoch(row, args.epochs, tr["dropped"], "frame")
            engine.save_checkpoint(ckpt_path, {**meta, "model": net.model.state_dict(),
                                               "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                                               "history": history, "args": vars(args), "rng": torch.get_rng_state()})
            engine.write_log(args.out, args, history)
    return history


if __name__ == "__main__":
    engine.interruptible(main)(parse_args())
