#!/usr/bin/env bash
# The fidelity details of docs/RESULTS.md, measured at equal epochs: each of the authors' released code's
# choices that differ from the paper's text (or from vampkeras' default) trained alone, beside the default
# and beside the default with another seed (the spread any change has to beat).
#
#   bash benchmarks/fidelity.sh [all|publish]     (default: all)
#
# Variants (RunConfig options on top of the defaults, paper §5.1):
#   paper          the defaults: Glorot init, gated halves normalized jointly, pseudo-inputs N(0.05, 0.01)
#   paper-seed15   the same with --seed 15
#   init-authors   --init authors (He-normal dense weights, PyTorch's default biases)
#   per-half       --gated-normgrad per-half (each half of a gated layer normalized alone)
#   noisy-data     --pseudo-init noisy-data (K training images + N(0, 0.01²) noise)
#   authors-all    the three together: the authors' code's configuration
# Settings (environment): MODEL (vae), PRIOR (vampprior), EPOCHS (20), WARMUP (10), SAMPLES (1000 importance
# samples for the test log-likelihood), DATASET (static_mnist), DATA_DIR (../shared/data), OUT
# (runs/fidelity), VAMPKERAS (.venv/bin/vampkeras), JOBS (1 variant at a time, one CPU thread each), ONLY (an
# extended regular expression on the variant's name).
# Stopped and started again, it resumes what exists and does not score a variant twice. The last lines
# printed are one JSON row per variant: validation loss every 5 epochs, best validation loss, test LL/ELBO.
# `publish` copies config.json, history.csv and evaluation.json to docs/results/fidelity/<variant>/.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
MODEL=${MODEL:-vae}; PRIOR=${PRIOR:-vampprior}; EPOCHS=${EPOCHS:-20}; WARMUP=${WARMUP:-10}
SAMPLES=${SAMPLES:-1000}; DATASET=${DATASET:-static_mnist}; DATA_DIR=${DATA_DIR:-../shared/data}
OUT=${OUT:-runs/fidelity}; VAMPKERAS=${VAMPKERAS:-.venv/bin/vampkeras}; JOBS=${JOBS:-1}; ONLY=${ONLY:-.}
VARIANTS=(
  "paper"
  "paper-seed15 --seed 15"
  "init-authors --init authors"
  "per-half --gated-normgrad per-half"
  "noisy-data --pseudo-init noisy-data"
  "authors-all --init authors --gated-normgrad per-half --pseudo-init noisy-data"
)
export MODEL PRIOR EPOCHS WARMUP SAMPLES DATASET DATA_DIR OUT VAMPKERAS
mkdir -p "$OUT"

run_variant() {   # $1 name, then its options
  local name=$1; shift
  local run="$OUT/$MODEL-$PRIOR-$name" resume=()
  [ -f "$run/config.json" ] && resume=(--resume)
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "$VAMPKERAS" train "${resume[@]}" --dataset "$DATASET" \
    --data-dir "$DATA_DIR" --model "$MODEL" --prior "$PRIOR" --epochs "$EPOCHS" --warmup "$WARMUP" \
    --image-every 0 --run-dir "$run" --export "$run-model" --quiet "$@" >> "$run.train.log" 2>&1
  [ -f "$run/evaluation.json" ] && return 0
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "$VAMPKERAS" evaluate "$run" --data-dir "$DATA_DIR" \
    --samples "$SAMPLES" --quiet > "$run.evaluate.log" 2>&1
}
export -f run_variant

case "$STAGE" in
  all) printf '%s\n' "${VARIANTS[@]}" | { grep -E -- "^($ONLY)" || true; } |
         xargs -r -P "$JOBS" -L 1 bash -c 'run_variant "$@"' _ ;;
  publish) ;;
  *) echo "usage: $0 [all|publish]" >&2; exit 2 ;;
esac
for variant in "${VARIANTS[@]}"; do
  name=${variant%% *}
  run="$OUT/$MODEL-$PRIOR-$name"
  [ -f "$run/evaluation.json" ] || continue
  if [ "$STAGE" = publish ]; then
    records="docs/results/fidelity/$MODEL-$PRIOR-$name"
    mkdir -p "$records"
    cp "$run/config.json" "$run/history.csv" "$run/evaluation.json" "$records/"
  fi
  python3 - "$run" "$name" <<'PY'
import csv, json, sys
run, name = sys.argv[1:]
history = list(csv.DictReader(open(f"{run}/history.csv")))
result = json.load(open(f"{run}/evaluation.json"))
print(json.dumps({"variant": name,
                  "val_loss": {r["epoch"]: round(float(r["val_loss"]), 2) for r in history if int(r["epoch"]) % 5 == 0},
                  "best_val_loss": round(min(float(r["val_loss"]) for r in history), 2),
                  "test_log_likelihood": round(result["log_likelihood"], 2), "test_elbo": round(result["elbo"], 2),
                  "num_samples": result["num_samples"], "active_units": result["active_units"]}))
PY
done
