#!/usr/bin/env bash
# Re-create the rows of docs/RESULTS.md: train the paper's models with the paper's protocol on one dataset, for
# each learning rate and seed asked for, then score each run on the full test set with S = 5000 importance
# samples (paper §5.2) and count its active units.
#
#   bash benchmarks/reproduce.sh [train|evaluate|all|publish]     (default: all)
#
# Every run is a cell named as `vampkeras compare` names its cells: OUT/<dataset>/<model>-<prior>-lr<lr>-seed<seed>
# (e.g. runs/paper/caltech101/vae-vampprior-lr1e-4-seed14), its SavedModel in OUT/<dataset>/saved_models/<cell>,
# so a comparison over the same folder adopts it.
#
# PROTOCOL (environment) picks the training length:
#   paper (default): the paper's §5.1 protocol: at most 2000 epochs, KL warm-up over 100 epochs, early stopping
#                    with a look-ahead of 50 epochs; runs in OUT=runs/paper. Minutes (Caltech 101, Frey Faces) to
#                    hours (MNIST, Omniglot) per cell on a CPU.
#   short:           the short budget of the short-budget tables of docs/RESULTS.md: 50 epochs (VAE), 30 (HVAE),
#                    warm-up 10; runs in OUT=runs/reproduce.
# Other settings (environment):
#   DATASET   static_mnist (default), dynamic_mnist, omniglot, caltech101, freyfaces, ...
#   SEEDS     the seeds, space-separated (default "14")
#   LRS       the learning rates, space-separated, written as the cells' names write them (default "5e-4"; the
#             paper chose from "1e-4 5e-4")
#   ROWS      the "model prior" rows, comma-separated (default: the six of Table 2 on static_mnist, the four of
#             Table 1 (vae/hvae x standard/vampprior) elsewhere)
#   ONLY      an extended regular expression on "model prior lr seed": only the cells it matches (e.g. ONLY='^vae ')
#   VAE_EPOCHS, HVAE_EPOCHS, WARMUP, PATIENCE (override the protocol's), JOBS (2 cells at once, one CPU thread
#   each), DATA_DIR (../shared/data), OUT, VAMPKERAS (.venv/bin/vampkeras)
# Everything else is the paper's (§5.1) and the dataset's (vampkeras' defaults): batch 100, Adam on normalized
# gradients, 40 latent units, gated layers of 300, K = 500 pseudo-inputs / components (Omniglot 1000).
# `publish` copies each scored cell's small records (config.json, history.csv, evaluation.json, figures/) to
# docs/results/<dataset>/<cell>/ (PROTOCOL=short: docs/results/short/<dataset>/<cell>/; never checkpoints).
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
SEEDS=${SEEDS:-14}
LRS=${LRS:-5e-4}
if [ "$DATASET" = static_mnist ]; then
  DEFAULT_ROWS="hvae vampprior,hvae vampprior-data,hvae mog,vae vampprior,hvae standard,vae standard"
else
  DEFAULT_ROWS="hvae vampprior,hvae standard,vae vampprior,vae standard"
fi
IFS=, read -r -a ROW_LIST <<< "${ROWS:-$DEFAULT_ROWS}"
# The cells, longest rows first (the rows' order), then by learning rate and seed: "model prior lr seed".
CELLS=()
for row in "${ROW_LIST[@]}"; do
  for lr in $LRS; do
    for seed in $SEEDS; do
      CELLS+=("$row $lr $seed")
    done
  done
done
export OUT DATASET DATA_DIR VAE_EPOCHS HVAE_EPOCHS WARMUP PATIENCE VAMPKERAS
mkdir -p "$OUT/$DATASET"

cell_name() {   # $1 model, $2 prior, $3 lr, $4 seed
  echo "$1-$2-lr$3-seed$4"
}

train_one() {   # $1 model, $2 prior, $3 lr, $4 seed
  local run="$OUT/$DATASET/$(cell_name "$@")" resume=() epochs=$VAE_EPOCHS
  [ "$1" = hvae ] && epochs=$HVAE_EPOCHS
  [ -f "$run/config.json" ] && resume=(--resume)
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "$VAMPKERAS" train "${resume[@]}" --dataset "$DATASET" \
    --data-dir "$DATA_DIR" --model "$1" --prior "$2" --lr "$3" --seed "$4" --epochs "$epochs" --warmup "$WARMUP" \
    --patience "$PATIENCE" --run-dir "$run" --export "$OUT/$DATASET/saved_models/$(cell_name "$@")" --quiet \
    >> "$run.train.log" 2>&1
}

evaluate_one() {   # $1 model, $2 prior, $3 lr, $4 seed
  local run="$OUT/$DATASET/$(cell_name "$@")"
  [ -f "$run/evaluation.json" ] && return 0
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "$VAMPKERAS" evaluate "$run" --data-dir "$DATA_DIR" \
    --samples 5000 --quiet > "$run.evaluate.log" 2>&1
}
export -f cell_name train_one evaluate_one

case "$STAGE" in
  train) step=train_one ;;
  evaluate) step=evaluate_one ;;
  all) step='train_one "$@" && evaluate_one' ;;          # a cell is scored as soon as it is trained
  publish) step= ;;
  *) echo "usage: $0 [train|evaluate|all|publish]" >&2; exit 2 ;;
esac
if [ -n "$step" ]; then
  printf '%s\n' "${CELLS[@]}" | { grep -E -- "$ONLY" || true; } \
    | xargs -r -P "$JOBS" -L 1 bash -c "$step"' "$@"' bash
else
  for cell in "${CELLS[@]}"; do
    grep -qE -- "$ONLY" <<< "$cell" || continue
    name=$(cell_name $cell)
    run="$OUT/$DATASET/$name" records="$RECORDS/$DATASET/$name"
    [ -f "$run/evaluation.json" ] || continue
    mkdir -p "$records/figures"
    cp "$run/config.json" "$run/history.csv" "$run/evaluation.json" "$records/"
    cp "$run"/figures/*.png "$records/figures/"
    echo "published $records"
  done
fi
# the table's numbers: training seconds = the sum of history.csv's per-epoch seconds, evaluation seconds and
# the rest from each run's evaluation.json
for cell in "${CELLS[@]}"; do
  grep -qE -- "$ONLY" <<< "$cell" || continue
  run="$OUT/$DATASET/$(cell_name $cell)"
  [ -f "$run/evaluation.json" ] || continue
  python3 - "$run" $cell <<'PY'
import csv, json, sys
run, model, prior, lr, seed = sys.argv[1:]
history = list(csv.DictReader(open(f"{run}/history.csv")))
result = json.load(open(f"{run}/evaluation.json"))
best = min(history, key=lambda r: float(r["val_loss"]))
row = {"model": model, "prior": prior, "lr": lr, "seed": int(seed), "epochs": len(history),
       "best_epoch": int(best["epoch"]), "train_seconds": round(sum(float(r["seconds"]) for r in history)),
       "best_val_loss": round(float(best["val_loss"]), 2), "test_log_likelihood": round(result["log_likelihood"], 2),
       "test_elbo": round(result["elbo"], 2), "active_units": result["active_units"],
       "evaluate_seconds": round(result["seconds"])}
if "bits_per_dim" in result:
    row["bits_per_dim"] = round(result["bits_per_dim"], 3)
print(json.dumps(row))
PY
done
