#!/usr/bin/env bash
# torchcodec beside the project's venv, for benchmark.py's peer table only (it is not a project
# dependency, and the shared .venv must hold only what requirements.txt pins).
#
#   bash benchmarks/torchcodec_side.sh [DIR]      # default DIR: /tmp/torchcodec-side
#   then run the benchmark with the two variables it prints, e.g.
#   PYTHONPATH=DIR/site LD_LIBRARY_PATH=DIR/ffmpeg:... .venv/bin/python -m benchmarks.benchmark --only one-core
#
# torchcodec links against FFmpeg's shared libraries by their plain names (libavcodec.so.62 for
# FFmpeg 8) and ships none. PyAV's wheel bundles FFmpeg 8 under mangled names, so DIR/ffmpeg gets
# links with the plain names to PyAV's copies: both decoders then run the same FFmpeg build.
set -euo pipefail
DIR=${1:-/tmp/torchcodec-side}
PY=${PY:-.venv/bin/python}
VERSION=${TORCHCODEC_VERSION:-0.17.0}  # the release built against torch 2.14
"$PY" -m pip install --quiet --no-deps --target "$DIR/site" "torchcodec==$VERSION"
LIBS=$("$PY" -c 'import av, os; print(os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs"))')
mkdir -p "$DIR/ffmpeg"
for name in avutil avcodec avformat avdevice avfilter swscale swresample; do
  for f in "$LIBS"/lib$name-*.so.*; do
    major=$(basename "$f" | sed -E 's/^[^.]*\.so\.([0-9]+).*/\1/')
    ln -sf "$f" "$DIR/ffmpeg/lib$name.so.$major"
  done
done
echo "PYTHONPATH=$DIR/site LD_LIBRARY_PATH=$DIR/ffmpeg:$LIBS"
