#!/usr/bin/env bash
# Re-create every row of docs/RESULTS.md: train the paper's headline models on static MNIST, then score each
# on the full test set with S = 5000 importance samples (paper §5.2) and count its active units.
#
#   bash benchmarks/reproduce.sh [train|evaluate|all|publish]     (default: all)
#
# PROTOCOL (environment) picks the training length:
#   paper (default): the paper's §5.1 protocol: at most 2000 epochs, KL warm-up over 100 epochs, early stopping
#                    with a look-ahead of 50 epochs; runs in OUT=runs/paper. Hours per row on a CPU.
#   short:           the short budget of the second table of docs/RESULTS.md: 50 epochs (VAE), 30 (HVAE),
#                    warm-up 10; runs in OUT=runs/reproduce.
# Other settings (environment): VAE_EPOCHS, HVAE_EPOCHS, WARMUP, PATIENCE (override the protocol's), JOBS (2 rows
# at once, one CPU thread each), DATASET (static_mnist), DATA_DIR (../shared/data), OUT, VAMPKERAS
# (.venv/bin/vampkeras), ONLY (an extended regular expression on "model prior": only the rows it matches, e.g.
# ONLY='^vae ').
# Everything else is the paper's (§5.1): batch 100, lr 5e-4, Adam on normalized gradients, 40 latent units,
# gated layers of 300, K = 500 pseudo-inputs / components.
# `publish` copies each scored row's small records (config.json, history.csv, evaluation.json, figures/) to
# docs/results/<dataset>-<model>-<prior>/ (PROTOCOL=short: docs/results/short/...; never checkpoints or models).
# The script can be stopped and started again: a run that exists is resumed (a finished one is left as it
# is), a run with an evaluation.json is not scored again. The last lines printed are the table's rows (JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
PROTOCOL=${PROTOCOL:-paper}
case "$PROTOCOL" in
  paper) VAE_EPOCHS=${VAE_EPOCHS:-2000}; HVAE_EPOCHS=${HVAE_EPOCHS:-2000}; WARMUP=${WARMUP:-100}
         PATIENCE=${PATIENCE:-50}; OUT=${OUT:-runs/paper}; RECORDS=docs/results ;;
  short) VAE_EPOCHS=${VAE_EPOCHS:-50}; HVAE_EPOCHS=${HVAE_EPOCHS:-30}; WARMUP=${WARMUP:-10}
         PATIENCE=${PATIENCE:-50}; OUT=${OUT:-runs/reproduce}; RECORDS=docs/results/short ;;
  *) echo "PROTOCOL must be paper or short, not '$PROTOCOL'" >&2; exit 2 ;;
esac
JOBS=${JOBS:-2}
DATASET=${DATASET:-static_mnist}
DATA_DIR=${DATA_DIR:-../shared/data}
VAMPKERAS=${VAMPKERAS:-.venv/bin/vampkeras}
ONLY=${ONLY:-.}
ROWS=("vae standard" "vae vampprior" "hvae standard" "hvae mog" "hvae vampprior-data" "hvae vampprior")
LONGEST_FIRST=("hvae vampprior" "hvae vampprior-data" "hvae mog" "vae vampprior" "hvae standard" "vae standard")
export OUT DATASET DATA_DIR VAE_EPOCHS HVAE_EPOCHS WARMUP PATIENCE VAMPKERAS
mkdir -p "$OUT"

train_one() {   # $1 model, $2 prior
  local run="$OUT/$DATASET-$1-$2" resume=() epochs=$VAE_EPOCHS
  [ "$1" = hvae ] && epochs=$HVAE_EPOCHS
  [ -f "$run/config.json" ] && resume=(--resume)
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "$VAMPKERAS" train "${resume[@]}" --dataset "$DATASET" \
    --data-dir "$DATA_DIR" --model "$1" --prior "$2" --epochs "$epochs" --warmup "$WARMUP" --patience "$PATIENCE" --run-dir "$run" \
    --export "$run-model" --quiet >> "$run.train.log" 2>&1
}

evaluate_one() {   # $1 model, $2 prior
  local run="$OUT/$DATASET-$1-$2"
  [ -f "$run/evaluation.json" ] && return 0
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "$VAMPKERAS" evaluate "$run" --data-dir "$DATA_DIR" \
    --samples 5000 --quiet > "$run.evaluate.log" 2>&1
}
export -f train_one evaluate_one

case "$STAGE" in
  train) step=train_one ;;
  evaluate) step=evaluate_one ;;
  all) step='train_one "$0" "$1" && evaluate_one' ;;          # a row is scored as soon as it is trained
  publish) step= ;;
  *) echo "usage: $0 [train|evaluate|all|publish]" >&2; exit 2 ;;
esac
if [ -n "$step" ]; then
  printf '%s\n' "${LONGEST_FIRST[@]}" | { grep -E -- "$ONLY" || true; } | xargs -r -P "$JOBS" -L 1 bash -c "$step"' "$0" "$1"'
else
  for row in "${ROWS[@]}"; do
    grep -qE -- "$ONLY" <<< "$row" || continue
    set -- $row
    run="$OUT/$DATASET-$1-$2" records="$RECORDS/$DATASET-$1-$2"
    [ -f "$run/evaluation.json" ] || continue
    mkdir -p "$records/figures"
    cp "$run/config.json" "$run/history.csv" "$run/evaluation.json" "$records/"
    cp "$run"/figures/*.png "$records/figures/"
    echo "published $records"
  done
fi
# the table's numbers: training seconds = the sum of history.csv's per-epoch seconds, evaluation seconds and
# the rest from each run's evaluation.json
for row in "${ROWS[@]}"; do
  grep -qE -- "$ONLY" <<< "$row" || continue
  set -- $row
  run="$OUT/$DATASET-$1-$2"
  [ -f "$run/evaluation.json" ] || continue
  python3 - "$run" "$1" "$2" <<'PY'
import csv, json, sys
run, model, prior = sys.argv[1:]
history = list(csv.DictReader(open(f"{run}/history.csv")))
result = json.load(open(f"{run}/evaluation.json"))
print(json.dumps({"model": model, "prior": prior, "epochs": len(history),
                  "train_seconds": round(sum(float(r["seconds"]) for r in history)),
                  "best_val_loss": round(min(float(r["val_loss"]) for r in history), 2),
                  "test_log_likelihood": round(result["log_likelihood"], 2), "test_elbo": round(result["elbo"], 2),
                  "active_units": result["active_units"], "evaluate_seconds": round(result["seconds"])}))
PY
done
