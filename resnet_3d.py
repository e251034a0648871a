"""3D ResNets of Hara et al. (CVPR 2018), as given in the assignment, in modern PyTorch.

Usage:
    import resnet_3d
    model = resnet_3d.load_kinetics("resnet-50-kinetics.pth", arch="resnet50", num_classes=101,
                                    layer4_blocks=1)
    logits = model(x)  # x: (B, 3, T, H, W), T >= 16, H, W multiples of 32 -> (B, 101)

Attribute names match Hara's code exactly, so his checkpoints load strictly. Unlike the assignment's
listing: avgpool is adaptive (any clip length / frame size), forward has no torch.no_grad(),
`layer4_blocks` skips the last layer4 blocks as the assignment's manual forward does,
get_fine_tuning_parameters is fixed, and `widen_factor` (from Hara's later code) scales every
layer's channels for small models trained from scratch (the Kinetics weights need 1.0).
"""
import os
import pickle
import zipfile
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet10", "resnet18", "resnet34", "resnet50",
           "resnet101", "resnet152", "resnet200", "ARCHS", "build", "load_kinetics",
           "get_fine_tuning_parameters"]


def conv3x3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    """3x3x3 convolution with padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut type A: subsample by `stride` and zero-pad channels up to `planes`. No parameters,
    so it adds nothing to the state_dict (as Hara's functools.partial did)."""

    def __init__(self, planes: int, stride: int) -> None:
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        # F.pad pads from the last dim backwards: (W, W, H, H, T, T, C_before, C_after)
        return F.pad(out, (0, 0, 0, 0, 0, 0, 0, self.planes - out.size(1)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


BLOCK_WIDTHS = (64, 128, 256, 512)  # channels of conv1/layer1 .. layer4 at widen_factor 1


class ResNet(nn.Module):
    """3D ResNet. Input `(B, 3, T, H, W)`; T and H, W are divided by 16 and 32 (rounded up) before
    pooling, so any T >= 1 and H, W >= 1 work; the pretrained weights expect T >= 16, H = W = 112
    or more. `sample_size` and `sample_duration` are accepted for compatibility with the assignment
    and ignored: the average pool adapts to the input. `layer4_blocks` (None = all) is how many
    layer4 blocks forward runs; skipped blocks stay in the state_dict so checkpoints load strictly.
    `widen_factor` multiplies the channels of conv1 and every layer (`BLOCK_WIDTHS`)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 sample_size: int | None = None, sample_duration: int | None = None,
                 shortcut_type: str = "B", num_classes: int = 400,
                 layer4_blocks: int | None = None, widen_factor: float = 1.0) -> None:
        super().__init__()
        widths = [int(w * widen_factor) for w in BLOCK_WIDTHS]
        if shortcut_type not in ("A", "B"):
            raise ValueError(f"shortcut_type must be 'A' or 'B', got {shortcut_type!r}")
        if layer4_blocks is not None and not 1 <= layer4_blocks <= layers[3]:
            raise ValueError(f"layer4_blocks must be None or in 1..{layers[3]}, "
                             f"got {layer4_blocks}")
        self.layer4_blocks, self.shortcut_type = layer4_blocks, shortcut_type
        self.inplanes = widths[0]
        self.conv1 = nn.Conv3d(3, widths[0], kernel_size=7, stride=(1, 2, 2), padding=(3, 3, 3),
                               bias=False)
        self.bn1 = nn.BatchNorm3d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=(3, 3, 3), stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0], shortcut_type)
        self.layer2 = self._make_layer(block, widths[1], layers[1], shortcut_type, stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], shortcut_type, stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], shortcut_type, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes, blocks, shortcut_type, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            if shortcut_type == "A":
                downsample = ZeroPadShortcut(planes * block.expansion, stride)
            else:
                downsample = nn.Sequential(
                    nn.Conv3d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride,
                              bias=False),
                    nn.BatchNorm3d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, 3, T, H, W)` -> pooled features `(B, 512 * widen_factor * expansion)` (2048 for
        resnet50)."""
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        h = self.layer3(self.layer2(self.layer1(h)))
        for block in list(self.layer4)[:self.layer4_blocks]:
            h = block(h)  # after layer4: (B, C, ceil(T/16), ceil(H/32), ceil(W/32))
        return self.avgpool(h).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, 3, T, H, W)` -> logits `(B, num_classes)`; the whole clip gives one prediction."""
        return self.fc(self.features(x))


def get_fine_tuning_parameters(model: nn.Module, ft_begin_index: int) -> list[dict]:
    """Optimizer parameter groups: layer{ft_begin_index}..layer4 and fc train at the optimizer's lr,
    everything else gets lr 0 (ft_begin_index 0: everything trains, 5: only fc). The assignment's
    version had a for/else bug that put every parameter in the lr-0 group as well."""
    if ft_begin_index == 0:
        return [{"params": list(model.parameters())}]
    prefixes = tuple(f"layer{i}." for i in range(ft_begin_index, 5)) + ("fc.",)
    train, frozen = [], []
    for name, p in model.named_parameters():
        (train if name.startswith(prefixes) else frozen).append(p)
    return [{"params": train}] + ([{"params": frozen, "lr": 0.0}] if frozen else [])


ARCHS = {  # name -> (block, blocks per layer), as in Hara's models/resnet.py
    "resnet10": (BasicBlock, [1, 1, 1, 1]), "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]), "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]), "resnet152": (Bottleneck, [3, 8, 36, 3]),
    "resnet200": (Bottleneck, [3, 24, 36, 3]),
}


def build(arch: str = "resnet50", num_classes: int = 400, layer4_blocks: int | None = None,
          **kwargs: object) -> ResNet:
    """ResNet for an `ARCHS` name, e.g. build("resnet50", 101, layer4_blocks=1)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")
    block, layers = ARCHS[arch]
    return ResNet(block, layers, num_classes=num_classes, layer4_blocks=layer4_blocks, **kwargs)


def resnet10(**kwargs: object) -> ResNet:
    return build("resnet10", **kwargs)


def resnet18(**kwargs: object) -> ResNet:
    return build("resnet18", **kwargs)


def resnet34(**kwargs: object) -> ResNet:
    return build("resnet34", **kwargs)


def resnet50(**kwargs: object) -> ResNet:
    return build("resnet50", **kwargs)


def resnet101(**kwargs: object) -> ResNet:
    return build("resnet101", **kwargs)


def resnet152(**kwargs: object) -> ResNet:
    return build("resnet152", **kwargs)


def resnet200(**kwargs: object) -> ResNet:
    return build("resnet200", **kwargs)


def _guess_arch(state_dict):
    """Architecture name and shortcut type matching a state_dict's keys, or None if none does."""
    layers = [len({k.split(".")[1] for k in state_dict if k.startswith(f"layer{i}.")})
              for i in range(1, 5)]
    block = Bottleneck if "layer1.0.conv3.weight" in state_dict else BasicBlock
    shortcut = "B" if "layer2.0.downsample.0.weight" in state_dict else "A"
    for name, (b, ls) in ARCHS.items():
        if b is block and ls == layers:
            return name, shortcut
    return None


def load_kinetics(path: str, arch: str = "resnet50", num_classes: int = 101,
                  layer4_blocks: int | None = None, shortcut_type: str | None = None) -> ResNet:
    """Build `arch` with 400 classes, load a Kinetics checkpoint strictly, then replace fc with a
    fresh `nn.Linear(fc.in_features, num_classes)` (kept as is when num_classes == 400).

    `path` holds Hara's format (`{"state_dict": {"module.conv1.weight": ...}, "arch": ..., ...}`)
    or a plain state_dict, with or without the DataParallel `module.` prefix. The shortcut type is
    read off the weights when not given (Hara's resnet18 and resnet34 use A, the others B). Raises
    FileNotFoundError if `path` is missing and ValueError if it is empty, partial or corrupt, or its
    weights don't fit `arch` (naming keys and a likely arch)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty (0 bytes), a failed download? Download Hara et al.'s "
                         f"{os.path.basename(path)} again")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # Hara's 2017 files were pickled by torch 0.3 and can hold objects the weights-only
            # unpickler refuses (e.g. in the optimizer state); a full unpickle can run code, so it
            # is only a fallback for a file the user chose to trust as pretrained weights.
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"{path} is partial or corrupt: download it again (Hara et al.'s "
                         f"{os.path.basename(path)}) ({first})") from e
    if isinstance(ckpt, dict) and {"kind", "identity", "model"} <= set(ckpt):
        raise ValueError(f"{path} is a checkpoint of this repo's training scripts "
                         f"(a {ckpt['kind']} {ckpt.get('arch')} model), not Hara et al.'s "
                         f"Kinetics weights: to continue it, pass its folder as --out with "
                         f"--resume")
    state_dict = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise ValueError(f"{path}: expected a state_dict or a dict with key 'state_dict'")
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    conv1 = state_dict.get("conv1.weight")
    if conv1 is not None and conv1.dim() == 4:
        raise ValueError(f"{path} holds 2D convolutions (an image model such as an ImageNet "
                         f"ResNet or a single-frame checkpoint), not a 3D ResNet: use it with "
                         f"train_single_frame.py")
    guess = _guess_arch(state_dict)
    if shortcut_type is None:
        shortcut_type = guess[1] if guess else "B"

    model = build(arch, num_classes=400, layer4_blocks=layer4_blocks, shortcut_type=shortcut_type)
    expected = model.state_dict()
    # torch < 0.4 files lack BatchNorm's num_batches_tracked buffers; BatchNorm fills them in.
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
                  for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or mismatched:
        hint = ("; no known 3D ResNet matches its keys" if guess is None
                else "; its layers match, so not a Kinetics-400 checkpoint"
                if guess == (arch, shortcut_type)
                else f"; it looks like --arch {guess[0]}")
        raise ValueError(
            f"{path} does not fit {arch} (shortcut {shortcut_type}): missing {missing[:3]} "
            f"({len(missing)}), unexpected {unexpected[:3]} ({len(unexpected)}), "
            f"shape mismatch {mismatched[:3]} ({len(mismatched)}){hint}")
    model.load_state_dict(state_dict, strict=True)
    if num_classes != 400:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
