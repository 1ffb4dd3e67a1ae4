#!/usr/bin/env bash
# Reruns the Omega experiment: the three sweeps (6 simulated hours of a 10,000-machine cell
# each point) and their plots. From the repository root, after `make build` (~30 s here).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/omega
for s in decision-time conflicts scaling; do
  name=${s//-/_}
  build/bin/loom sim omega-sweep --sweep "$s" --json "$out/$name.json" | tee "$out/$name.txt"
done
/usr/bin/python3 "$out/plot.py" "$out"
