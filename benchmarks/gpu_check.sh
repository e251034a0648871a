#!/usr/bin/env bash
# The whole assignment end to end on one GPU, from a fresh clone: synthetic UCF-101 subset at full
# frame size, every script at the assignment's settings, each phase scaled to all of UCF-101, then
# the 3D training step under each lever. About 5-8 minutes on one H200, this set-up included.
#
#   bash benchmarks/gpu_check.sh                  # writes docs/results/gpu-<gpu name>.json
#   bash benchmarks/gpu_check.sh --cpu-smoke      # the same in miniature on a CPU (about a minute)
#   bash benchmarks/gpu_check.sh [flags of python -m benchmarks.gpu_check --help]
#
# Which Python runs it: $PYTHON if set; else the first of .venv/bin/python (make's venv: the pinned
# requirements) and python3 (a GPU machine's own PyTorch) whose torch sees a GPU (with
# --cpu-smoke: whose torch imports).
# - If that torch is not the pinned one (requirements.txt) and $WHEELS (default .whl) holds a
#   torch wheel, the pinned requirements are installed from $WHEELS into a venv made with
#   --system-site-packages (pip --no-index: the GPU machine reaches no registry) and that runs it.
# - Else it runs on the torch it found, and the JSON names that version. Modules the project needs
#   and that Python lacks (on this workplace's H200 image: simplejpeg and PyAV) are installed from
#   $WHEELS with --no-deps into a folder on PYTHONPATH, a few seconds.
# Fetching those wheels on a machine that reaches PyPI (the H200 image has Python 3.12):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl simplejpeg==1.9.0 av==18.1.0     # ~36 MB
# and keep .whl out of git (a line /.whl/ in .git/info/exclude), carried with the working tree.
# On a machine without the official split files beside the repo (../shared), the video names
# come from lists generated with UCF-101's statistics (or pass --lists DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
SMOKE=0
for a in "$@"; do [ "$a" = "--cpu-smoke" ] && SMOKE=1; done
PINNED=$(sed -n 's/^torch==//p' requirements.txt)

usable() {  # usable PYTHON: its torch imports (and sees a GPU unless --cpu-smoke)
  "$1" -c "import torch, sys; sys.exit(0 if $SMOKE or torch.cuda.is_available() else 1)" 2>/dev/null
}
if [ -z "${PYTHON:-}" ]; then
  for p in .venv/bin/python python3; do
    if command -v "$p" >/dev/null && usable "$p"; then PYTHON=$p; break; fi
  done
fi
[ -n "${PYTHON:-}" ] || { echo "gpu_check: no Python whose torch sees a GPU (set PYTHON=...)"; exit 1; }
TORCH=$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])')
if [ "$TORCH" != "$PINNED" ] && ls "$WHEELS"/torch-"$PINNED"-*.whl >/dev/null 2>&1; then
  VENV=${TMPDIR:-/tmp}/gpu-check-venv
  "$PYTHON" -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install --quiet --no-index --find-links "$WHEELS" -r requirements.txt
  PYTHON=$VENV/bin/python
else
  [ "$TORCH" = "$PINNED" ] || echo "gpu_check: torch $TORCH here, not the pinned $PINNED: the figures will name it"
  missing=$("$PYTHON" - <<'EOF'
import importlib.util
need = {"simplejpeg": "simplejpeg", "av": "av", "h5py": "h5py", "cv2": "opencv",
        "tqdm": "tqdm", "matplotlib": "matplotlib", "torchvision": "torchvision"}
print(" ".join(w for m, w in need.items() if importlib.util.find_spec(m) is None))
EOF
)
  if [ -n "$missing" ]; then
    SITE=${TMPDIR:-/tmp}/gpu-check-site
    for w in $missing; do
      ls "$WHEELS"/"$w"*.whl >/dev/null 2>&1 || { echo "gpu_check: $PYTHON lacks $w and $WHEELS has no wheel of it (see this script's header)"; exit 1; }
    done
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$SITE" \
      $(for w in $missing; do ls "$WHEELS"/"$w"*.whl; done)
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
  fi
fi
export PYTHONUNBUFFERED=1
exec "$PYTHON" -m benchmarks.gpu_check "$@"
