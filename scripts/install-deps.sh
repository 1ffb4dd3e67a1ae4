#!/usr/bin/env bash
# Installs every Debian package Loom needs. Idempotent: when everything is present it
# only runs dpkg queries and returns in well under a second.
#
#   scripts/install-deps.sh            build + test + benchmark peers (OpenBLAS, oneDNN)
#   scripts/install-deps.sh --python   also the Python peers used by tools/ (golden data)
set -euo pipefail

pkgs=(
  cmake ninja-build g++ make pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev zlib1g-dev
  # COIN-OR CLP: the LP solver behind Gavel's scheduling policies (loom/sched/gavel).
  coinor-libclp-dev
  # OpenMPI: the multi-machine transport of loom/comm (mpirun) and its benchmark peer.
  openmpi-bin libopenmpi-dev
  # Fashion-MNIST in IDX format under /usr/share/datasets/fashion-mnist (loom train).
  dataset-fashion-mnist
  # Peers, used only by `loom bench` (loaded at run time, never needed to build Loom).
  libopenblas-dev libdnnl-dev
  # Gloo: the TCP collectives peer of `loom bench allreduce` (loom-gloo-peer).
  libgloo-dev
)
if [[ "${1:-}" == "--python" ]]; then
  pkgs+=(python3 python3-numpy python3-torch python3-xgboost python3-sklearn)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
