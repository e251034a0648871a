"""Part 2: fine-tune Hara et al.'s Kinetics-400 3D ResNet-50 on 16-frame UCF-101 clips.

Usage: python train_3d.py --data-root /path/to/root --kinetics-checkpoint resnet-50-kinetics.pth [--out runs/3d]
       torchrun --nproc_per_node 4 train_3d.py ...   (several GPUs, same flags)

Defaults are the assignment's: 3D ResNet-50, train layer4[0] + fc with layer4[1:] skipped (memory),
batch 32, Adam lr 1e-4, 10 epochs, 16x224x224 clips with one crop/flip/brightness draw per clip,
normalised with the Kinetics mean/std. Expected on real UCF-101 split 1: ~100% train accuracy and
81-83% on single test clips (more on whole videos with test_3d.py). `--layer4-blocks 3` keeps all
of layer4 (fits an 80 GB GPU). `--preprocess hara` feeds the checkpoint's own input convention
(pixels in [0, 255] minus the ActivityNet mean, no std; Hara trained on 112x112: add --size 112).
"""
import argparse
import os
import time

import torch

import engine
import helperFunctions as hf
import resnet_3d


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data/toy",
                   help="folder with ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or UCF-101-jpeg/")
    p.add_argument("--split", type=int, default=1, choices=[1, 2, 3])
    p.add_argument("--val-groups", type=int, default=0,
                   help="hold out the last N groups of every class of the train list for validation "
                        "(0: the assignment's whole train list)")
    p.add_argument("--kinetics-checkpoint", default="resnet-50-kinetics.pth",
                   help="Hara et al.'s Kinetics-400 checkpoint, or none (random init, e.g. for the toy set)")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--layer4-blocks", type=int, default=1,
                   help="layer4 blocks used: 1 (assignment: skip layer4[1:]) up to 3 (all)")
    p.add_argument("--train-from", default="layer4.0",
                   help="first trained block: layer4.0 (assignment), layer4, layer3, ..., all; fc alone: fc")
    p.add_argument("--widen-factor", type=float, default=1.0,
                   help="channels of every layer times this (from scratch only: the Kinetics weights need 1)")
    p.add_argument("--preprocess", choices=["assignment", "hara"], default="assignment",
                   help="input normalisation: Kinetics mean/std (assignment) or the checkpoint's own")
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--frames", type=int, default=16, help="frames per clip")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count()), help="data loading processes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/3d", help="run folder: checkpoint.pt, args.json, log.csv")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    return p.parse_args(argv)


def kinetics_resnet(arch, checkpoint, num_classes, layer4_blocks, widen_factor=1.0):
    """Hara's 3D ResNet with its Kinetics weights (or none: random init), fc -> num_classes."""
    if checkpoint == "none":
        return resnet_3d.build(arch, num_classes=num_classes, layer4_blocks=layer4_blocks, widen_factor=widen_factor)
    if widen_factor != 1:
        raise SystemExit(f"--widen-factor {widen_factor:g}: the Kinetics weights are of width 1; a wider or "
                         f"narrower model trains from scratch (--kinetics-checkpoint none)")
    if not os.path.isfile(checkpoint):  # the default name, when it was never downloaded
        raise SystemExit(f"--kinetics-checkpoint {checkpoint}: file not found; download Hara et "
                         f"al.'s resnet-50-kinetics.pth and pass --kinetics-checkpoint PATH, or train from "
                         f"scratch with --kinetics-checkpoint none")
    try:
        return resnet_3d.load_kinetics(checkpoint, arch=arch, num_classes=num_classes, layer4_blocks=layer4_blocks)
    except ValueError as e:  # not a checkpoint, or another architecture: the message says which
        raise SystemExit(f"--kinetics-checkpoint: {e}") from None


def main(args):
    device, rank, world = engine.setup(args.device, args.seed)

    # data: one random clip of every training video per epoch; one fixed clip per test video for the
    # clip-level check after each epoch (test_3d.py scores whole videos)
    class_list, (train_paths, train_labels), val, test = engine.split_lists(args.data_root, args.split, args.val_groups)
    if args.val_groups and rank == 0:
        print(f"--val-groups {args.val_groups}: {len(val[0])} videos held out for validation, "
              f"training on the other {len(train_paths)}", flush=True)
    train_set = hf.ClipDataset(train_paths, train_labels, augment=True, size=args.size, frames=args.frames,
                               seed=args.seed)
    test_set = hf.ClipDataset(*test, augment=False, size=args.size, frames=args.frames, seed=args.seed)
    train_loader = hf.make_loader(train_set, args.batch_size, True, args.workers, args.seed, world, rank)
    test_loader = hf.make_loader(test_set, args.batch_size, False, args.workers, args.seed, world, rank)

    # model: Kinetics 3D ResNet, fc -> len(class_list), layer4[--layer4-blocks:] dropped; layers before
    # --train-from frozen
    model = kinetics_resnet(args.arch, args.kinetics_checkpoint, len(class_list), args.layer4_blocks, args.widen_factor)
    net = engine.FineTune(model, args.train_from, args.layer4_blocks)
    model, params = engine.place(net, device, world)  # model: what to call (DDP under torchrun); net: inside it
    optimizer = torch.optim.Adam(params, lr=args.lr)
    meta = {"kind": "3d", "arch": args.arch, "num_classes": len(class_list),
            "class_list": [str(c) for c in class_list], "size": args.size, "frames": args.frames,
            "train_from": args.train_from, "layer4_blocks": args.layer4_blocks, "preprocess": args.preprocess,
            "widen_factor": args.widen_factor, "split": args.split, "val_groups": args.val_groups}
    if rank == 0:
        print(f"3d {args.arch}: {len(train_set)} train / {len(test_set)} test videos, "
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
            raise SystemExit(f"CUDA out of memory at batch size {args.batch_size}: try a smaller --batch-size "
                             f"or a later --train-from (trains fewer blocks), or fewer --layer4-blocks; "
                             f"{engine.kept(ckpt_path, epoch)}") from None
        row = engine.epoch_row(epoch, tr, te, failures, device, time.time() - t0)
        if tr["n"] == 0:  # stop: checkpointing a model that saw no data would only hide the problem
            raise SystemExit(f"none of the {len(train_set)} training videos of split {args.split} could be "
                             f"read (each is named above with the reason): check --data-root {args.data_root}, "
                             f"or convert the videos again with prepare_data.py")
        history.append(row)
        if rank == 0:
            engine.print_epoch(row, args.epochs, tr["dropped"], "clip")
            engine.save_checkpoint(ckpt_path, {**meta, "model": net.model.state_dict(),
                                               "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                                               "history": history, "args": vars(args), "rng": torch.get_rng_state()})
            engine.write_log(args.out, args, history)
    return history


if __name__ == "__main__":
    engine.interruptible(main)(parse_args())
