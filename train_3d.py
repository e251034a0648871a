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

import engine
import helperFunctions as hf
import resnet_3d


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    engine.add_common_args(p, batch_size=32, arch="resnet50", out="runs/3d", frames=16, train=True)
    p.add_argument("--kinetics-checkpoint", default="resnet-50-kinetics.pth",
                   help="Hara et al.'s Kinetics-400 checkpoint, or none (random init, e.g. for the toy set)")
    p.add_argument("--layer4-blocks", type=int, default=1,
                   help="layer4 blocks used: 1 (assignment: skip layer4[1:]) up to 3 (all)")
    p.add_argument("--train-from", default="layer4.0",
                   help="first trained block: layer4.0 (assignment), layer4, layer3, ..., all; fc alone: fc")
    p.add_argument("--preprocess", choices=["assignment", "hara"], default="assignment",
                   help="input normalisation: Kinetics mean/std (assignment) or the checkpoint's own")
    return p.parse_args(argv)


def main(args):
    device, rank, world = engine.setup(args.device, args.seed)
    class_list, train, test = engine.training_lists(args)
    train_set = hf.ClipDataset(*train, augment=True, size=args.size, frames=args.frames, seed=args.seed)
    test_set = hf.ClipDataset(*test, augment=False, size=args.size, frames=args.frames, seed=args.seed)

    if args.kinetics_checkpoint == "none":
        model = resnet_3d.build(args.arch, num_classes=len(class_list), layer4_blocks=args.layer4_blocks)
    elif not os.path.isfile(args.kinetics_checkpoint):  # the default name, when it was never downloaded
        raise SystemExit(f"--kinetics-checkpoint {args.kinetics_checkpoint}: file not found; download Hara et "
                         f"al.'s resnet-50-kinetics.pth and pass --kinetics-checkpoint PATH, or train from "
                         f"scratch with --kinetics-checkpoint none")
    else:
        try:
            model = resnet_3d.load_kinetics(args.kinetics_checkpoint, arch=args.arch, num_classes=len(class_list),
                                            layer4_blocks=args.layer4_blocks)
        except ValueError as e:  # not a checkpoint, or another architecture: the message says which
            raise SystemExit(f"--kinetics-checkpoint: {e}") from None
    net = engine.FineTune(model, args.train_from, args.layer4_blocks)
    meta = {"kind": "3d", "arch": args.arch, "num_classes": len(class_list), "class_list": list(class_list),
            "size": args.size, "frames": args.frames, "train_from": args.train_from,
            "layer4_blocks": args.layer4_blocks, "preprocess": args.preprocess}
    engine.train(args, net, train_set, test_set, device, rank, world, meta)


if __name__ == "__main__":
    engine.interruptible(main)(parse_args())
