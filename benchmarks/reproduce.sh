#!/usr/bin/env bash
# Re-create the tables of docs/RESULTS.md with `vampkeras compare`: train the paper's models with the paper's
# protocol on one dataset, for each learning rate and seed asked for, score each cell on the full test set with
# S = 5000 importance samples (paper §5.2), and write the comparison's report (comparison.html, .json, .csv,
# .md) in OUT/<dataset>/.
#
#   bash benchmarks/reproduce.sh [all|publish]     (default: all)
#
# Every run is a cell of the comparison, OUT/<dataset>/<model>-<prior>-lr<lr>-seed<seed>, its SavedModel in
# OUT/<dataset>/saved_models/<cell>. The script can be stopped and started again: the comparison resumes
# unfinished cells, keeps finished ones and scores unscored ones (runs this script's earlier versions made
# under the same names are adopted, not retrained).
#
# PROTOCOL (environment) picks the training length:
#   paper (default): the paper's §5.1 protocol: at most 2000 epochs, KL warm-up over 100 epochs, early stopping
#                    with a look-ahead of 50 epochs; runs in OUT=runs/paper. Minutes (Caltech 101, Frey Faces) to
#                    hours (MNIST, Omniglot) per cell on a CPU.
#   short:           50 epochs (VAE), 30 (HVAE), warm-up 10 (the short-budget tables); runs in OUT=runs/reproduce.
# Other settings (environment):
#   DATASET   static_mnist (default), dynamic_mnist, omniglot, caltech101, freyfaces, ...
#   MODELS    comma-separated (default vae,hvae)
#   PRIORS    comma-separated (default standard,mog,vampprior-data,vampprior on static_mnist: Table 2's priors;
#             standard,vampprior elsewhere: Table 1's)
#   SEEDS     comma-separated seeds (default 14)
#   LRS       comma-separated learning rates (default 5e-4; the paper chose from 1e-4,5e-4: give both and the
#             comparison keeps, per model and prior, the one with the lower mean best validation loss)
#   EPOCHS, WARMUP, PATIENCE (override the protocol's), JOBS (cells at once, default 2, the cores split between
#   them), SAMPLES (5000), DATA_DIR (../shared/data), OUT, VAMPKERAS (.venv/bin/vampkeras)
# Everything else is the paper's (§5.1) and the dataset's (vampkeras' defaults): batch 100, Adam on normalized
# gradients, 40 latent units, gated layers of 300, K = 500 pseudo-inputs / components (Omniglot 1000).
# `publish` copies each scored cell's small records (config.json, history.csv, evaluation.json,
# comparison-score.json, figures/) and the comparison's report (comparison.json, .csv, .md; the .md is the
# dataset's page of the documentation site, so mkdocs.yml's nav must name it) to docs/results/<dataset>/
# (PROTOCOL=short: docs/results/short/<dataset>/; never checkpoints, models or per-image arrays).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
PROTOCOL=${PROTOCOL:-paper}
case "$PROTOCOL" in
  paper) OUT=${OUT:-runs/paper}; RECORDS=docs/results ;;
  short) OUT=${OUT:-runs/reproduce}; RECORDS=docs/results/short ;;
  *) echo "PROTOCOL must be paper or short, not '$PROTOCOL'" >&2; exit 2 ;;
esac
DATASET=${DATASET:-static_mnist}
if [ "$DATASET" = static_mnist ]; then DEFAULT_PRIORS=standard,mog,vampprior-data,vampprior
else DEFAULT_PRIORS=standard,vampprior; fi
MODELS=${MODELS:-vae,hvae}
PRIORS=${PRIORS:-$DEFAULT_PRIORS}
SEEDS=${SEEDS:-14}
LRS=${LRS:-5e-4}
JOBS=${JOBS:-2}
SAMPLES=${SAMPLES:-5000}
DATA_DIR=${DATA_DIR:-../shared/data}
VAMPKERAS=${VAMPKERAS:-.venv/bin/vampkeras}
COMPARISON="$OUT/$DATASET"
case "$SEEDS" in *,*) ;; *) SEEDS="$SEEDS," ;; esac           # one named seed ("14,"), not a count
OVERRIDES=()
[ -n "${EPOCHS:-}" ] && OVERRIDES+=(--epochs "$EPOCHS")
[ -n "${WARMUP:-}" ] && OVERRIDES+=(--warmup "$WARMUP")
[ -n "${PATIENCE:-}" ] && OVERRIDES+=(--patience "$PATIENCE")

case "$STAGE" in
  all)
    mkdir -p "$OUT"
    "$VAMPKERAS" compare --dataset "$DATASET" --data-dir "$DATA_DIR" --model "$MODELS" --prior "$PRIORS" \
      --seeds "$SEEDS" --lr "$LRS" --protocol "$PROTOCOL" --samples "$SAMPLES" --jobs "$JOBS" ${OVERRIDES[@]+"${OVERRIDES[@]}"} \
      --out "$COMPARISON" --quiet ;;
  publish)
    [ -f "$COMPARISON/comparison.json" ] || { echo "no finished comparison in $COMPARISON" >&2; exit 2; }
    mkdir -p "$RECORDS/$DATASET"
    for cell in "$COMPARISON"/*/comparison-score.json; do
      run=$(dirname "$cell") records="$RECORDS/$DATASET/$(basename "$(dirname "$cell")")"
      mkdir -p "$records/figures"
      cp "$run/config.json" "$run/history.csv" "$run/comparison-score.json" "$records/"
      [ -f "$run/evaluation.json" ] && cp "$run/evaluation.json" "$records/"
      cp "$run"/figures/*.png "$records/figures/"
      echo "published $records"
    done
    # the report's tables and numbers; not comparison.html: it embeds its plots (about 0.7 MB for Frey Faces),
    # and mkdocs refuses an .html beside the .md it builds as the dataset's page
    cp "$COMPARISON"/comparison.{json,csv,md} "$RECORDS/$DATASET/"
    echo "published $RECORDS/$DATASET/comparison.md" ;;
  *) echo "usage: $0 [all|publish]" >&2; exit 2 ;;
esac
