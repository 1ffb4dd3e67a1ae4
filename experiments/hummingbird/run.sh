#!/usr/bin/env bash
# Reruns the Hummingbird experiment: benchmark models (XGBoost 1.7 and scikit-learn 1.2 from
# Debian), `loom bench trees` on each against the library's own predictor, the strategy
# crossover sweep, and the plot. Usage (from the repository root, after `make build`):
#   experiments/hummingbird/run.sh [MODEL_DIR]      (default build/trees-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-build/trees-bench}"
out=experiments/hummingbird
loom=build/bin/loom
scripts/install-deps.sh --python
if [ ! -f "$dir/X.npy" ]; then
  /usr/bin/python3 tools/gen_trees.py bench "$dir"
fi
for m in xgb_binary_d3_t100 xgb_binary_d8_t100 xgb_binary_d8_t500 xgb_binary_d12_t100 sk_rf_d8_t100; do
  strategies=auto,gemm,tt,ptt
  case $m in xgb_binary_d8_t500|xgb_binary_d12_t100|sk_rf_d8_t100) strategies=auto,tt,ptt ;; esac
  "$loom" bench trees "$dir/$m.json" --data "$dir/X.npy" --strategies $strategies --json "$out/bench_$m.json" \
    | tee "$out/bench_$m.txt"
done
"$loom" bench trees-crossover --json "$out/crossover.json" | tee "$out/crossover.txt"
/usr/bin/python3 "$out/plot.py" "$out"
