# Sourced by the job scripts: one line and exit 2, before anything starts, for a job that cannot run.
# REQUIRE_GPU=0 lets the same steps run on a CPU (the tests do; real runs want a GPU).
PY="${PY:-.venv/bin/python}"
IMAGENET="${IMAGENET:-imagenet}"
KINETICS="${KINETICS:-resnet-50-kinetics.pth}"
fail() { echo "$(basename "$0"): $*" >&2; exit 2; }
[ -n "${DATA_ROOT:-}" ] || fail "set DATA_ROOT to the folder holding ucfTrainTestlist/ and UCF-101/ (README: The real run)"
[ "$DATA_ROOT" = data/toy ] || [ -d "$DATA_ROOT" ] || fail "DATA_ROOT=$DATA_ROOT: no such folder"  # the toy is made by make demo
if [ "$DATA_ROOT" != data/toy ]; then
    [ -f "$KINETICS" ] || fail "KINETICS=$KINETICS: no such file (Hara et al.'s resnet-50-kinetics.pth, README: The real run)"
    [ "$IMAGENET" = imagenet ] || [ -f "$IMAGENET" ] || fail "IMAGENET=$IMAGENET: no such file"
fi
[ -x "$PY" ] || make .venv/.installed >/dev/null || fail "could not install the virtual environment (make .venv/.installed)"
gpu_count() { "$PY" -c 'import torch; print(torch.cuda.device_count())'; }
if [ "${REQUIRE_GPU:-1}" != 0 ] && [ "$(gpu_count)" -lt 1 ]; then
    fail "PyTorch sees no GPU on $(hostname): ask the scheduler for one (--gres=gpu:1) or check CUDA_VISIBLE_DEVICES"
fi
