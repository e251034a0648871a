#!/usr/bin/env bash
# The whole assignment on one GPU of a SLURM cluster: both models trained and tested, fused, the report.
#
#   DATA_ROOT=/path/to/root KINETICS=/path/to/resnet-50-kinetics.pth sbatch jobs/slurm_1gpu.sh
#
# Run from the repository's root (sbatch starts the job there). DATA_ROOT holds ucfTrainTestlist/ and a
# copy of the videos (README: "The real run"); KINETICS is Hara et al.'s checkpoint; IMAGENET is
# `imagenet` (torchvision downloads it; compute nodes are often offline: then pass the path of
# resnet50-0676ba61.pth). Everything else is make demo's (SPLITS="1 2 3", VAL_GROUPS=1, RUN=...); every
# step resumes, so resubmitting after a time limit or a preemption continues where it stopped.
#SBATCH --job-name=ucf101
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=02:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
source jobs/preflight.sh
make demo DATA_ROOT="$DATA_ROOT" KINETICS="$KINETICS" IMAGENET="$IMAGENET" ${MAKE_ARGS:-}
