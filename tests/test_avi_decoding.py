"""AVI decoding: files whose container reports no or a bogus frame count, and frame-exact clips.

A raw MPEG-4 elementary stream saved under an .avi name (UCF-101 rehearsal sets and some real
downloads have them) makes FFmpeg report a bogus frame count (-192153584101141, or 0). One file must
get one verdict everywhere: counting, training clips and whole-video testing.

Usage: .venv/bin/pytest -q tests/test_avi_decoding.py
"""
import multiprocessing
import os

import av
import cv2
import numpy as np
import pytest
from conftest import canonical_path

import helperFunctions as hf
import video_io
from benchmarks import measure

N_FRAMES, W, H, GOP = 40, 80, 64, 12  # a GOP longer than one frame: inter frames, as in UCF-101


def moving_frames(n, seed=0):
    """uint8 RGB (n, H, W, 3): a bright square that moves 2 px per frame over noise, so that every
    frame differs from its neighbours (a frame off by one is caught)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
    out = np.repeat(base[None], n, axis=0)
    for t in range(n):
        x = (2 * t) % (W - 16)
        out[t, 20:36, x:x + 16] = (230, 200, 40)
    return out


def write_raw_mpeg4(path, frames, fps=25):
    """Encode RGB frames (T, H, W, 3) as MPEG-4 Part 2 and write the bare elementary stream (no
    container: FFmpeg's 'm4v' muxer) to `path`, whatever its extension."""
    out = av.open(str(path), "w", format="m4v")
    try:
        s = out.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.gop_size = GOP
        for f in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(s.encode())
    finally:
        out.close()


def decode_one_by_one(path):
    """Every frame of a video, decoded in order from the start by OpenCV (independent of our
    reader, which is PyAV): uint8 RGB (T, H, W, 3). benchmark.py's exactness check uses the same."""
    return measure.reference_frames(str(path))


@pytest.fixture
def raw_stream(tmp_path):
    """A data root holding one raw MPEG-4 stream as UCF-101/Cls/v_Cls_g01_c01.avi; returns its path."""
    path = canonical_path(tmp_path, "v_RawStream_g01_c01")
    os.makedirs(os.path.dirname(path))
    write_raw_mpeg4(path, moving_frames(N_FRAMES))
    return path


def test_raw_stream_header_is_bogus(raw_stream):
    """The premise: the container's count is implausible (else the tests below test nothing)."""
    cap = cv2.VideoCapture(raw_stream)
    n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    assert n <= 0 or n > video_io.MAX_PLAUSIBLE_FRAMES, n


def test_raw_stream_counted_and_read(raw_stream):
    seq = decode_one_by_one(raw_stream)
    assert len(seq) == N_FRAMES
    assert video_io.count_frames(raw_stream) == len(seq)
    assert video_io.count_frames(raw_stream) == len(seq)  # remembered, same answer
    assert np.array_equal(video_io.read_frames(raw_stream), seq)
    for start in (0, 7, N_FRAMES - 16):
        assert np.array_equal(video_io.read_frames(raw_stream, np.arange(start, start + 16)), seq[start:start + 16])
    idx = [30, 2, 2, 39, 0]
    assert np.array_equal(video_io.read_frames(raw_stream, idx), seq[idx])
    with pytest.raises(video_io.VideoReadError, match=raw_stream):
        video_io.read_frames(raw_stream, [N_FRAMES])


def test_raw_stream_training_clip(raw_stream):
    """A training clip loads from it, and is the clip the same random draws pick from the frames
    decoded one by one."""
    seq = decode_one_by_one(raw_stream)
    for seed in range(3):
        clip = hf.load_clip(raw_stream, True, 32, 16, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        idx = hf.clip_indices(len(seq), 16, rng)
        aug = hf.draw_augment(rng, H, W)
        assert np.array_equal(clip, hf.apply_augment(seq[idx], aug, 32))
    sample = hf.ClipDataset([raw_stream], [0], augment=True, size=32, frames=16)[0]
    assert "failed" not in sample, sample.get("error")
    assert tuple(sample["video"].shape) == (16, 32, 32, 3)
    frame = hf.ClipDataset([raw_stream], [0], augment=False, size=32, frames=1)[0]
    assert tuple(frame["video"].shape) == (32, 32, 3)


def test_count_remembered_per_file_version(raw_stream):
    """The remembered count belongs to the file's version: rewritten shorter, it is counted again."""
    assert video_io.count_frames(raw_stream) == N_FRAMES
    write_raw_mpeg4(raw_stream, moving_frames(N_FRAMES // 2, seed=1))
    os.utime(raw_stream, ns=(0, 10**9))  # a new mtime even on a coarse-clock file system
    assert video_io.count_frames(raw_stream) == N_FRAMES // 2 == len(decode_one_by_one(raw_stream))


def write_mpeg4_avi(path, frames, fps=25.0):
    """RGB frames (T, H, W, 3) -> MPEG-4 Part 2 in AVI through OpenCV ('FMP4': FFmpeg's encoder, a
    keyframe every 12 frames, no B-frames): an AVI whose clips are read by seeking."""
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FMP4"), fps, (w, h))
    assert writer.isOpened(), f"{path}: OpenCV has no MPEG-4 encoder"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def clips_exact(path, ref, monkeypatch):
    """Every 16-frame clip of a video read through read_frames equals the frames decoded one by one
    from the start (`ref`), with one open of the file per clip. Returns how many clips seeked."""
    opened, seeks, open_, collect = [], [], av.open, video_io._collect
    monkeypatch.setattr(av, "open", lambda p, *a, **k: (opened.append(p), open_(p, *a, **k))[1])
    monkeypatch.setattr(video_io, "_collect", lambda *a: (seeks.append(a[-1] is None), collect(*a))[1])
    for s in range(len(ref) - 15):
        opened.clear()
        assert np.array_equal(video_io.read_frames(path, np.arange(s, s + 16)), ref[s:s + 16]), (path, s)
        assert len(opened) == 1, (path, s, opened)
        if s % 8 == 0:
            opened.clear()
            hf.load_clip(path, False, 32, 16, np.random.default_rng(s))
            assert len(opened) == 1, (path, s, opened)  # the count and the clip from one open
    monkeypatch.undo()
    return sum(seeks)


def test_real_clips_seek_exact(real_root, monkeypatch):
    """Our AVI reader (PyAV) on the real XviD/DivX clips: the whole video equals OpenCV's decode
    pixel for pixel, and every 16-frame clip equals the same frames decoded one by one from the start,
    including the packed-bitstream ones (B-frames, timestamps 1, 2, 4, 3, ...), which are never seeked."""
    seeked = {}
    for p in real_root.paths:
        src = real_root.source[p]
        ref = decode_one_by_one(src)
        assert len(ref) == real_root.frames[p] == video_io.count_frames(src)
        assert np.array_equal(video_io.read_frames(src), ref)
        seeked[video_io.video_name(p)] = clips_exact(src, ref, monkeypatch)
    assert seeked["v_Basketball_g01_c01"] > 0  # a keyframe every 12 frames: its clips do seek
    assert seeked["v_ApplyEyeMakeup_g01_c01"] == seeked["v_Shotput_g05_c02"] == 0  # packed: from the start


def test_generated_mpeg4_avi_seek_exact(tmp_path, monkeypatch):
    path = canonical_path(tmp_path, "v_Seek_g01_c01")
    os.makedirs(os.path.dirname(path))
    write_mpeg4_avi(path, moving_frames(N_FRAMES))
    ref = decode_one_by_one(path)
    assert len(ref) == N_FRAMES == video_io.count_frames(path)
    assert clips_exact(path, ref, monkeypatch) > 0


def test_forked_workers_decode_after_parent(real_root):
    """DataLoader workers are forked: a process that has decoded (and so set up swscale) must still
    fork workers that decode. A context inherited through fork once hung them; a timeout catches it."""
    src = [real_root.source[p] for p in real_root.paths]
    expected = [video_io.read_frames(p, [5]) for p in src]  # the parent decodes first
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_frame5, src).get(timeout=120)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def _frame5(path):
    return video_io.read_frames(path, [5])
