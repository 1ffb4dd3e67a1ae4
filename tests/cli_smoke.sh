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
# Batch 1 against oneDNN (whose Winograd weight gradient crashes on small batches: the bench
# must leave it out, not die).
out=$("$loom" bench conv --batch 1 --threads 1 --repeats 1 2>&1) || fail "bench conv --batch 1: $out"
echo "$out" | grep -q "^1x32x14x14->64 k3 .*bwd_wgt" || fail "bench conv --batch 1 printed no weight-gradient row: $out"
out=$("$loom" bench pool --tasks 1,3 --threads 1,2 --repeats 1 2>&1) || fail "bench pool: $out"
echo "$out" | grep -q "^3 *2 " || fail "bench pool printed no 3-task row: $out"
out=$("$loom" bench pool --tasks 0 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "bench pool --tasks 0: rc=$rc '$out'"
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
  # Data parallelism: 2 ranks as threads and as processes end with the same accuracy line
  # as each other (same seed, same global batches).
  a1=$("$loom" train --model mlp --epochs 1 --limit 512 --dp 2 2>&1 | tail -n 1)
  a2=$("$loom" train --model mlp --epochs 1 --limit 512 --dp 2 --transport shm 2>&1 | tail -n 1)
  echo "$a1" | grep -q "^test_accuracy=0\.[0-9]*$" || fail "train --dp 2: $a1"
  [ "$a1" = "$a2" ] || fail "train --dp 2 inproc '$a1' vs shm '$a2'"
  # Ranks started separately (as on two machines), meeting through a file store over TCP.
  st="${TMPDIR:-/tmp}/loom_smoke_store_$$"
  rm -rf "$st"
  "$loom" train --model mlp --epochs 1 --limit 512 --dp 2 --transport tcp --store "file:$st" --rank 1 --threads 1 \
    >/dev/null 2>&1 &
  r1=$!
  a3=$("$loom" train --model mlp --epochs 1 --limit 512 --dp 2 --transport tcp --store "file:$st" --rank 0 \
    --threads 1 2>&1 | tail -n 1)
  wait $r1 || fail "train --store rank 1 failed"
  rm -rf "$st"
  [ "$a3" = "$a1" ] || fail "train --store (2 separately started ranks) '$a3' vs --dp 2 '$a1'"
  # Profiling: a traced and sampled run, then the summary, the checker and the request paths.
  tr="${TMPDIR:-/tmp}/loom_smoke_trace_$$"
  out=$("$loom" train --model mlp --epochs 1 --limit 256 --batch-size 64 --trace "$tr.json" \
        --sample-profile "$tr.folded" 2>&1) || fail "train --trace: $out"
  [ -s "$tr.json" ] && [ -s "$tr.folded" ] && [ -s "$tr.svg" ] || fail "trace/profile files missing: $out"
  out=$("$loom" prof "$tr.json" 2>&1) || fail "prof: $out"
  echo "$out" | grep -q "matmul" || fail "prof table has no matmul row: $out"
  "$loom" prof "$tr.json" --check >/dev/null || fail "prof --check found problems"
  out=$("$loom" prof "$tr.json" --requests 2>&1) || fail "prof --requests: $out"
  echo "$out" | grep -q "load_batch>train_step" || fail "no load_batch>train_step request path: $out"
  out=$("$loom" prof "$tr.folded" --folded 2>&1) || fail "prof --folded: $out"
  out=$("$loom" prof "$tr.folded" 2>&1); rc=$?
  [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "prof of a non-JSON file: rc=$rc '$out'"
  rm -f "$tr.json" "$tr.folded" "$tr.svg"
fi
# Scheduling simulator: a small run, and a bad architecture.
out=$("$loom" sim omega --machines 200 --hours 0.5 2>&1) || fail "sim omega: $out"
echo "$out" | grep -q "CPU utilization" || fail "sim omega printed no utilization: $out"
out=$("$loom" sim omega --arch borg 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "sim omega --arch borg: rc=$rc '$out'"
src_root=$(cd "$(dirname "$0")/.." && pwd)
out=$(cd "$src_root" && "$loom" sim gavel --jobs 30 --rate 0.5 2>&1) || fail "sim gavel: $out"
echo "$out" | grep -q "avg JCT" || fail "sim gavel printed no JCT: $out"
out=$(cd "$src_root" && "$loom" sim gavel --policy srtf 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "sim gavel --policy srtf: rc=$rc '$out'"
# Trees: compile a golden XGBoost model, predict from CSV (header, a missing value), bad input.
src=$(cd "$(dirname "$0")/.." && pwd)
tmp="${TMPDIR:-/tmp}/loom_smoke_trees_$$"
"$loom" trees compile "$src/tests/golden/trees/xgb_softprob_d5_t10x3.model.json.gz" -o "$tmp.lt" --strategy ptt \
  >/dev/null || fail "trees compile"
printf 'a,b,c,d,e,f,g,h\n0.1,-1,2,0.5,,1,0,3\n1,1,1,1,1,1,1,1\n' > "$tmp.csv"
out=$("$loom" trees predict "$tmp.lt" --input "$tmp.csv" 2>/dev/null) || fail "trees predict: $out"
[ "$(echo "$out" | wc -l)" -eq 2 ] || fail "trees predict printed '$out' (expected 2 rows)"
echo "$out" | awk -F, '{ s = $1 + $2 + $3; if (NF != 3 || s < 0.9999 || s > 1.0001) exit 1 }' \
  || fail "trees predict rows are not 3 probabilities summing to 1: $out"
printf '1,2,3\n' > "$tmp.bad.csv"
out=$("$loom" trees predict "$tmp.lt" --input "$tmp.bad.csv" 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "expects \[N, 8\]" \
  || fail "trees predict with 3 columns: rc=$rc '$out'"
out=$("$loom" trees compile "$tmp.csv" -o "$tmp.x" 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "trees compile of a CSV file: rc=$rc '$out'"
rm -f "$tmp.lt" "$tmp.csv" "$tmp.bad.csv" "$tmp.x"
# Collectives: every transport on 3 ranks, results checked (--check fails on a wrong element).
for t in inproc shm tcp; do
  out=$("$loom" bench allreduce --ranks 3 --transport "$t" -e 256K -f 16 --repeats 1 --no-peers --check 2>&1) \
    || fail "bench allreduce --transport $t: $out"
  echo "$out" | grep -q "^ *32768 " || fail "bench allreduce --transport $t printed no 32K row: $out"
done
for c in allgather reducescatter bcast alltoall; do
  "$loom" bench "$c" --ranks 3 --transport shm -e 64K -f 16 --repeats 1 --no-peers --check >/dev/null 2>&1 \
    || fail "bench $c"
done
out=$("$loom" bench allreduce --ranks 2 --algo bruck --no-peers 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "bench allreduce --algo bruck: rc=$rc '$out'"
echo "cli smoke: ok"
