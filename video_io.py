"""Reading and writing the three copies of a UCF-101 video: the one home of the on-disk formats.

    <root>/UCF-101/<Class>/<video>.avi          the original (XviD AVI; any file FFmpeg decodes)
    <root>/UCF-101-hdf5/<Class>/<video>.hdf5    the course's raw copy: dataset `video` uint8 (T, H, W, 3)
    <root>/UCF-101-jpeg/<Class>/<video>.hdf5    our compact store: dataset `jpeg`, one JPEG per frame,
                                                attributes n_frames, fps, height, width, quality

A video is named by its canonical AVI path; `resolve_video` finds whichever copy exists. Every read
returns uint8 RGB frames (N, H, W, 3), and every failure is a VideoReadError naming the file.
"""
import itertools
import os
import threading
from contextlib import contextmanager

import av
import cv2
import h5py
import numpy as np
import simplejpeg
from av.video.reformatter import VideoReformatter

from utils import atomic_write

FORMATS = ("jpeg", "hdf5", "avi")  # the order in which copies of a video are looked for
STORE_DIRS = {"jpeg": "UCF-101-jpeg", "hdf5": "UCF-101-hdf5", "avi": "UCF-101"}
UCF_FPS = 25.0  # UCF-101's nominal frame rate, stored when a raw HDF5 source does not say
JPEG_QUALITY = 90  # ~1.3 grey levels mean absolute error on UCF-101, ~13x smaller than raw


class VideoReadError(RuntimeError):
    """A video that cannot be read. The message names the file and what is wrong with it."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason



def video_name(path: str) -> str:
    """'<root>/UCF-101/Class/v_Class_g01_c01.avi' -> 'v_Class_g01_c01'."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def check_data_root(root: str) -> list:
    """Fail early, naming what is missing, when `root` does not look like a UCF-101 data root
    (FileNotFoundError; a root one level too deep, e.g. its UCF-101/ folder, is named as such).
    Returns the video folders found."""
    root = os.path.normpath(str(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data root {root} does not exist (expected a folder holding "
                                f"ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or UCF-101-jpeg/)")
    if not os.path.isdir(os.path.join(root, "ucfTrainTestlist")):
        # a folder inside the data root (its UCF-101/, or a class folder): name the root itself
        ups = [os.path.dirname(root), os.path.dirname(os.path.dirname(root))]
        above = next((u for u in ups if os.path.isdir(os.path.join(u, "ucfTrainTestlist"))), None)
        if above is None and os.path.basename(root) in STORE_DIRS.values():
            above = os.path.dirname(root)
        if above is not None:
            raise FileNotFoundError(f"data root {root} is a folder inside the data root (too deep): pass the "
                                    f"folder that holds ucfTrainTestlist/ and the video folders, --data-root {above}")
    found = [d for d in STORE_DIRS.values() if os.path.isdir(os.path.join(root, d))]
    if not found:
        raise FileNotFoundError(f"data root {root} holds none of the video folders "
                                f"{', '.join(STORE_DIRS.values())}")
    return found


def store_path(path: str, fmt: str) -> str:
    """Where the copy of format `fmt` of the canonical video `path` lives."""
    path = str(path)
    cls_dir, fname = os.path.split(path)
    root = os.path.dirname(os.path.dirname(cls_dir))
    ext = ".avi" if fmt == "avi" else ".hdf5"
    return os.path.join(root, STORE_DIRS[fmt], os.path.basename(cls_dir), os.path.splitext(fname)[0] + ext)


def resolve_video(path: str, formats: tuple = FORMATS) -> tuple[str, str]:
    """Return (fmt, real_path) of the first existing copy of a video, in `formats` order.

    `path` may also point straight at a video file anywhere: a .hdf5 in either store format, or any
    other file, which FFmpeg decodes (fmt "avi", read through PyAV), e.g. for predict.py.
    """
    path = str(path)
    candidates = [(fmt, store_path(path, fmt)) for fmt in formats]
    if path.endswith(".hdf5"):  # a direct HDF5 path: which kind is decided by its content
        candidates.insert(0, ("hdf5", path))
    elif "avi" in formats:
        candidates.append(("avi", path))
    for fmt, p in candidates:
        if os.path.isfile(p):
            return fmt, p
    tried = ", ".join(dict.fromkeys(p for _, p in candidates))
    raise VideoReadError(path, f"no copy of this video found (looked for {tried})")


@contextmanager
def _open_h5(real):
    """(kind, dataset) of an HDF5 copy of a video, kind "jpeg" (compact store) or "hdf5" (raw frames),
    while the file is open. h5py raises OSError for files that are not (complete) HDF5, on opening or
    on reading: either becomes a VideoReadError naming the file."""
    try:
        with h5py.File(real, "r") as h:
            yield _h5_dataset(h, real)
    except OSError as e:
        raise VideoReadError(real, f"cannot read as HDF5 ({e})") from e


def _h5_dataset(h, path):
    if "jpeg" in h:
        return "jpeg", h["jpeg"]
    if "video" in h:
        return "hdf5", h["video"]
    raise VideoReadError(path, f"HDF5 file has neither a 'video' nor a 'jpeg' dataset "
                               f"(found: {list(h.keys())})")


def _to_rgb(frames, path):
    """Check a raw HDF5 array and return uint8 (N, H, W, 3); grayscale is expanded."""
    if frames.dtype != np.uint8:
        raise VideoReadError(path, f"'video' has dtype {frames.dtype}, expected uint8")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise VideoReadError(path, f"'video' has shape {frames.shape}, expected (T, H, W, 3)")
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def _jpeg_span(ds, keys):
    """The JPEG byte strings of frames `keys` (sorted) of a compact-store dataset: one h5py read of
    their span (16 single-element reads cost ~4 ms more, ~20% of reading and decoding a clip)."""
    if not len(keys):
        return ds[:0]
    return ds[keys[0]:keys[-1] + 1][keys - keys[0]]


def _decode_jpeg(buf, path, index, out=None):
    """Decode one compact-store frame to uint8 RGB (H, W, 3), straight into `out` when given.

    simplejpeg calls libjpeg-turbo without cv2.imdecode's overhead: the same pixels, faster
    (benchmark.py's "JPEG decoding" table), and it can write into our array.
    """
    try:
        if out is not None:
            h, w = simplejpeg.decode_jpeg_header(buf)[:2]
            if (h, w) != out.shape[:2]:
                raise VideoReadError(path, f"frame {index} is {w}x{h}, the first frame "
                                           f"{out.shape[1]}x{out.shape[0]}")
        return simplejpeg.decode_jpeg(buf, "RGB", buffer=out)
    except ValueError as e:  # corrupt or truncated data
        raise VideoReadError(path, f"frame {index} is not a valid JPEG ({e})") from e


def _decode_all(bufs, path, keys):
    """Decode JPEG frames into one uint8 (N, H, W, 3) RGB array (each frame decoded in place)."""
    if not len(bufs):
        return np.empty((0, 0, 0, 3), dtype=np.uint8)
    first = _decode_jpeg(bufs[0], path, keys[0])
    frames = np.empty((len(bufs),) + first.shape, dtype=np.uint8)
    frames[0] = first
    for i in range(1, len(bufs)):
        _decode_jpeg(bufs[i], path, keys[i], out=frames[i])
    return frames


# A container's frame count above this is bogus (11 hours at 25 fps; UCF-101's longest clip has 1,776
# frames): a raw MPEG-4 elementary stream under an .avi name reports e.g. -192153584101141, or 0.
MAX_PLAUSIBLE_FRAMES = 10**6
_DECODED_COUNTS = {}  # (path, mtime_ns, size) -> frames counted by decoding, for implausible headers


def _file_key(path):
    st = os.stat(path)
    return os.path.realpath(path), st.st_mtime_ns, st.st_size


@contextmanager
def _open_avi(path):
    """(container, video stream) of a video file FFmpeg reads (through PyAV), decoding on this
    thread only (DataLoader workers decode in parallel: one thread each), while it is open."""
    try:
        container = av.open(path)
    except av.FFmpegError as e:
        raise VideoReadError(path, f"cannot open this video (empty, corrupt or not a video: {e})") from e
    try:
        if not container.streams.video:
            raise VideoReadError(path, "cannot open this video: it holds no video stream")
        stream = container.streams.video[0]
        stream.thread_count = 1
        yield container, stream
    finally:
        container.close()


def _header_frames(stream):
    """The container's frame count, or None where it is implausible (<= 0 or > MAX_PLAUSIBLE_FRAMES)."""
    n = stream.frames
    return n if 0 < n <= MAX_PLAUSIBLE_FRAMES else None


def _avi_frame_count(path, stream):
    """Frames of an open video: its header's count where plausible, else counted by decoding the file
    once (remembered for this process, keyed by path, mtime and size), so that counting, training
    and testing give one file one verdict."""
    n = _header_frames(stream)
    n = _DECODED_COUNTS.get(_file_key(path)) if n is None else n
    if n is None:
        with _open_avi(path) as (container, s):
            n = _DECODED_COUNTS[_file_key(path)] = sum(1 for _ in _decoded(container, s))
    return n


def _decoded(container, stream):
    """The frames of `stream` in display order; ends at the first packet FFmpeg cannot decode (a
    truncated or corrupt file), as OpenCV's grab() does: the caller says what is missing."""
    try:
        yield from container.decode(stream)
    except av.FFmpegError:
        return


def _seekable(container, stream):
    """Whether a decoded frame's timestamp is its frame number, so that a seek lands where we know:
    an AVI (one timestamp tick per frame) whose decoder reorders nothing. Packed-bitstream DivX
    (two of the four real clips) has B-frames and timestamps that run 1, 2, 4, 3, 5, ...: such files
    are read from the start, counting frames, like a raw stream (no index to seek by) and any file
    whose header count is implausible (a broken header: its index is not trusted either)."""
    rate, tb = stream.average_rate, stream.time_base
    return (container.format.name == "avi" and not stream.codec_context.has_b_frames
            and _header_frames(stream) is not None and rate is not None and tb is not None and rate * tb == 1)


def _collect(path, container, stream, want, n, i):
    """Decode forward, converting frames `want` (sorted unique) to uint8 RGB (len(want), H, W, 3).
    Frames are numbered from `i`; i=None after a seek: from the first decoded frame's timestamp,
    whose successors must then count up by one, else None is returned (the caller reads from the
    start). `n`: the frame count the error message quotes (None: the file's length is unknown)."""
    seeking, out, k = i is None, None, 0
    for frame in _decoded(container, stream):
        if seeking and (frame.pts is None or (i is None and frame.pts > want[0]) or
                        (i is not None and frame.pts != i)):
            return None
        i = frame.pts if i is None else i
        if i == want[k]:
            out = _put(out, k, frame, len(want), path)
            k += 1
            if k == len(want):
                break
        i += 1
    if k < len(want):
        _missing(path, i, n)
    return out


_THREAD = threading.local()  # per thread: a swscale context may not be used by two threads at once


def _to_rgb24(frame):
    """A decoded frame as uint8 RGB (H, W, 3), through one reformatter per thread and process: its
    swscale context is reused from frame to frame (frame.to_ndarray sets one up per frame, which
    made a whole-video read 2x slower). One swscale thread (`threads=1`: the cores belong to the
    DataLoader workers); a context inherited through fork is never used (a forked DataLoader worker
    hung on the parent's swscale thread pool)."""
    if getattr(_THREAD, "pid", None) != os.getpid():
        _THREAD.rgb, _THREAD.pid = VideoReformatter(), os.getpid()
    return _THREAD.rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()


def _put(out, k, frame, total, path):
    """Convert a decoded frame to RGB into out[k], allocating out (total, H, W, 3) at the first frame
    (one array for the clip: no list of frames to stack, a copy less)."""
    rgb = _to_rgb24(frame)
    if out is None:
        out = np.empty((total,) + rgb.shape, dtype=np.uint8)
    elif rgb.shape != out.shape[1:]:
        raise VideoReadError(path, f"frame {k} is {rgb.shape[1]}x{rgb.shape[0]}, the first frame "
                                   f"{out.shape[2]}x{out.shape[1]}")
    out[k] = rgb
    return out


def _missing(path, decoded, n):
    """Raise the error for a video that ended after `decoded` of its `n` frames."""
    if not decoded:
        raise VideoReadError(path, "no frame could be decoded (empty, corrupt or not a video)")
    raise VideoReadError(path, f"only {decoded} of the {n} frames in its header could be decoded "
                               f"(truncated or corrupt file?)")


def _read_avi(path, container, stream, n, keys):
    """Decode frames `keys` (sorted unique array; None: all) of an open video of `n` frames (None:
    unknown, then all are read) as uint8 RGB (N, H, W, 3).

    For a clip, seek to the keyframe before its first frame where timestamps are frame numbers
    (`_seekable`): frame-exact and several times faster than decoding from the start for late
    clips (benchmark.py measures it); else decode from the start. Only the frames asked for are
    converted to RGB. PyAV decodes through FFmpeg as OpenCV does, to the same pixels (tests check
    it), with less work per frame (benchmark.py's one-core table).
    """
    if keys is not None and not len(keys):
        return np.empty((0, 0, 0, 3), dtype=np.uint8)
    if keys is not None and keys[-1] >= n:
        raise VideoReadError(path, f"frames up to {keys[-1]} requested, the video has {n}")
    if keys is None and n is None:  # length unknown: frames listed, then stacked
        frames = [_to_rgb24(f) for f in _decoded(container, stream)]
        if not frames:
            _missing(path, 0, n)
        return np.stack(frames)
    if keys is None:
        out, k = None, 0
        for k, frame in enumerate(itertools.islice(_decoded(container, stream), n)):
            out = _put(out, k, frame, n, path)
        if out is None or k < n - 1:
            _missing(path, 0 if out is None else k + 1, n)
        return out
    want = keys.tolist()
    if want[0] > 0 and _seekable(container, stream):
        container.seek(want[0], stream=stream, backward=True, any_frame=False)
        frames = _collect(path, container, stream, want, n, None)
        if frames is not None:
            return frames
        with _open_avi(path) as (container, stream):
            return _collect(path, container, stream, want, n, 0)
    return _collect(path, container, stream, want, n, 0)


def count_frames(path: str) -> int:
    """Number of frames of a video (any format): an AVI's header count where plausible, else the
    frames decoded (once per file and process)."""
    fmt, real = resolve_video(path)
    if fmt == "avi":
        with _open_avi(real) as (_, stream):
            n = _avi_frame_count(real, stream)
        if n <= 0:
            raise VideoReadError(real, "no frame could be decoded (empty, corrupt or not a video)")
        return n
    with _open_h5(real) as (_, ds):
        n = len(ds)
    if n == 0:
        raise VideoReadError(real, "the video has no frames")
    return n


def read_frames(path: str, indices=None, formats: tuple = FORMATS) -> np.ndarray:
    """Decode frames of a video as uint8 RGB (N, H, W, 3).

    `indices`: None for every frame; the frame numbers; or a function of the video's frame count
    returning them, so that a random clip is chosen and read with the file opened once.
    Indices may repeat or be unordered (short clips are padded by repeating frames).
    `formats`: which copies may be read, in order (prepare_data.py reads its source format only).
    """
    fmt, real = resolve_video(path, formats)
    if fmt == "avi":  # one open: the count (for a random clip), then the frames
        with _open_avi(real) as (container, stream):
            if indices is None and _header_frames(stream) is None:  # a raw stream read whole: its
                frames = _read_avi(real, container, stream, None, None)  # length is what decodes
                _DECODED_COUNTS[_file_key(real)] = len(frames)
                return frames
            n = _avi_frame_count(real, stream)
            if n == 0:
                raise VideoReadError(real, "no frame could be decoded (empty, corrupt or not a video)")
            keys, order = _unique_indices(real, indices(n) if callable(indices) else indices)
            frames = _read_avi(real, container, stream, n, keys)
    else:
        with _open_h5(real) as (kind, ds):
            n = len(ds)
            if n == 0:
                raise VideoReadError(real, "the video has no frames")
            keys, order = _unique_indices(real, indices(n) if callable(indices) else indices)
            if keys is None:
                keys = np.arange(n)
            elif len(keys) and keys[-1] >= n:
                raise VideoReadError(real, f"frames up to {keys[-1]} requested, the video has {n}")
            if kind == "jpeg":
                frames = _decode_all(_jpeg_span(ds, keys), real, keys)
            else:
                frames = _to_rgb(ds[:] if indices is None else ds[keys], real)
    if order is None or (len(order) == len(keys) and (order[1:] > order[:-1]).all()):
        return frames  # sorted, no repeats (a clip inside the video): no reordering copy
    return frames[order]


def _unique_indices(path, indices):
    """(sorted unique frame numbers, positions of `indices` in them), or (None, None) for all."""
    if indices is None:
        return None, None
    uniq, order = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    if len(uniq) and uniq[0] < 0:
        raise VideoReadError(path, f"negative frame index {uniq[0]}")
    return uniq, order


def read_jpeg_frames(path: str, indices) -> tuple:
    """The undecoded JPEG byte strings of frames of a video's compact-store copy, for decoding on the GPU.

    `indices(n_frames)` gives the frame numbers (may repeat). Returns (uint8 byte arrays in that order,
    indices, (height, width)); raises VideoReadError where the video has no compact-store copy.
    """
    fmt, real = resolve_video(path)
    if fmt != "jpeg":
        raise VideoReadError(real, f"decoding on the device needs the compact store (prepare_data.py); "
                                   f"this video has only a {fmt} copy")
    with _open_h5(real) as (kind, ds):
        if kind != "jpeg":
            raise VideoReadError(real, "decoding on the device needs a 'jpeg' dataset (compact store); "
                                       "this file holds raw frames")
        idx = indices(len(ds)) if len(ds) else np.zeros(0, dtype=np.int64)
        uniq, order = _unique_indices(real, idx)
        bufs = _jpeg_span(ds, uniq)[order]
        height, width = int(ds.file.attrs.get("height", 0)), int(ds.file.attrs.get("width", 0))
    if not len(bufs):
        raise VideoReadError(real, "the video has no frames")
    if not height or not width:  # a store written without the attributes: decode one frame for its size
        height, width = _decode_jpeg(bufs[0], real, idx[0]).shape[:2]
    return list(bufs), idx, (height, width)


# ----------------------------------------------------------------------------- writing

def read_source(path: str, kind: str) -> tuple[np.ndarray, float]:
    """Every frame of the `kind` ("avi" or "hdf5") copy of a video and its frame rate: (uint8 (T, H, W, 3)
    RGB, fps). Only that copy is read, never another (a lossy compact store, say)."""
    frames = read_frames(path, formats=(kind,))
    if kind == "avi":
        cap = cv2.VideoCapture(path)
        fps = cap.get(cv2.CAP_PROP_FPS) or UCF_FPS
        cap.release()
    else:
        with h5py.File(path, "r") as h:
            fps = float(h.attrs.get("fps", UCF_FPS))
    return frames, fps


def write_video(out_path: str, frames: np.ndarray, fps: float, to: str = "jpeg", quality: int = JPEG_QUALITY) -> None:
    """Write frames uint8 (T, H, W, 3) RGB as one HDF5 file of the compact store (`to` "jpeg") or of the
    course's raw copy ("hdf5"), atomically."""
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with atomic_write(out_path) as tmp, h5py.File(tmp, "w") as h:
        if to == "jpeg":
            params = [cv2.IMWRITE_JPEG_QUALITY, quality]
            bufs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params)[1].ravel() for f in frames]
            ds = h.create_dataset("jpeg", (len(bufs),), dtype=h5py.vlen_dtype(np.uint8))
            ds[:] = bufs
            h.attrs["quality"] = quality
        else:
            h.create_dataset("video", data=frames, chunks=(1,) + frames.shape[1:])
        h.attrs.update(n_frames=len(frames), fps=fps, height=frames.shape[1], width=frames.shape[2])


def is_complete(path: str) -> bool:
    """A finished store file: it opens and holds as many frames as its n_frames attribute says."""
    try:
        with h5py.File(path, "r") as h:
            ds = h["jpeg"] if "jpeg" in h else h["video"]
            return len(ds) == h.attrs["n_frames"] > 0
    except (OSError, KeyError):
        return False


def convert(task: tuple) -> tuple:
    """Convert one video (src, kind, dst, to, quality). Returns (src, n_frames, out_bytes, raw_bytes,
    error or None); the written file is read back and removed when it does not match."""
    src, kind, dst, to, quality = task
    try:
        frames, fps = read_source(src, kind)
        write_video(dst, frames, fps, to, quality)
        if count_frames(dst) != len(frames):
            os.remove(dst)
            raise VideoReadError(dst, "frame count differs from the source after writing")
        return src, len(frames), os.path.getsize(dst), frames.nbytes, None
    except (VideoReadError, OSError, cv2.error) as e:
        return src, 0, 0, 0, str(e)
