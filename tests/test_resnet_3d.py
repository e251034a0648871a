"""Tests for resnet_3d: Hara checkpoint loading, shapes, layer4_blocks, fine-tuning groups.

Usage: .venv/bin/pytest -q tests/test_resnet_3d.py
"""
import argparse

import pytest
import torch

import resnet_3d

torch.set_num_threads(2)


def _randomize_bn(model, seed=0):
    """Non-trivial BatchNorm statistics, so eval outputs depend on every loaded buffer."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return model.eval()


def _save_hara(model, path, **extra):
    """Save like Hara's resnet-50-kinetics.pth: DataParallel `module.` keys and, as torch 0.3
    wrote them, no num_batches_tracked buffers."""
    sd = {"module." + k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    torch.save({"state_dict": sd, "arch": "resnet-50", "epoch": 200, **extra}, path)


@pytest.fixture(scope="module")
def hara50(tmp_path_factory):
    torch.manual_seed(0)
    model = _randomize_bn(resnet_3d.resnet50(sample_size=112, sample_duration=16))
    path = tmp_path_factory.mktemp("ckpt") / "resnet-50-kinetics.pth"
    _save_hara(model, path)
    return model, path


def test_load_kinetics_hara_format_strict_and_same_outputs(hara50):
    ref, path = hara50
    model = resnet_3d.load_kinetics(path, arch="resnet50", num_classes=400).eval()
    x = torch.randn(2, 3, 16, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))

    model = resnet_3d.load_kinetics(path, arch="resnet50", num_classes=101)
    assert model.fc.out_features == 101 and model.fc.in_features == 2048
    ref_sd, sd = ref.state_dict(), model.state_dict()
    assert sd.keys() == ref_sd.keys()
    for k in sd:
        if not k.startswith("fc."):
            assert torch.equal(sd[k], ref_sd[k]), k


@pytest.mark.parametrize("prefix", ["", "module."])
def test_load_kinetics_plain_state_dict(tmp_path, prefix):
    ref = resnet_3d.resnet10()
    path = tmp_path / "plain.pth"
    torch.save({prefix + k: v for k, v in ref.state_dict().items()}, path)
    model = resnet_3d.load_kinetics(path, arch="resnet10", num_classes=400)
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_load_kinetics_falls_back_for_pickled_objects(tmp_path):
    # An argparse.Namespace (Hara's repo saves `opt`-like objects) is refused by weights_only=True.
    ref = resnet_3d.resnet10()
    path = tmp_path / "with_opt.pth"
    _save_hara(ref, path, opt=argparse.Namespace(model_depth=10))
    model = resnet_3d.load_kinetics(path, arch="resnet10", num_classes=7)
    assert model.fc.out_features == 7
    assert torch.equal(model.conv1.weight, ref.conv1.weight)


@pytest.mark.parametrize("frames,size", [(16, (64, 96)), (32, (32, 32)), (75, (32, 32))])
def test_output_shapes(hara50, frames, size):
    model = hara50[0]
    x = torch.randn(2, 3, frames, *size)
    try:
        with torch.no_grad():
            for blocks in (1, 3):
                model.layer4_blocks = blocks
                assert model(x).shape == (2, 400)
            if frames == 16:
                assert model.features(x).shape == (2, 2048)
    finally:
        model.layer4_blocks = None  # the model is shared with other tests


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_basic_block_archs(shortcut):
    model = resnet_3d.build("resnet18", num_classes=5, shortcut_type=shortcut).eval()
    has_downsample = any("downsample" in k for k in model.state_dict())
    assert has_downsample == (shortcut == "B")  # type A is parameter-free
    with torch.no_grad():
        assert model(torch.randn(1, 3, 17, 64, 96)).shape == (1, 5)
        assert model.features(torch.randn(1, 3, 16, 32, 32)).shape == (1, 512)


def test_layer4_blocks_1_matches_manual_forward(hara50):
    model = hara50[0]
    x = torch.randn(2, 3, 16, 64, 64)
    try:
        with torch.no_grad():  # the assignment's manual forward, skipping layer4[1] and layer4[2]
            h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
            h = model.layer3(model.layer2(model.layer1(h)))
            h = model.layer4[0](h)
            expected = model.fc(model.avgpool(h).view(h.size(0), -1))
            assert not torch.allclose(model(x), expected)  # all 3 blocks really differ
            model.layer4_blocks = 1
            torch.testing.assert_close(model(x), expected)
    finally:
        model.layer4_blocks = None  # the model is shared with other tests


def test_wrong_arch_and_missing_file(tmp_path):
    path = tmp_path / "resnet-18-kinetics.pth"
    _save_hara(resnet_3d.resnet18(), path)
    with pytest.raises(ValueError) as err:
        resnet_3d.load_kinetics(path, arch="resnet50")
    msg = str(err.value)
    assert str(path) in msg and "resnet50" in msg and "--arch resnet18" in msg

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        resnet_3d.load_kinetics(garbage)

    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        resnet_3d.load_kinetics(missing)
    with pytest.raises(ValueError, match="resnet101"):
        resnet_3d.build("resnet51")


def test_get_fine_tuning_parameters():
    model = resnet_3d.resnet10(num_classes=3)
    groups = resnet_3d.get_fine_tuning_parameters(model, 4)
    train = {id(p) for p in groups[0]["params"]}
    expected = {id(p) for n, p in model.named_parameters() if n.startswith(("layer4.", "fc."))}
    assert train == expected and "lr" not in groups[0]
    assert groups[1]["lr"] == 0.0
    assert len(train) + len(groups[1]["params"]) == len(list(model.parameters()))

    opt = torch.optim.SGD(groups, lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(2, 3, 16, 32, 32)).sum().backward()
    opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != n.startswith(("layer4.", "fc.")), n

    assert len(resnet_3d.get_fine_tuning_parameters(model, 0)[0]["params"]) == len(before)
    assert len(resnet_3d.get_fine_tuning_parameters(model, 5)[0]["params"]) == 2  # fc only


@pytest.mark.parametrize("widen", [0.5, 0.25])
def test_widen_factor_scales_every_layer(widen):
    """widen_factor multiplies the channels of conv1 and every layer (Hara's later code): resnet10 at
    0.5 has 32 / 64 / 128 / 256 channels, and the parameter count by hand."""
    c = [int(w * widen) for w in (64, 128, 256, 512)]
    model = resnet_3d.build("resnet10", num_classes=7, widen_factor=widen)
    assert model.conv1.weight.shape == (c[0], 3, 7, 7, 7)
    assert [model.layer4[0].conv2.weight.shape[0], model.fc.in_features] == [c[3], c[3]]
    # conv1 + bn1; per layer one BasicBlock (two 3x3x3 convs + two BNs) and, from layer2, a 1x1x1
    # downsample conv + BN (shortcut B); fc
    expected = 3 * 343 * c[0] + 2 * c[0]
    for i, ch in enumerate(c):
        cin = c[max(i - 1, 0)]
        expected += 27 * cin * ch + 27 * ch * ch + 4 * ch + ((cin * ch + 2 * ch) if i else 0)
    expected += c[3] * 7 + 7
    assert sum(p.numel() for p in model.parameters()) == expected
    x = torch.randn(2, 3, 16, 32, 32)
    assert model(x).shape == (2, 7)
