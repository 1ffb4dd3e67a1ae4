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
echo "cli smoke: ok"
