#!/usr/bin/env bash
# The CLI answers --help, rejects bad usage with one line and a non-zero exit.
set -u
loom="$1"
fail() { echo "FAIL: $*"; exit 1; }
"$loom" --help >/dev/null || fail "loom --help"
"$loom" bench --help >/dev/null || fail "loom bench --help"
"$loom" info >/dev/null || fail "loom info"
out=$("$loom" no-such-command 2>&1); rc=$?
[ $rc -ne 0 ] || fail "unknown command exited 0"
[ "$(echo "$out" | wc -l)" -le 3 ] || fail "unknown command printed more than 3 lines: $out"
out=$("$loom" bench gemm --threads abc 2>&1); rc=$?
[ $rc -ne 0 ] || fail "bad --threads exited 0"
out=$("$loom" bench gemm --sizes 64 --threads 1 --no-peers --repeats 1 2>&1) || fail "bench gemm small: $out"
echo "$out" | grep -q "64x64x64" || fail "bench gemm printed no row: $out"
out=$("$loom" train --model bogus 2>&1); rc=$?
[ $rc -ne 0 ] || fail "train with an unknown model exited 0"
if [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  ck="${TMPDIR:-/tmp}/loom_smoke_$$.safetensors"
  out=$("$loom" train --model mlp --epochs 1 --limit 512 --batch-size 64 --save "$ck" 2>&1) || fail "train: $out"
  echo "$out" | tail -n 1 | grep -q "^test_accuracy=0\.[0-9]*$" || fail "train did not end with test_accuracy=: $out"
  a=$(echo "$out" | tail -n 1)
  out=$("$loom" eval --checkpoint "$ck" --model mlp 2>&1) || fail "eval: $out"
  [ "$(echo "$out" | tail -n 1)" = "$a" ] || fail "eval of the saved checkpoint gave '$out', train gave '$a'"
  out=$("$loom" eval --checkpoint "$ck" --model cnn 2>&1); rc=$?
  [ $rc -ne 0 ] && echo "$out" | grep -q "does not match" || fail "eval with the wrong model: $out"
  rm -f "$ck"
fi
echo "cli smoke: ok"
