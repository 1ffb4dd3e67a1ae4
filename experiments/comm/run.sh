#!/usr/bin/env bash
# Collective benchmarks of docs/performance.md ("Collectives"): Loom vs OpenMPI (at its best)
# and Gloo in the same run, 2 ranks, plus data-parallel training throughput.
# Run from the repository root after `make build`; takes ~15 minutes on 2 cores.
set -euo pipefail
loom=build/bin/loom
out=experiments/comm
$loom bench allreduce --ranks 2 --transport shm --repeats 5 --json $out/allreduce_shm_2.json | tee $out/allreduce_shm_2.txt
$loom bench allreduce --ranks 2 --transport tcp -f 4 --repeats 3 --json $out/allreduce_tcp_2.json | tee $out/allreduce_tcp_2.txt
for c in allgather reducescatter bcast alltoall; do
  $loom bench $c --ranks 2 --transport shm -f 8 --repeats 3 --json $out/${c}_shm_2.json | tee $out/${c}_shm_2.txt
done
$loom bench allreduce --ranks 4 --transport shm -f 8 --repeats 3 --json $out/allreduce_shm_4.json | tee $out/allreduce_shm_4.txt
# Data parallelism: cnn, 1 epoch on 19,200 samples, batch 64.
for args in "--threads 1" "--threads 2" "--dp 2" "--dp 2 --transport shm" "--dp 2 --transport tcp"; do
  echo "== loom train --model cnn --epochs 1 --limit 19200 $args"
  $loom train --model cnn --epochs 1 --limit 19200 $args | grep -E "^epoch 1:|data parallel:"
done | tee $out/train_dp.txt
