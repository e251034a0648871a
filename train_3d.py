"""Part 2: fine-tune Hara et al.'s Kinetics-400 3D ResNet-50 on 16-frame UCF-101 clips.

Usage: python train_3d.py --data-root /path/to/root --pretrained resnet-50-kinetics.pth
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
import resnet_3d
import utils


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--pretrained", "--kinetics-checkpoint", dest="pretrained",
                   default="resnet-50-kinetics.pth",
                   help="initial weights: Hara et al.'s Kinetics-400 checkpoint, or none (random, "
                        "e.g. for the toy)")
    p.add_argument("--arch", default="resnet50", choices=list(resnet_3d.ARCHS),
                   help="Hara et al.'s 3D ResNet")
    p.add_argument("--layer4-blocks", type=utils.int_between(1, 3), default=1,
                   help="layer4 blocks used: 1 (assignment: skip layer4[1:]) up to 3 (all)")
    p.add_argument("--widen-factor", type=utils.positive_float, default=1.0,
                   help="channels of every layer times this (from scratch only: the Kinetics "
                        "weights need 1)")
    p.add_argument("--preprocess", choices=["assignment", "hara"], default="assignment",
                   help="input normalisation: Kinetics mean/std (assignment) or the checkpoint's "
                        "own")
    p.add_argument("--frames", type=utils.int_at_least(engine.MIN_FRAMES), default=16,
                   help="frames per clip")
    engine.add_training_flags(p, batch_size=32, train_from="layer4.0", out="runs/3d")
    args = p.parse_args(argv)
    layers = resnet_3d.ARCHS[args.arch][1]
    if args.layer4_blocks > layers[3]:
        p.error(f"argument --layer4-blocks: {args.arch}'s layer4 has {layers[3]} blocks, "
                f"not {args.layer4_blocks}")
    engine.check_train_from(p, args.train_from, args.arch, layers, args.layer4_blocks)
    return args


def kinetics_resnet(arch: str, pretrained: str, num_classes: int, layer4_blocks: int,
                    widen_factor: float = 1.0) -> tuple:
    """Hara's 3D ResNet with its Kinetics weights (or none: random init), fc -> num_classes.
    Returns (model, the digest of the pretrained weights, "none" for random ones)."""
    if pretrained == "none":
        model = resnet_3d.build(arch, num_classes=num_classes, layer4_blocks=layer4_blocks,
                                widen_factor=widen_factor)
        return model, "none"
    if widen_factor != 1:
        raise SystemExit(f"--widen-factor {widen_factor:g}: the Kinetics weights are of width 1; "
                         f"a wider or narrower model trains from scratch (--pretrained none)")
    if not os.path.isfile(pretrained):  # the default name, when it was never downloaded
        raise SystemExit(f"--pretrained {pretrained}: file not found; download Hara et al.'s "
                         f"resnet-50-kinetics.pth (see the README) and pass --pretrained PATH, or "
                         f"train from scratch with --pretrained none")
    try:
        model = resnet_3d.load_kinetics(pretrained, arch=arch, num_classes=400,
                                        layer4_blocks=layer4_blocks)
    except ValueError as e:  # not a checkpoint, or another architecture: the message says which
        raise SystemExit(f"--pretrained: {e}") from None
    digest = utils.tensors_sha256(model.state_dict())
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    return model, digest


def main(args: argparse.Namespace) -> None:
    run = engine.setup(args.device, args.seed, args.precision)

    # data: one random clip of every training video per epoch; one fixed clip per test video for
    # the clip-level check after each epoch (test_3d.py scores whole videos)
    lists = engine.split_lists(args.data_root, args.split, args.val_groups)
    utils.check_writable(args.out)  # after the data root's checks: a wrong root leaves no --out
    class_list, (train_paths, _), val, test = lists
    train_loader, test_loader = engine.training_loaders(lists, args.size, args.frames,
                                                        args.batch_size, args.workers, args.seed,
                                                        run)

    # model: Kinetics 3D ResNet, fc -> len(class_list), layer4[--layer4-blocks:] skipped; layers
    # before --train-from frozen
    model, pretrained_sha256 = kinetics_resnet(args.arch, args.pretrained, len(class_list),
                                               args.layer4_blocks, args.widen_factor)
    net = engine.FineTune(model, args.train_from, *engine.input_stats("3d", args.preprocess),
                          args.frozen_bn)
    # model: what to call (DDP under torchrun); net: inside it
    model, params = engine.place(net, run)
    optimizer = torch.optim.Adam(params, lr=args.lr)
    shape = {"layer4_blocks": args.layer4_blocks, "widen_factor": args.widen_factor,
             "preprocess": args.preprocess, "shortcut_type": net.model.shortcut_type}
    record = {"kind": "3d", "arch": args.arch, "num_classes": len(class_list),
              "class_list": [str(c) for c in class_list], "size": args.size, "frames": args.frames,
              "train_from": args.train_from, "frozen_bn": args.frozen_bn, "split": args.split,
              "val_groups": args.val_groups,
              "precision": run.precision, **shape,
              "identity": engine.run_identity(args, "3d", lists, pretrained_sha256, run,
                                              frames=args.frames, **shape)}
    start = engine.start(args.out, record["identity"], net, optimizer, run, args.resume,
                         args.overwrite, args.epochs)
    if run.rank == 0:
        print(f"3d {args.arch}: {len(train_paths)} train / {len(test[0])} test videos "
              f"({len(val[0])} held out for validation), {len(class_list)} classes, "
              f"{sum(p.numel() for p in params):,} trained parameters, {run.device}, "
              f"{run.precision}"
              f"{f', {run.world} processes' if run.world > 1 else ''}", flush=True)

    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    failures = engine.FailureLog(run.rank)
    for epoch in range(start, args.epochs):
        t0, failures.count = time.time(), 0
        train_loader.batch_sampler.set_epoch(epoch)
        with engine.out_of_memory_message(args.batch_size, ckpt_path, epoch,
                                          ", or fewer --layer4-blocks"):
            tr = engine.train_one_epoch(model, optimizer, train_loader, run, failures,
                                        f"epoch {epoch + 1}/{args.epochs} train")
            te = engine.evaluate(model, test_loader, run, failures)
        engine.check_trained(tr, len(train_paths), args.split, args.data_root)
        row = engine.epoch_row(epoch, tr, te, failures, run, time.time() - t0)
        if run.rank == 0:
            engine.print_epoch(row, args.epochs, tr["dropped"], "clip")
            engine.save_epoch(args.out, record, net, optimizer, run, row, args)


if __name__ == "__main__":
    utils.interruptible(main, engine.kept_on_interrupt)(parse_args())
