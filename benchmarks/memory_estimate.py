"""The GPU memory each phase of the assignment needs, computed without a GPU.

Usage: python -m benchmarks.memory_estimate [--out docs/results/memory-computed.json]

Each phase's step (two for training, so that Adam's state exists) runs the scripts' own network
(engine.FineTune around torchvision's ResNet-50 or resnet_3d's) at the assignment's batch and sizes
on PyTorch's meta device: shapes without data. A dispatch mode adds the bytes of every tensor an
operation creates, takes them off when the last tensor of its storage is freed, and keeps the peak,
with the weights and buffers counted from the start. The arithmetic is fp32: with bf16 autocast on
a GPU the activations take about half, so these are upper bounds (`--precision fp32`'s figures).
Not counted: the CUDA context (about 0.5 GB, outside PyTorch's allocator) and cuDNN's workspaces;
benchmarks/gpu_check.sh measures the real peak on a GPU.
"""
import argparse
import platform
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import engine
import resnet_3d
import utils


class PeakMemory(TorchDispatchMode):
    """Live bytes of the tensors that operations create (each storage once), and their peak;
    `base`: bytes alive before (the weights)."""

    def __init__(self, base: int = 0) -> None:
        super().__init__()
        self.live, self.peak, self.storages = base, base, {}

    def _track(self, t: torch.Tensor) -> None:
        key = t.untyped_storage()._cdata
        if key not in self.storages:
            self.storages[key] = [t.untyped_storage().nbytes(), 0]
            self.live += self.storages[key][0]
            self.peak = max(self.peak, self.live)
        self.storages[key][1] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key) -> None:
        entry = self.storages[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.storages[key]

    def __torch_dispatch__(self, func: Callable, types: tuple, args: tuple = (),
                           kwargs: dict | None = None) -> object:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


# the assignment's steps: (phase, kind, batch, frames per input, training), the test scripts'
# batches their default --batch-size (frames, windows)
PHASES = (("train single frame", "single_frame", 100, 1, True),
          ("test single frame", "single_frame", 200, 1, False),
          ("train 3D", "3d", 32, 16, True), ("test 3D", "3d", 32, 16, False))
GIB = 2**30


def network(kind: str, layer4_blocks: int, training: bool) -> engine.FineTune:
    """The assignment's network of a phase, on the meta device."""
    with torch.device("meta"):
        if kind == "3d":
            model = resnet_3d.build("resnet50", num_classes=101, layer4_blocks=layer4_blocks)
            return engine.FineTune(model, "layer4.0" if training else "fc",
                                   *engine.input_stats("3d"))
        model = torchvision.models.resnet50(weights=None, num_classes=101)
        return engine.FineTune(model, "layer4.2" if training else "fc",
                               *engine.input_stats("single_frame"))


def peak_bytes(kind: str, batch: int, frames: int, training: bool, size: int = 224,
               layer4_blocks: int = 1) -> int:
    """Peak bytes of one step (two for training, so that Adam's state exists), fp32."""
    net = network(kind, layer4_blocks, training)
    state = sum(t.untyped_storage().nbytes() for t in [*net.parameters(), *net.buffers()])
    shape = (batch, size, size, 3) if frames == 1 else (batch, frames, size, size, 3)
    with PeakMemory(base=state) as mem:
        x = torch.empty(shape, dtype=torch.uint8, device="meta")
        y = torch.zeros(batch, dtype=torch.int64, device="meta")
        if training:
            net.train()
            optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad],
                                         foreach=False)
            for _ in range(2):
                loss = F.cross_entropy(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                del loss
        else:
            with torch.no_grad():
                net.eval()(x)
    return mem.peak


def estimate() -> list:
    """[{"phase", "batch", "layer4_blocks", "peak_gib"}] of every phase, then the 3D training with
    all of layer4 and at half the batch (what a smaller GPU can change)."""
    cases = [(phase, kind, batch, frames, training, 1)
             for phase, kind, batch, frames, training in PHASES]
    cases += [("train 3D, --layer4-blocks 3", "3d", 32, 16, True, 3),
              ("train 3D, --batch-size 16", "3d", 16, 16, True, 1),
              ("test 3D, --batch-size 8", "3d", 8, 16, False, 1)]
    rows = []
    for phase, kind, batch, frames, training, blocks in cases:
        gib = peak_bytes(kind, batch, frames, training, layer4_blocks=blocks) / GIB
        rows.append({"phase": phase, "batch": batch,
                     "layer4_blocks": blocks if kind == "3d" else None,
                     "peak_gib": round(gib, 2)})
        print(f"{phase:<30} {gib:6.2f} GiB", flush=True)
    return rows


def markdown_table(results: dict) -> str:
    """The table the docs show of a memory_estimate results file."""
    lines = ["| phase | batch | peak (GiB, fp32, computed) |", "|---|---:|---:|"]
    lines += [f"| {r['phase']} | {r['batch']} | {r['peak_gib']:.2f} |" for r in results["phases"]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=None,
                   help="results JSON to write (e.g. docs/results/memory-computed.json)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    results = {"tool": "memory_estimate", "method": "meta device, fp32 (an upper bound of bf16)",
               "torch": torch.__version__, "python": platform.python_version(),
               "phases": estimate()}
    if args.out:
        utils.write_json(args.out, results)
    print(markdown_table(results))
    return results


if __name__ == "__main__":
    main(parse_args())
