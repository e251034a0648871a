"""Reading and writing the three copies of a UCF-101 video: the one home of the on-disk formats.

    <root>/UCF-101/<Class>/<video>.avi          the original (XviD AVI; any file FFmpeg decodes)
    <root>/UCF-101-hdf5/<Class>/<video>.hdf5    the course's raw copy: dataset `video` uint8
                                                (T, H, W, 3)
    <root>/UCF-101-jpeg/<Class>/<video>.hdf5    our compact store: dataset `jpeg`, one JPEG per
                                                frame, attributes n_frames, fps, height, width,
                                                quality

A video is named by its canonical AVI path; `resolve_video` finds whichever copy exists. Every read
returns uint8 RGB frames (N, H, W, 3), and every failure is a VideoReadError naming the file.
"""
import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager

import av
import cv2
import h5py
import numpy as np
import simplejpeg
from av.video.reformatter import VideoReformatter

from utils import atomic_write, warn

FORMATS = ("jpeg", "hdf5", "avi")  # the order in which copies of a video are looked for
STORE_DIRS = {"jpeg": "UCF-101-jpeg", "hdf5": "UCF-101-hdf5", "avi": "UCF-101"}
UCF_FPS = 25.0  # UCF-101's nominal frame rate, stored when a raw HDF5 source does not say
JPEG_QUALITY = 90  # ~1.3 grey levels mean absolute error on UCF-101, ~13x smaller than raw


class VideoReadError(RuntimeError):
    """A video that cannot be read. The message names the file and what is wrong with it."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # pickled with both arguments: it crosses processes (a Pool's map)
        return type(self), (self.path, self.reason)



def video_name(path: str) -> str:
    """'<root>/UCF-101/Class/v_Class_g01_c01.avi' -> 'v_Class_g01_c01'."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def check_data_root(root: str) -> list:
    """Fail early, naming what is missing, when `root` does not look like a UCF-101 data root
    (FileNotFoundError; a root one level too deep, e.g. its UCF-101/ folder, is named as such).
    Returns the video folders found."""
    root = os.path.normpath(str(root))
    if os.path.isfile(root):
        raise FileNotFoundError(f"data root {root} is a file, not a folder: pass the folder that "
                                f"holds ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or "
                                f"UCF-101-jpeg/")
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
            raise FileNotFoundError(f"data root {root} is a folder inside the data root "
                                    f"(too deep): pass the folder that holds ucfTrainTestlist/ "
                                    f"and the video folders, --data-root {above}")
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
    return os.path.join(root, STORE_DIRS[fmt], os.path.basename(cls_dir),
                        os.path.splitext(fname)[0] + ext)


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
    """(kind, dataset) of an HDF5 copy of a video, kind "jpeg" (compact store) or "hdf5" (raw
    frames), while the file is open. h5py raises OSError for files that are not (complete) HDF5, on
    opening or on reading: either becomes a VideoReadError naming the file."""
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


# A container's frame count above this is bogus (11 hours at 25 fps; UCF-101's longest clip has
# 1,776 frames): a raw MPEG-4 elementary stream under an .avi name reports e.g. -192153584101141,
# or 0.
MAX_PLAUSIBLE_FRAMES = 10**6
# (path, mtime_ns, size) -> frames counted by decoding, for implausible headers
_DECODED_COUNTS = {}


def _file_key(path):
    st = os.stat(path)
    return os.path.realpath(path), st.st_mtime_ns, st.st_size


def _truncated_avi(path):
    """Why an AVI file is cut short, or None: its RIFF header gives the file's length, so a copy or
    download that stopped early is caught before decoding, and every reader (training, testing,
    prepare_data) gives it the same verdict, whichever frames it would have read."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None  # not an AVI: FFmpeg decides
    announced, size = int.from_bytes(head[4:8], "little") + 8, os.path.getsize(path)
    if size < announced:
        return (f"truncated: the file has {size:,} of the {announced:,} bytes its header announces "
                f"(an interrupted copy or download?); copy or extract it again")
    return None


@contextmanager
def _open_avi(path):
    """(container, video stream) of a video file FFmpeg reads (through PyAV), decoding on this
    thread only (DataLoader workers decode in parallel: one thread each), while it is open. A
    truncated AVI is refused before decoding (`_truncated_avi`)."""
    cut = _truncated_avi(path)
    if cut:
        raise VideoReadError(path, cut)
    try:
        container = av.open(path)
    except av.FFmpegError as e:
        raise VideoReadError(path, f"cannot open this video (empty, corrupt or not a video: "
                                   f"{e})") from e
    try:
        if not container.streams.video:
            raise VideoReadError(path, "cannot open this video: it holds no video stream")
        stream = container.streams.video[0]
        stream.thread_count = 1
        yield container, stream
    finally:
        container.close()


def _header_frames(stream):
    """The container's frame count, or None where it is implausible (<= 0 or >
    MAX_PLAUSIBLE_FRAMES)."""
    n = stream.frames
    return n if 0 < n <= MAX_PLAUSIBLE_FRAMES else None


def _avi_frame_count(path, stream):
    """Frames of an open video: its header's count where plausible, else counted by decoding the
    file once (remembered for this process, keyed by path, mtime and size), so that counting,
    training and testing give one file one verdict."""
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
            and _header_frames(stream) is not None and rate is not None and tb is not None
            and rate * tb == 1)


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
    """Convert a decoded frame to RGB into out[k], allocating out (total, H, W, 3) at the first
    frame (one array for the clip: no list of frames to stack, a copy less)."""
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


def count_frames(path: str, formats: tuple = FORMATS) -> int:
    """Number of frames of a video (any format): an AVI's header count where plausible, else the
    frames decoded (once per file and process). A store copy that is stale or unreadable counts its
    source's frames instead, as `read_frames` reads them."""
    fmt, real = resolve_video(path, formats)
    if fmt == "avi":
        with _open_avi(real) as (_, stream):
            n = _avi_frame_count(real, stream)
        if n <= 0:
            raise VideoReadError(real, "no frame could be decoded (empty, corrupt or not a video)")
        return n
    n, instead = _from_store(path, fmt, real, formats, len)
    if instead:
        return count_frames(path, instead)
    if n == 0:
        raise VideoReadError(real, "the video has no frames")
    return n


# The source a store file was made from, as recorded by write_video: its format, size and
# modification time (and frame count). A reader compares the first three with the source's file,
# when it is there.
SOURCE_ATTRS = ("source_format", "source_size", "source_mtime_ns", "source_frames")
_WARNED = set()  # store files already warned about in this process


def _warn_once(real: str, message: str) -> None:
    if real not in _WARNED:
        _WARNED.add(real)
        warn(message)


def source_record(path: str, fmt: str, n_frames: int) -> dict:
    """What a store file records of the `fmt` ("avi" or "hdf5") file at `path` it is made from."""
    st = os.stat(path)
    return {"source_format": fmt, "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns,
            "source_frames": n_frames}


_RECORDS = {}  # (store file, its mtime_ns, its size) -> the source it records, read once a process


def recorded_source(attrs: Mapping) -> tuple | None:
    """(format, size, mtime_ns) of the source a store file's attributes record, or None."""
    fmt = attrs.get("source_format")
    if fmt is None:
        return None
    return (fmt.decode() if isinstance(fmt, bytes) else str(fmt), int(attrs["source_size"]),
            int(attrs["source_mtime_ns"]))


def stale_source(canonical: str, real: str, attrs_of: Callable[[], Mapping]) -> tuple | None:
    """(format, path) of the source of the store copy `real` of a video when the source has changed
    since the copy was made (its size or modification time differ from the record), else None:
    also when the copy records no source (the course's raw copy is a source itself) or the source
    is not there. attrs_of() gives the open copy's attributes; what they record is kept for this
    version of the copy for the rest of the process (they cost tens of microseconds to read, an
    eighth of decoding a frame, and a loader worker reads a video many times), so that a read costs
    two stats, the copy's and the source's."""
    st = os.stat(real)
    key = (real, st.st_mtime_ns, st.st_size)
    if key not in _RECORDS:
        _RECORDS[key] = recorded_source(attrs_of())
    return _stale(canonical, _RECORDS[key])


def _stale(canonical: str, record: tuple | None) -> tuple | None:
    if record is None:
        return None
    fmt, size, mtime_ns = record
    src = store_path(canonical, fmt)
    try:
        st = os.stat(src)
    except OSError:
        return None
    return (fmt, src) if (st.st_size, st.st_mtime_ns) != (size, mtime_ns) else None


def _from_store(path: str, fmt: str, real: str, formats: tuple, read) -> tuple:
    """(read(dataset), None) of a current store copy (compact or raw) of a video; else (None, the
    formats to read instead), after a warning naming both files, when its source changed since it
    was made or it cannot be read and another copy exists (without one, its VideoReadError
    stands)."""
    try:
        with _open_h5(real) as (_, ds):
            stale = stale_source(path, real, lambda: ds.file.attrs)
            if stale is None:
                return read(ds), None
    except VideoReadError as e:
        rest = formats[formats.index(fmt) + 1:] if fmt in formats else ()
        try:
            other_fmt, other = resolve_video(path, rest)
        except VideoReadError:
            raise e from None
        if other == real:
            raise
        _warn_once(real, f"{e}: reading {other} instead; run python -m tools.prepare_data again to "
                         f"repair the store")
        return None, rest[rest.index(other_fmt):]
    _warn_once(real, f"{real} is older than its source {stale[1]} (the source changed since it "
                     f"was converted): reading the source; run python -m tools.prepare_data again "
                     f"to bring the store up to date")
    return None, (stale[0],)


def read_frames(path: str,
                indices: Sequence[int] | np.ndarray | Callable[[int], np.ndarray] | None = None,
                formats: tuple = FORMATS) -> np.ndarray:
    """Decode frames of a video as uint8 RGB (N, H, W, 3).

    `indices`: None for every frame; the frame numbers; or a function of the video's frame count
    returning them, so that a random clip is chosen and read with the file opened once.
    Indices may repeat or be unordered (short clips are padded by repeating frames).
    `formats`: which copies may be read, in order (prepare_data reads its source format only).
    A store copy whose source changed since it was made, or that cannot be read, is passed over for
    the source (or another copy), with a warning: the frames are always the source's.
    """
    fmt, real = resolve_video(path, formats)
    if fmt == "avi":  # one open: the count (for a random clip), then the frames
        with _open_avi(real) as (container, stream):
            # a raw stream read whole: its length is what decodes
            if indices is None and _header_frames(stream) is None:
                frames = _read_avi(real, container, stream, None, None)
                _DECODED_COUNTS[_file_key(real)] = len(frames)
                return frames
            n = _avi_frame_count(real, stream)
            if n == 0:
                raise VideoReadError(real,
                                     "no frame could be decoded (empty, corrupt or not a video)")
            keys, order = _unique_indices(real, indices(n) if callable(indices) else indices)
            frames = _read_avi(real, container, stream, n, keys)
    else:
        read, instead = _from_store(path, fmt, real, formats,
                                    lambda ds: _read_store(real, ds, indices))
        if instead:
            return read_frames(path, indices, instead)
        frames, keys, order = read
    if order is None or (len(order) == len(keys) and (order[1:] > order[:-1]).all()):
        return frames  # sorted, no repeats (a clip inside the video): no reordering copy
    return frames[order]


def _read_store(real, ds, indices):
    """(frames, sorted unique keys, order) of an open store dataset (`jpeg` or raw `video`)."""
    n = len(ds)
    if n == 0:
        raise VideoReadError(real, "the video has no frames")
    keys, order = _unique_indices(real, indices(n) if callable(indices) else indices)
    if keys is None:
        keys = np.arange(n)
    elif len(keys) and keys[-1] >= n:
        raise VideoReadError(real, f"frames up to {keys[-1]} requested, the video has {n}")
    if ds.name.endswith("jpeg"):
        return _decode_all(_jpeg_span(ds, keys), real, keys), keys, order
    return _to_rgb(ds[:] if indices is None else ds[keys], real), keys, order


def _unique_indices(path, indices):
    """(sorted unique frame numbers, positions of `indices` in them; None when they are already
    sorted and unique), or (None, None) for all."""
    if indices is None:
        return None, None
    idx = np.asarray(indices, dtype=np.int64)
    # a clip inside the video: np.unique's sort spared
    if len(idx) > 1 and (idx[1:] > idx[:-1]).all():
        uniq, order = idx, None
    else:
        uniq, order = np.unique(idx, return_inverse=True)
    if len(uniq) and uniq[0] < 0:
        raise VideoReadError(path, f"negative frame index {uniq[0]}")
    return uniq, order


# ----------------------------------------------------------------------------- writing

def read_source(path: str, kind: str) -> tuple[np.ndarray, float]:
    """Every frame of the `kind` ("avi" or "hdf5") copy of a video and its frame rate: (uint8
    (T, H, W, 3) RGB, fps). Only that copy is read, never another (a lossy compact store, say)."""
    frames = read_frames(path, formats=(kind,))
    if kind == "avi":
        cap = cv2.VideoCapture(path)
        fps = cap.get(cv2.CAP_PROP_FPS) or UCF_FPS
        cap.release()
    else:
        with h5py.File(path, "r") as h:
            fps = float(h.attrs.get("fps", UCF_FPS))
    return frames, fps


def write_video(out_path: str, frames: np.ndarray, fps: float, to: str = "jpeg",
                quality: int = JPEG_QUALITY, source: dict | None = None) -> None:
    """Write frames uint8 (T, H, W, 3) RGB as one HDF5 file of the compact store (`to` "jpeg") or of
    the course's raw copy ("hdf5"), atomically; `source`: source_record of the file they come
    from."""
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with atomic_write(out_path) as tmp, h5py.File(tmp, "w") as h:
        if to == "jpeg":
            params = [cv2.IMWRITE_JPEG_QUALITY, quality]
            bufs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params)[1].ravel()
                    for f in frames]
            ds = h.create_dataset("jpeg", (len(bufs),), dtype=h5py.vlen_dtype(np.uint8))
            ds[:] = bufs
            h.attrs["quality"] = quality
        else:
            h.create_dataset("video", data=frames, chunks=(1,) + frames.shape[1:])
        h.attrs.update(n_frames=len(frames), fps=fps, height=frames.shape[1], width=frames.shape[2],
                       **(source or {}))


def is_complete(path: str, source: str) -> bool:
    """A finished, current store file: it opens, holds as many frames as its n_frames attribute
    says, and records `source` as it is now (its size and modification time)."""
    try:
        with h5py.File(path, "r") as h:
            ds = h["jpeg"] if "jpeg" in h else h["video"]
            st = os.stat(source)
            return (len(ds) == h.attrs["n_frames"] > 0 and h.attrs.get("source_size") == st.st_size
                    and h.attrs.get("source_mtime_ns") == st.st_mtime_ns)
    except (OSError, KeyError):
        return False


def convert(task: tuple) -> tuple:
    """Convert one video (src, kind, dst, to, quality). Returns (src, n_frames, out_bytes,
    raw_bytes, error or None); the written file is read back and removed when it does not
    match."""
    src, kind, dst, to, quality = task
    try:
        record = source_record(src, kind, 0)  # before reading: a change during the read shows later
        frames, fps = read_source(src, kind)
        write_video(dst, frames, fps, to, quality, {**record, "source_frames": len(frames)})
        if count_frames(dst, ("hdf5",)) != len(frames):
            os.remove(dst)
            raise VideoReadError(dst, "frame count differs from the source after writing")
        return src, len(frames), os.path.getsize(dst), frames.nbytes, None
    except (VideoReadError, OSError, cv2.error) as e:
        return src, 0, 0, 0, str(e)
