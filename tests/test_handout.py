"""The handout's own training loop: a multiprocessing Pool mapping loadFrame / loadSequence over a batch
of (path, augment) tuples, on the four real UCF-101 clips.

The assignment (../shared/assignment.txt) loads a batch with

    pool_threads = Pool(8, maxtasksperchild=200)
    video_list = [(train[0][k], augment) for k in random_indices[i:(batch_size+i)]]
    data = pool_threads.map(loadFrame, video_list)      # loadSequence in part 2
    x = np.asarray(data, dtype=np.float32)

This file runs that loop as written, and checks what it hands the model: float32 [3, 224, 224] frames
and [3, 16, 224, 224] clips, normalised with the ImageNet and Kinetics statistics, each a real frame or
clip of its own video; and, without augmentation and with the draws seeded, the very values the
training scripts' DataLoader path yields (hf.ClipDataset + hf.make_loader: uint8, normalised inside
engine.FineTune), down to the model's logits. A corrupt video in the batch raises an error naming it
(the handout's empty array) instead of hanging the pool, and the workers forked after the model has
run on the CPU do not hang on torch's thread pool.

Usage: .venv/bin/python -m pytest -q tests/test_handout.py
"""
import os
import pickle
from multiprocessing import Pool

import numpy as np
import pytest
import torch
import torchvision

import engine
import helperFunctions as hf
import resnet_3d
import video_io

SEED, SIZE = 3, 48  # the seeded comparisons run at 48x48 (the handout's 224x224 is checked for shapes)


def seeded_frame(args):
    """loadFrame((path, augment)) with its draw seeded as the training loader seeds sample `index` of
    epoch 0 (the handout's 2-tuple draws from the global NumPy RNG instead)."""
    path, augment, index = args
    return hf.loadFrame((path, augment), size=SIZE, rng=np.random.default_rng([SEED, 0, index]))


def seeded_sequence(args):
    path, augment, index = args
    return hf.loadSequence((path, augment), size=SIZE, rng=np.random.default_rng([SEED, 0, index]))


@pytest.fixture(scope="module")
def pool():
    """The handout's pool of 8 worker processes, each replaced after 200 tasks, made as the handout makes
    it: after the model is built and has run (torch's CPU thread pool is up when the workers are forked:
    they must not wait on it)."""
    torch.set_num_threads(2)
    model = torchvision.models.resnet18(num_classes=4)
    with torch.no_grad():
        model.eval()(torch.rand(4, 3, 64, 64))
    pool_threads = Pool(8, maxtasksperchild=200)
    yield pool_threads
    pool_threads.close()
    pool_threads.terminate()


def pmap(pool, load, video_list):
    """pool.map(load, video_list), the handout's call, but failing after a while instead of hanging."""
    return pool.map_async(load, video_list).get(timeout=120)


def undo(x, mean, std):
    """A normalised float sample (3, ..., S, S) -> 0-255 float64 (..., S, S, 3)."""
    return (np.moveaxis(np.asarray(x, dtype=np.float64), 0, -1) * np.array(std) + np.array(mean)) * 255


def resized(path, size):
    """Every frame of a real clip decoded here with OpenCV and resized as the handout does: uint8 (T, S, S, 3)."""
    import cv2
    cap, frames = cv2.VideoCapture(path), []
    while (f := cap.read())[0]:
        frames.append(cv2.resize(cv2.cvtColor(f[1], cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_LINEAR))
    cap.release()
    return np.stack(frames)


@pytest.fixture
def raw_root(make_root):
    """A data root holding the real clips as the course's raw HDF5 copy only, which the handout reads
    (lossless: the AVIs' pixels)."""
    return make_root(formats=("hdf5",))


def test_handout_batches_have_its_shapes_and_are_frames_of_each_video(raw_root, pool):
    """The loop as written (224x224, random frames and clips, augment False and True): float32 batches of
    the handout's shapes; without augmentation each sample is, to float precision, one frame (one run of
    16 consecutive frames) of its own video, decoded and resized here with OpenCV."""
    paths = raw_root.paths
    for augment in (False, True):
        video_list = [(p, augment) for p in paths]
        data = pmap(pool, hf.loadFrame, video_list)
        assert all(video.size > 0 for video in data)  # the handout's skip test: nothing to skip
        x = np.asarray(data, dtype=np.float32)
        assert x.shape == (4, 3, 224, 224) and all(d.dtype == np.float32 for d in data)
        clips = pmap(pool, hf.loadSequence, video_list)
        x = np.asarray(clips, dtype=np.float32)
        assert x.shape == (4, 3, 16, 224, 224) and all(c.dtype == np.float32 for c in clips)
        if augment:
            continue
        for p, frame, clip in zip(paths, data, clips):
            ref = resized(raw_root.source[p], 224)
            f = undo(frame, hf.IMAGENET_MEAN, hf.IMAGENET_STD)
            err = [np.abs(r - f).max() for r in ref]
            assert min(err) < 1e-3, (p, min(err))  # one of its frames
            c = undo(clip, hf.KINETICS_MEAN, hf.KINETICS_STD)  # (16, S, S, 3)
            start = int(np.argmin([np.abs(r - c[0]).max() for r in ref[:len(ref) - 15]]))
            assert np.abs(ref[start:start + 16] - c).max() < 1e-3, (p, start)  # 16 consecutive frames


@pytest.mark.parametrize("augment", [False, True])
def test_handout_loop_equals_the_training_loader_after_normalisation(raw_root, pool, augment):
    """Seeded as the training loader seeds each sample, the Pool's float batch equals hf.normalize of the
    uint8 batch hf.ClipDataset + hf.make_loader yield (what engine.FineTune normalises inside), and a
    model given either gives the same logits."""
    paths, labels = raw_root.paths, np.arange(4)
    for frames, load, mean, std in ((1, seeded_frame, hf.IMAGENET_MEAN, hf.IMAGENET_STD),
                                    (16, seeded_sequence, hf.KINETICS_MEAN, hf.KINETICS_STD)):
        data = pmap(pool, load, [(p, augment, i) for i, p in enumerate(paths)])
        x = np.asarray(data, dtype=np.float32)
        ds = hf.ClipDataset(paths, labels, augment=augment, size=SIZE, frames=frames, seed=SEED)
        loader = hf.make_loader(ds, batch_size=4, shuffle=False, workers=2, seed=SEED)
        loader.batch_sampler.set_epoch(0)
        (batch,) = list(loader)
        assert batch["index"].tolist() == [0, 1, 2, 3] and batch["label"].tolist() == [0, 1, 2, 3]
        assert batch["video"].dtype == torch.uint8 and not batch["failed"]
        fast = hf.normalize(batch["video"], mean, std)
        assert fast.shape == x.shape and torch.equal(fast, torch.from_numpy(x)), frames
        # the model's own normalisation: FineTune on the uint8 batch == the bare network on the float one
        torch.manual_seed(0)
        net = (torchvision.models.resnet18(num_classes=4) if frames == 1
               else resnet_3d.build("resnet10", num_classes=4, layer4_blocks=1)).eval()
        with torch.no_grad():
            torch.testing.assert_close(engine.FineTune(net, "fc", mean, std).eval()(batch["video"]),
                                       net(torch.from_numpy(x)), rtol=1e-5, atol=1e-5)
        if not augment:  # the frames the seeded draw picks, by hand: the loader's rng, clip_indices
            for i, p in enumerate(paths):
                start = int(np.random.default_rng([SEED, 0, i]).integers(raw_root.frames[p] - frames + 1))
                want = resized(raw_root.source[p], SIZE)[start:start + frames]
                got = undo(x[i], mean, std)
                assert np.abs((got[None] if frames == 1 else got) - want).max() < 1e-3, (p, start)


def test_a_corrupt_video_in_the_batch_is_named_not_hung(real_root, pool, tmp_path):
    """Where the handout's loadFrame printed and returned an empty array, ours raises VideoReadError
    naming the file; through the Pool that error must reach the caller (it crossed the process boundary
    once and hung pool.map for good)."""
    bad = tmp_path / "UCF-101" / "Bad" / "v_Bad_g01_c01.avi"
    os.makedirs(bad.parent)
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    # what the pool does with a worker's exception: pickle it there, unpickle it here (checked first, so
    # that a failure here cannot leave the module's pool without its result thread)
    e = video_io.VideoReadError(str(bad), "cannot open this video")
    copy = pickle.loads(pickle.dumps(e))
    assert (type(copy), copy.path, copy.reason, str(copy)) == (type(e), e.path, e.reason, str(e))
    for load in (hf.loadFrame, hf.loadSequence):
        job = pool.map_async(load, [(real_root.paths[0], False), (str(bad), False)])
        with pytest.raises(video_io.VideoReadError) as e:
            job.get(timeout=120)
        assert e.value.path == str(bad) and str(bad) in str(e.value) and "cannot open this video" in str(e.value)
