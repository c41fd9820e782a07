#!/bin/bash
# neural-style batch as a Slurm job array:   sbatch array.sh jobs.toml
# (crates/cli/tests/it/slurm.rs submits this very file; options given to sbatch override these.)
#SBATCH --job-name=neural-style
#SBATCH --array=0-3
#SBATCH --cpus-per-task=1
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=neural-style-%A_%a.out
#SBATCH --error=neural-style-%A_%a.err
#
# Each task takes its shard from SLURM_ARRAY_TASK_ID/MIN/COUNT (and says so
# on stderr). Jobs are claimed (OUTPUT.claim), so a requeued task, a second
# submission or overlapping shards never compute one job twice. SIGTERM (the
# time limit, preemption, scancel --signal=TERM) checkpoints the job in
# flight and stops; when the task is requeued or resubmitted, the job resumes
# from OUTPUT.ckpt.png. stdout: one JSON line per job event.
set -euo pipefail
exec neural-style batch "$1" --json --checkpoint-every "${NEURAL_STYLE_CHECKPOINT_EVERY:-50}"
