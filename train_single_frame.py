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
import zipfile

import torch
import torchvision

import engine
import helperFunctions as hf


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    engine.add_common_args(p, batch_size=100, arch="resnet50", out="runs/single_frame", frames=1, train=True)
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (torchvision download), a local .pth of torchvision's resnet weights, or none")
    p.add_argument("--train-from", default="layer4.2",
                   help="first trained block: layer4.2 (assignment), layer4, layer3, ..., all; fc alone: fc")
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
    class_list, train, test = engine.training_lists(args)
    train_set = hf.FrameDataset(*train, augment=True, size=args.size, seed=args.seed)
    test_set = hf.FrameDataset(*test, augment=False, size=args.size, seed=args.seed)

    model = pretrained_resnet(args.arch, args.weights, len(class_list))
    net = engine.FineTune(model, args.train_from)
    meta = {"kind": "2d", "arch": args.arch, "num_classes": len(class_list), "class_list": list(class_list),
            "size": args.size, "frames": 1, "train_from": args.train_from}
    engine.train(args, net, train_set, test_set, device, rank, world, meta)


if __name__ == "__main__":
    engine.interruptible(main)(parse_args())
