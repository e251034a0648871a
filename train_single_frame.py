"""Part 1: fine-tune an ImageNet ResNet-50 on single random frames of UCF-101 videos.

Usage: python train_single_frame.py --data-root /path/to/root [--pretrained imagenet|none|PATH]
       torchrun --nproc_per_node 4 train_single_frame.py ...   (several GPUs, same flags)

Defaults are the assignment's: ResNet-50, fc -> 101 classes, train layer4[2] + fc, Adam lr 1e-4,
batch 100, 10 epochs, 224x224 frames with random crop/flip/brightness. Expected on real UCF-101
split 1: ~100% train accuracy and 73-75% on single test frames (77-79% on whole videos with
test_single_frame.py). Writes <out>/checkpoint.pt after every epoch, args.json and log.csv.
"""
import argparse
import os
import time

import torch
import torchvision

import engine
import utils


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--pretrained", "--weights", dest="pretrained", default="imagenet",
                   help="initial weights: imagenet (torchvision's IMAGENET1K_V1, downloaded), the "
                        "path of a torchvision ResNet .pth, or none (random)")
    p.add_argument("--arch", default="resnet50", choices=list(engine.ARCHS_2D),
                   help="torchvision ResNet")
    engine.add_training_flags(p, batch_size=100, train_from="layer4.2", out="runs/single_frame")
    args = p.parse_args(argv)
    engine.check_train_from(p, args.train_from, args.arch, engine.ARCHS_2D[args.arch])
    return args


def is_3d_state(state: object) -> bool:
    """Whether a state_dict holds 3D convolutions (5-D weights), e.g. Hara's
    `module.conv1.weight`."""
    return isinstance(state, dict) and any(torch.is_tensor(v) and v.dim() == 5
                                           for v in state.values())


def pretrained_resnet(arch: str, pretrained: str, num_classes: int) -> tuple:
    """A torchvision ResNet with ImageNet weights (download, local file or none), fc -> num_classes.
    Returns (model, the digest of the pretrained weights, "none" for random ones)."""
    model = getattr(torchvision.models, arch)(weights=None)
    if pretrained == "imagenet":
        try:  # IMAGENET1K_V1: the weights behind the assignment's `pretrained=True`
            model = getattr(torchvision.models, arch)(weights="IMAGENET1K_V1")
        except OSError as e:  # urllib's URLError is an OSError
            raise SystemExit(f"could not download the ImageNet weights of {arch} "
                             f"({utils.first_line(e)}). Offline? Copy them from a machine online "
                             f"and pass --pretrained /path/to/{arch}.pth, or train from scratch "
                             f"with --pretrained none") from None
    elif pretrained != "none":
        state = engine.read_weights(pretrained, "--pretrained",
                                    f"torchvision's {arch} ImageNet weights")
        if isinstance(state, dict) and {"kind", "model", "identity"} <= set(state):
            raise SystemExit(f"--pretrained {pretrained} is a checkpoint of this repo's training "
                             f"scripts ({engine.describe_run(state)}); to continue it, pass its "
                             f"folder as --out with --resume. --pretrained takes torchvision's "
                             f"ImageNet weights")
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if is_3d_state(state):
            raise SystemExit(f"--pretrained {pretrained} is a 3D (video) checkpoint, such as Hara "
                             f"et al.'s Kinetics ResNet: use it with train_3d.py --pretrained "
                             f"{pretrained}")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise SystemExit(f"--pretrained {pretrained} does not hold torchvision {arch} weights "
                             f"({utils.first_line(e)})") from None
    digest = "none" if pretrained == "none" else utils.tensors_sha256(model.state_dict())
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    return model, digest


def main(args: argparse.Namespace) -> None:
    run = engine.setup(args.device, args.seed, args.precision)

    # data: one random frame of every training video per epoch; one fixed frame per test video for
    # the clip-level check after each epoch (test_single_frame.py scores whole videos)
    lists = engine.split_lists(args.data_root, args.split, args.val_groups)
    utils.check_writable(args.out)  # after the data root's checks: a wrong root leaves no --out
    class_list, (train_paths, _), val, test = lists
    train_loader, test_loader = engine.training_loaders(lists, args.size, 1, args.batch_size,
                                                        args.workers, args.seed, run)

    # model: ImageNet ResNet, fc -> len(class_list); layers before --train-from frozen
    model, pretrained_sha256 = pretrained_resnet(args.arch, args.pretrained, len(class_list))
    net = engine.FineTune(model, args.train_from, *engine.input_stats("single_frame"),
                          args.frozen_bn)
    # model: what to call (DDP under torchrun); net: inside it
    model, params = engine.place(net, run)
    optimizer = torch.optim.Adam(params, lr=args.lr)
    record = {"kind": "single_frame", "arch": args.arch, "num_classes": len(class_list),
              "class_list": [str(c) for c in class_list], "size": args.size, "frames": 1,
              "train_from": args.train_from, "frozen_bn": args.frozen_bn, "split": args.split,
              "val_groups": args.val_groups,
              "precision": run.precision,
              "identity": engine.run_identity(args, "single_frame", lists, pretrained_sha256, run)}
    start = engine.start(args.out, record["identity"], net, optimizer, run, args.resume,
                         args.overwrite, args.epochs)
    if run.rank == 0:
        print(f"single frame {args.arch}: {len(train_paths)} train / {len(test[0])} test videos "
              f"({len(val[0])} held out for validation), {len(class_list)} classes, "
              f"{sum(p.numel() for p in params):,} trained parameters, {run.device}, "
              f"{run.precision}"
              f"{f', {run.world} processes' if run.world > 1 else ''}", flush=True)

    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    failures = engine.FailureLog(run.rank)
    for epoch in range(start, args.epochs):
        t0, failures.count = time.time(), 0
        train_loader.batch_sampler.set_epoch(epoch)
        with engine.out_of_memory_message(args.batch_size, ckpt_path, epoch):
            tr = engine.train_one_epoch(model, optimizer, train_loader, run, failures,
                                        f"epoch {epoch + 1}/{args.epochs} train")
            te = engine.evaluate(model, test_loader, run, failures)
        engine.check_trained(tr, len(train_paths), args.split, args.data_root)
        row = engine.epoch_row(epoch, tr, te, failures, run, time.time() - t0)
        if run.rank == 0:
            engine.print_epoch(row, args.epochs, tr["dropped"], "frame")
            engine.save_epoch(args.out, record, net, optimizer, run, row, args)


if __name__ == "__main__":
    utils.interruptible(main, engine.kept_on_interrupt)(parse_args())
