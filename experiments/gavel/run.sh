#!/usr/bin/env bash
# Reruns the Gavel experiment: average JCT against the job arrival rate for the
# heterogeneity-aware and -agnostic policies on a 36-GPU cluster (12 each of v100, p100, k80),
# 1000 generated jobs per point, the middle 600 measured. After `make build`; ~2 min here.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/gavel
build/bin/loom sim gavel-sweep --policies max_min,max_min_agnostic,ftf,fifo \
  --rates 20,40,60,80,100,120,140 --jobs 1000 --measure-from 200 --measure-to 800 \
  --json "$out/sweep.json" | tee "$out/sweep.txt"
# Space sharing: max-min with pairs of 1-GPU jobs packed on one GPU (Gavel's co-location data).
build/bin/loom sim gavel-sweep --policies max_min --space-sharing \
  --rates 20,40,60,80,100,120,140 --jobs 1000 --measure-from 200 --measure-to 800 \
  --json "$out/sweep_ss.json" | tee "$out/sweep_ss.txt"
/usr/bin/python3 "$out/plot.py" "$out"
