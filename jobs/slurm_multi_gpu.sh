#!/usr/bin/env bash
# The whole assignment on several GPUs of one SLURM node: training under torchrun (one process per GPU),
# testing, fusion and the report as with one GPU.
#
#   DATA_ROOT=/path/to/root KINETICS=/path/to/resnet-50-kinetics.pth sbatch --gres=gpu:4 jobs/slurm_multi_gpu.sh
#
# --batch-size stays the batch of an optimizer step over all processes (100 frames, 32 clips): each GPU
# takes its share, so the run trains as the assignment's single GPU does, only faster. NPROC defaults to
# the GPUs SLURM gave the job. See jobs/slurm_1gpu.sh for DATA_ROOT, KINETICS and IMAGENET.
#SBATCH --job-name=ucf101-ddp
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --mem=64G
#SBATCH --time=01:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
source jobs/preflight.sh
NPROC="${NPROC:-${SLURM_GPUS_ON_NODE:-$(gpu_count)}}"
make demo DATA_ROOT="$DATA_ROOT" KINETICS="$KINETICS" IMAGENET="$IMAGENET" NPROC="$NPROC" ${MAKE_ARGS:-}
