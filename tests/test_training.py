"""Tests for the training path (engine.py, train_single_frame.py, train_3d.py) on the tiny toy set:
the loss goes down, FineTune freezes what it should (weights and BatchNorm statistics), resume and
interruption (SIGINT, SIGKILL) end with the weights of an uninterrupted run, corrupt checkpoints are
named, and torchrun with 2 CPU processes trains like one process: the same global batch of --batch-size
samples at every step (SeededBatches shares it out).

Usage: .venv/bin/pytest -q tests/test_training.py

Everything is made small: 32x32 inputs, 2D resnet18/resnet50 and 3D resnet10/resnet18, 16 training
and 8 test videos. Runs are compared bit for bit: same seed, same thread count (1) and CPU kernels
give identical floats; only the torchrun comparison (a different reduction order) uses a tolerance.
"""
import copy
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision

import engine
import helperFunctions as hf
import resnet_3d
import train_3d
import train_single_frame

REPO = Path(__file__).resolve().parents[1]

EPOCHS = 5  # length of the uninterrupted reference run
# One thread everywhere: identical floats in and out of subprocesses, and no oversubscribed cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def args_2d(root, out, *extra):
    """Toy settings for train_single_frame.py; `extra` flags override them."""
    return train_single_frame.parse_args(
        ["--data-root", str(root), "--out", str(out), "--arch", "resnet18", "--pretrained", "none",
         "--train-from", "all", "--size", "32", "--batch-size", "8", "--epochs", "1", "--workers", "0",
         "--device", "cpu", "--lr", "1e-3", *map(str, extra)])


def args_3d(root, out, *extra):
    """Toy settings for train_3d.py; `extra` flags override them."""
    return train_3d.parse_args(
        ["--data-root", str(root), "--out", str(out), "--arch", "resnet10", "--pretrained", "none",
         "--train-from", "all", "--size", "32", "--batch-size", "8", "--epochs", "1", "--workers", "0",
         "--device", "cpu", "--lr", "1e-3", *map(str, extra)])


STARTED = []  # processes started by cli(), killed after each test (a failed test leaves none running)


@pytest.fixture(autouse=True)
def kill_started():
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)


def cli(script, args, tmp, name):
    """Start `python script args` in its own session (so a signal reaches it like a Ctrl-C reaches a
    terminal's process group) with output in files (a full pipe would block it)."""
    out, err = open(tmp / f"{name}.out", "w"), open(tmp / f"{name}.err", "w")
    # A shell's background job (`make test &`) starts with SIGINT ignored, which children inherit, and
    # then Ctrl-C does nothing. A Python handler is reset to the default by exec: the child gets Ctrl-C.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        STARTED.append(subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=REPO, env=ENV,
                                        stdout=out, stderr=err, start_new_session=True))
    finally:
        signal.signal(signal.SIGINT, old)
    return STARTED[-1]


def read(tmp, name):
    return (tmp / f"{name}.out").read_text() + (tmp / f"{name}.err").read_text()


def wait_for(cond, proc, what, timeout=300):
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the training process ended (status {proc.returncode}) before {what}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def inode(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def log_rows(out):
    with open(Path(out) / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_same_state(a, b, what):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{what}: {len(diff)} tensors differ, e.g. {diff[:3]}"


def assert_same_optimizer(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        for k, v in a["state"][i].items():
            assert torch.equal(v, b["state"][i][k]), f"optimizer state {i}.{k} differs"


@pytest.fixture(scope="module")
def straight(toy_root, tmp_path_factory):
    """An uninterrupted 2D run of EPOCHS epochs; the checkpoint written after each epoch is kept
    (copied as save_checkpoint is called), so any resumed run can be compared with it."""
    out = tmp_path_factory.mktemp("straight")
    saved, save = {}, engine.save_checkpoint

    def keep(path, state):
        saved[state["epoch"]] = copy.deepcopy(state)
        save(path, state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "save_checkpoint", keep)
        train_single_frame.main(args_2d(toy_root, out, "--epochs", EPOCHS))
    return out, saved


# ----------------------------------------------------------------------------- learning

@pytest.mark.parametrize("kind", ["single_frame", "3d"])
def test_few_steps_lower_the_loss(toy_root, kind):
    """Adam steps through engine.train_one_epoch on one batch of the 16 toy training videos lower its loss."""
    torch.manual_seed(0)
    _, (paths, labels), _ = hf.getUCF101(toy_root, 1)
    frames = 1 if kind == "single_frame" else 16
    data = hf.ClipDataset(paths, labels, augment=True, size=32, frames=frames)
    loader = hf.make_loader(data, len(data), shuffle=False, workers=0)
    model = (torchvision.models.resnet18(num_classes=4) if kind == "single_frame"
             else resnet_3d.build("resnet10", num_classes=4))
    net = engine.FineTune(model, "all", *engine.input_stats(kind))
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    failures, run = engine.FailureLog(), engine.Run(torch.device("cpu"))
    losses = [engine.train_one_epoch(net, opt, loader, run, failures)["loss"]
              for _ in range(4)]  # the last loss is after 3 steps
    assert failures.count == 0
    assert losses[-1] < 0.5 * losses[0], losses  # from about ln(4) = 1.39


# ----------------------------------------------------------------------------- what fine-tuning trains

def spy_train(monkeypatch):
    """Wrap engine.place (which every training script hands its FineTune model) to keep the network and
    its initial weights, and count calls of every block."""
    seen = {}
    place = engine.place

    def spy(net, *rest):
        seen["net"], seen["init"] = net, copy.deepcopy(net.model.state_dict())
        seen["calls"] = {n: 0 for n, _ in net.model.named_children()}
        seen["calls"].update({f"layer4.{i}": 0 for i in range(len(net.model.layer4))})
        for name in seen["calls"]:
            def count(*_, name=name):
                seen["calls"][name] += 1
            net.model.get_submodule(name).register_forward_hook(count)
        return place(net, *rest)

    monkeypatch.setattr(engine, "place", spy)
    return seen


@pytest.mark.parametrize("kind", ["single_frame", "3d"])
def test_default_scope_trains_only_the_top(toy_root, tmp_path, monkeypatch, kind):
    """Default --train-from (2D resnet50: layer4.2; 3D resnet18: layer4.0 with layer4[1:] skipped):
    after an epoch the frozen weights and BatchNorm running statistics are untouched, the trained
    block and fc have moved, and the skipped 3D blocks never ran."""
    seen = spy_train(monkeypatch)
    if kind == "single_frame":
        args = args_2d(toy_root, tmp_path, "--arch", "resnet50", "--train-from", "layer4.2")
        trained, unused = ("layer4.2.", "fc."), ()
        train_single_frame.main(args)
    else:  # resnet10 has one block per layer: resnet18 has a layer4[1] to skip
        args = args_3d(toy_root, tmp_path, "--arch", "resnet18", "--train-from", "layer4.0", "--layer4-blocks", 1)
        trained, unused = ("layer4.0.", "fc."), ("layer4.1",)
        train_3d.main(args)
    init, net = seen["init"], seen["net"]
    final = load(tmp_path / "checkpoint.pt")["model"]
    assert final.keys() == init.keys()
    for k in init:
        if k.startswith(trained):
            if k.endswith("num_batches_tracked"):  # trained BatchNorm layers are in train mode
                assert final[k].item() == init[k].item() + 2, k  # 16 videos / batch 8
            else:
                assert not torch.equal(final[k], init[k]), f"{k} was trained but did not change"
        else:
            assert torch.equal(final[k], init[k]), f"{k} is frozen but changed"
    for name, p in net.model.named_parameters():
        assert p.requires_grad == name.startswith(trained), name
        assert (p.grad is not None) == name.startswith(trained), name  # frozen: no grad computed
    for name in unused:
        assert seen["calls"][name] == 0, f"{name} should be skipped"
    assert seen["calls"]["fc"] > 0 and seen["calls"]["conv1"] == seen["calls"]["fc"]


# ----------------------------------------------------------------------------- resume and interruption

def test_resume_reproduces_uninterrupted_run(toy_root, tmp_path, straight):
    """1 epoch, then --resume to 2 epochs: same weights, optimizer state and log as 2 straight epochs."""
    _, saved = straight
    train_single_frame.main(args_2d(toy_root, tmp_path, "--epochs", 1))
    train_single_frame.main(args_2d(toy_root, tmp_path, "--epochs", 2, "--resume"))
    ckpt = load(tmp_path / "checkpoint.pt")  # weights_only: plain tensors and values
    assert ckpt["epoch"] == 2 and ckpt["kind"] == "single_frame" and ckpt["class_list"] == saved[2]["class_list"]
    assert_same_state(ckpt["model"], saved[2]["model"], "resumed vs uninterrupted")
    assert_same_optimizer(ckpt["optimizer"], saved[2]["optimizer"])
    rows, ref = log_rows(tmp_path), log_rows(straight[0])[:2]
    assert [r["epoch"] for r in rows] == ["1", "2"] and "history" not in ckpt  # the log lives in log.csv
    # an integer count stays one in every row (a row read back and rewritten by a later epoch too)
    assert [r["failed_videos"] for r in log_rows(straight[0])] == ["0"] * EPOCHS
    for row, r in zip(rows, ref):  # every figure of the epoch lines, the time aside
        assert {k: v for k, v in row.items() if k != "seconds"} == {k: v for k, v in r.items() if k != "seconds"}


@pytest.mark.slow
def test_sigint_and_sigkill_lose_nothing(toy_root, tmp_path, straight):
    """A run stopped by Ctrl-C (SIGINT to its process group, a data-loading worker included) says how
    to resume and keeps its checkpoint; resumed, then SIGKILLed mid-run, it still leaves a loadable
    checkpoint; resumed again (past a stale .tmp file) it ends with the uninterrupted run's weights."""
    _, saved = straight
    out = tmp_path / "run"
    ckpt_path = out / "checkpoint.pt"
    flags = ["--data-root", toy_root, "--out", out, "--arch", "resnet18", "--pretrained", "none",
             "--train-from", "all", "--size", 32, "--batch-size", 8, "--workers", 1, "--device", "cpu",
             "--lr", "1e-3", "--epochs", 1000]  # far more epochs than it gets to run
    flags = list(map(str, flags))

    proc = cli("train_single_frame.py", flags, tmp_path, "int")
    wait_for(ckpt_path.exists, proc, "the first checkpoint")
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(120) != 0
    msg = read(tmp_path, "int")
    assert "interrupted" in msg and "--resume" in msg and str(ckpt_path) in msg, msg[-2000:]
    assert "Traceback" not in msg, msg[-3000:]
    k = load(ckpt_path)["epoch"]
    assert 1 <= k < EPOCHS - 1

    before = inode(ckpt_path)
    proc = cli("train_single_frame.py", flags + ["--resume"], tmp_path, "kill")
    wait_for(lambda: inode(ckpt_path) != before, proc, "a checkpoint after resuming")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    assert f"resumed from {ckpt_path} after epoch {k}" in read(tmp_path, "kill")
    m = load(ckpt_path)["epoch"]
    assert k < m < EPOCHS, (k, m)

    # A kill during torch.save leaves checkpoint.pt.tmp behind: it must never be taken for the checkpoint.
    (out / "checkpoint.pt.tmp").write_bytes(b"half a checkpoint")
    train_single_frame.main(args_2d(toy_root, out, "--epochs", EPOCHS, "--resume"))
    ckpt = load(ckpt_path)
    assert ckpt["epoch"] == EPOCHS
    assert_same_state(ckpt["model"], saved[EPOCHS]["model"], "interrupted twice vs uninterrupted")
    assert_same_optimizer(ckpt["optimizer"], saved[EPOCHS]["optimizer"])
    assert [int(r["epoch"]) for r in log_rows(out)] == list(range(1, EPOCHS + 1))
    assert not (out / "checkpoint.pt.tmp").exists()


def test_checkpoint_write_is_atomic(tmp_path, straight, monkeypatch):
    """A save that dies half-way leaves the previous checkpoint whole."""
    out, saved = straight
    path = tmp_path / "checkpoint.pt"
    engine.save_checkpoint(path, saved[1])

    def crash(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        engine.save_checkpoint(path, saved[2])
    assert load(path)["epoch"] == 1


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "bit_flip"])
def test_corrupt_checkpoint_is_named_on_resume(toy_root, tmp_path, straight, damage):
    """--resume (or no flag) on a damaged checkpoint.pt stops with a message naming the file, and keeps
    the file; --overwrite starts over. A flipped weight is caught by the digest the checkpoint records."""
    out, _ = straight
    data = (out / "checkpoint.pt").read_bytes()
    if damage == "bit_flip":  # a loadable file whose weights are not the ones it was saved with
        ckpt = load(out / "checkpoint.pt")
        ckpt["model"]["fc.bias"][0] += 1
        torch.save(ckpt, tmp_path / "checkpoint.pt")
        data = (tmp_path / "checkpoint.pt").read_bytes()
    data = {"truncated": data[:len(data) // 2], "empty": b"", "garbage": b"not a checkpoint\n" * 100}.get(damage, data)
    (tmp_path / "checkpoint.pt").write_bytes(data)
    why = "do not match the digest" if damage == "bit_flip" else "corrupt"
    for again in (["--resume"], []):
        with pytest.raises(SystemExit) as e:  # a message, not a traceback
            train_single_frame.main(args_2d(toy_root, tmp_path, "--epochs", 2, *again))
        msg = str(e.value)
        assert str(tmp_path / "checkpoint.pt") in msg and why in msg and "--overwrite" in msg, msg
        assert (tmp_path / "checkpoint.pt").read_bytes() == data  # left for the user to look at
    train_single_frame.main(args_2d(toy_root, tmp_path, "--epochs", 1, "--overwrite"))
    assert load(tmp_path / "checkpoint.pt")["epoch"] == 1


# ----------------------------------------------------------------------------- torchrun

@pytest.mark.slow
def test_torchrun_two_cpu_processes(toy_root, tmp_path):
    """torchrun --nproc_per_node 2 (gloo) of the 3D script with layers frozen and layer4[1] skipped:
    one checkpoint, written once, each epoch line printed once, and the same training as one
    process with the same --batch-size (each process takes half of every global batch, DDP averages
    the gradients, the loss is scaled by world / global batch)."""
    out = tmp_path / "ddp"
    flags = ["--arch", "resnet18", "--train-from", "fc", "--layer4-blocks", "1", "--epochs", "2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "train_3d.py"), *map(str, ["--data-root", toy_root, "--out", out, "--pretrained",
                                                 "none", "--size", 32, "--batch-size", 8, "--workers", 0,
                                                 "--device", "cpu", "--lr", "1e-3", *flags])]
    r = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["args.json", "checkpoint.pt", "log.csv"]
    assert r.stdout.count("2 processes") == 1
    for e in (1, 2):
        assert r.stdout.count(f"epoch {e}/2  train loss") == 1, r.stdout
    ddp = load(out / "checkpoint.pt")
    rows = log_rows(out)
    assert ddp["epoch"] == 2 and [r["epoch"] for r in rows] == ["1", "2"]

    train_3d.main(args_3d(toy_root, tmp_path / "one", "--batch-size", 8, *flags))
    one = load(tmp_path / "one" / "checkpoint.pt")
    assert ddp["processes"] == 2 and one["processes"] == 1 and ddp["identity"] == one["identity"]
    frozen = [k for k in one["model"] if not k.startswith("fc.")]
    assert_same_state({k: ddp["model"][k] for k in frozen}, {k: one["model"][k] for k in frozen}, "frozen")
    for k in ("fc.weight", "fc.bias"):
        torch.testing.assert_close(ddp["model"][k], one["model"][k], rtol=1e-4, atol=1e-5)
    for a, b in zip(rows, log_rows(tmp_path / "one"), strict=True):  # metrics are summed over both processes
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-4
        assert a["train_acc"] == b["train_acc"] and a["test_clip_acc"] == b["test_clip_acc"]
        assert a["failed_videos"] == b["failed_videos"] == "0"


@pytest.mark.parametrize("shuffle", [True, False])
def test_seeded_batches_same_global_batch_whatever_the_processes(shuffle):
    """The batches of an epoch, by hand: torch.randperm seeded with seed + epoch (or the list's order), cut
    into --batch-size pieces. Under 2 or 3 processes each step's samples, over all ranks, are exactly that
    piece (rank r takes its samples r, r + world, ...), so every optimizer step sees the same videos."""
    n, batch, seed = 21, 8, 3
    for epoch in (0, 4):
        order = (torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist() if shuffle
                 else list(range(n)))
        expected = [order[i:i + batch] for i in range(0, n, batch)]  # 8, 8, 5
        for world in (1, 2, 3):
            ranks = []
            for rank in range(world):
                sampler = hf.SeededBatches(n, batch, shuffle, seed, world, rank)
                sampler.set_epoch(epoch)
                ranks.append(list(sampler))
                assert len(ranks[-1]) == len(sampler) == 3
                assert all(e == epoch for step in ranks[-1] for _, e in step)  # the epoch travels with each index
            for step, want in enumerate(expected):
                shares = [[i for i, _ in r[step]] for r in ranks]
                assert sorted(i for s in shares for i in s) == sorted(want), (world, step)
                assert shares == [want[r::world] for r in range(world)]
    # what make_loader hands a process under torchrun: its share of each global batch
    loader = hf.make_loader(list(range(n)), batch, shuffle, 0, seed, world=2, rank=1)
    assert isinstance(loader.batch_sampler, hf.SeededBatches) and loader.batch_sampler.world == 2
