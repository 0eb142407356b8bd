#!/usr/bin/env bash
# The queue of issue #32's long trainings (Table 1 with the paper's protocol), in the order they run: every step
# is one `vampkeras compare`, resumable, so re-running this script after any interruption continues where it
# stopped (finished cells are kept, unfinished ones resume from their checkpoints).
#
#   CLONE=/work/longruns nohup bash benchmarks/table1_runs.sh > longruns.log 2>&1 &
#
# CLONE is a separate clone of this repository at a fixed commit with its own .venv (python3 -m venv .venv &&
# .venv/bin/pip install -c requirements.txt -e .), so that later changes never alter a running or resumed run;
# default: the repository this script is in. Two trainings at a time, one TF thread each, niced so that
# interactive work keeps its cores. Pause with kill -STOP / -CONT on the pids of
# `pgrep -f "comparison.worker|vampkeras compare"` for quiet measurements.
set -u
cd "${CLONE:-$(dirname "$0")/..}"
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
R="nice -n 10 bash benchmarks/reproduce.sh all"
# 1. The small datasets, three seeds x both rates, two cells at a time.
DATASET=freyfaces SEEDS=14,69,420 LRS=1e-4,5e-4 JOBS=2 PROTOCOL=paper $R
# Frey Faces' VAE rows again with the authors' code's training choices (the VampPrior-vs-standard reversal:
# does it hold under them?): their initialisation, per-half normalization and Frey Faces' pseudo-input start
# N(0.8, 0.01) (jmtomczak/vae_vampprior utils/load_data.py), the kept rate, three seeds.
mkdir -p runs/paper-authors
nice -n 10 .venv/bin/vampkeras compare --dataset freyfaces --data-dir ../shared/data --model vae \
  --prior standard,vampprior --seeds 14,69,420 --lr 5e-4 --protocol paper --samples 5000 --jobs 2 \
  --init authors --gated-normgrad per-half --pseudo-init-mean 0.8 --pseudo-init-std 0.01 \
  --out runs/paper-authors/freyfaces --quiet
# Which of those choices moves which prior (seed 14, one choice at a time; each its own comparison folder).
for ABLATION in "init --init authors" "perhalf --gated-normgrad per-half"; do
  set -- $ABLATION; NAME=$1; shift
  nice -n 10 .venv/bin/vampkeras compare --dataset freyfaces --data-dir ../shared/data --model vae \
    --prior standard,vampprior --seeds 14, --lr 5e-4 --protocol paper --samples 5000 --jobs 2 "$@" \
    --out runs/paper-authors/freyfaces-$NAME --quiet
done
nice -n 10 .venv/bin/vampkeras compare --dataset freyfaces --data-dir ../shared/data --model vae \
  --prior vampprior --seeds 14, --lr 5e-4 --protocol paper --samples 5000 --jobs 1 \
  --pseudo-init-mean 0.8 --pseudo-init-std 0.01 --out runs/paper-authors/freyfaces-pseudo08 --quiet
# The HVAE rows under the authors' code's choices too (three seeds, 5e-4, their code's default rate).
nice -n 10 .venv/bin/vampkeras compare --dataset freyfaces --data-dir ../shared/data --model hvae \
  --prior standard,vampprior --seeds 14,69,420 --lr 5e-4 --protocol paper --samples 5000 --jobs 2 \
  --init authors --gated-normgrad per-half --pseudo-init-mean 0.8 --pseudo-init-std 0.01 \
  --out runs/paper-authors/freyfaces-hvae --quiet
DATASET=caltech101 SEEDS=14,69,420 LRS=1e-4,5e-4 JOBS=2 PROTOCOL=paper $R
# Caltech 101 under the authors' code's choices too (their Caltech pseudo-input start is N(0.8, 0.01) as well):
# does the initialisation separate the priors on binary images as it does on Frey Faces?
nice -n 10 .venv/bin/vampkeras compare --dataset caltech101 --data-dir ../shared/data --model vae,hvae \
  --prior standard,vampprior --seeds 14,69,420 --lr 5e-4 --protocol paper --samples 5000 --jobs 2 \
  --init authors --gated-normgrad per-half --pseudo-init-mean 0.8 --pseudo-init-std 0.01 \
  --out runs/paper-authors/caltech101 --quiet
# 2. Two lanes of one cell each, each pinned to one core: compare gives a cell the cores it may run on divided by
# --jobs (TF_NUM_INTRAOP_THREADS above is overridden), so pinning is what keeps it to one thread.
( # lane A: dynamic MNIST, then Omniglot: one seed, both rates (hours per cell)
  for DATASET in dynamic_mnist omniglot; do
    DATASET=$DATASET SEEDS=14 LRS=1e-4,5e-4 JOBS=1 PROTOCOL=paper taskset -c 0 $R
  done ) &
( # lane B: static MNIST, standard and VampPrior at 5e-4 with three seeds (paired intervals), then the
  # VampPrior rows' 1e-4 variant once (seed 14), in its own comparison folder
  DATASET=static_mnist PRIORS=standard,vampprior SEEDS=14,69,420 LRS=5e-4 JOBS=1 PROTOCOL=paper taskset -c 1 $R
  DATASET=static_mnist PRIORS=vampprior SEEDS=14 LRS=1e-4 JOBS=1 PROTOCOL=paper OUT=runs/paper-lr1e-4 taskset -c 1 $R
  # Frey Faces' convolutional columns, the one dataset where a conv cell fits in a day here (RESULTS.md's cost
  # table): convHVAE and PixelHVAE x both priors x both rates, seed 14
  mkdir -p runs/paper-conv
  taskset -c 1 nice -n 10 .venv/bin/vampkeras compare --dataset freyfaces --data-dir ../shared/data \
    --model convhvae,pixelhvae --prior standard,vampprior --seeds 14, --lr 1e-4,5e-4 --protocol paper \
    --samples 5000 --jobs 1 --out runs/paper-conv/freyfaces --quiet
) &
wait
