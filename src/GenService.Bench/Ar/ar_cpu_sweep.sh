#!/usr/bin/env bash
# AR tokens/s and CPU use against concurrency, with the service in its own process (as deployed) and wrk as the
# load generator (docs/benchmarks.md, "AR loop and the large-object heap"). Each build serves a temporary model
# folder holding only the benchmarked model; cells are interleaved build by build (run 1 of every build, then
# run 2, ...) so that a drifting machine hits every build alike.
#
#   src/GenService.Bench/Ar/ar_cpu_sweep.sh --builds before=/path/to/old/checkout,after=. \
#       [--model words-ar] [--concurrency 1,2,4,8,16,32,64,128] [--seconds 6] [--runs 3] [--scheduling iteration] \
#       [--out sweep.csv]
# Each build path is a checkout whose src/GenService.Api was built with `dotnet build -c Release`.
# Needs wrk (apt-get install wrk). Columns: tokens/s, requests/s, latency p50/p99 (whole stream), the server's CPU
# (cores, from /proc/<pid>/stat), the rest of the box's CPU (wrk, mostly), and the whole box's busy share (/proc/stat).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

builds="after=$root"; model=words-ar; concurrency=1,2,4,8,16,32,64,128; seconds=6; runs=3; scheduling=iteration; out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --builds) builds="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --scheduling) scheduling="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/models"
cp -r "$root/models/$model" "$work/models/"
extra=""
grep -q '"num_classes"' "$root/models/$model/model.json" && extra='"class_label": 3,'

# Start one server per build, each on its own port, and wait for readiness.
declare -A port pid_of
names=()
p=18080
IFS=',' read -ra pairs <<< "$builds"
for pair in "${pairs[@]}"; do
  name="${pair%%=*}"; dir="$(cd "${pair#*=}" && pwd)"
  dll="$dir/src/GenService.Api/bin/Release/net10.0/GenService.Api.dll"
  [[ -f "$dll" ]] || { echo "$dll missing: dotnet build $dir/src/GenService.Api -c Release" >&2; exit 2; }
  GenService__ModelRepository="$work/models" GenService__Ar__Scheduling="$scheduling" Serilog__MinimumLevel__Default=Warning \
    dotnet "$dll" --urls "http://127.0.0.1:$p" --contentRoot "$dir/src/GenService.Api" > "$work/$name.log" 2>&1 &
  pid_of[$name]=$!; pids+=($!); port[$name]=$p; names+=("$name"); p=$((p + 1))
done
for name in "${names[@]}"; do
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:${port[$name]}/v2/health/ready" >/dev/null && break
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:${port[$name]}/v2/health/ready" >/dev/null || { cat "$work/$name.log" >&2; exit 1; }
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
box() { awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; print busy, busy+$5+$6}' /proc/stat; }
hz=$(getconf CLK_TCK)

echo "# $model, scheduling $scheduling, ${seconds} s per cell, $runs runs, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC"
echo "| build | C | run | tokens/s | req/s | p50 ms | p99 ms | server cores | other cores | box busy | failed |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
[[ -n "$out" ]] && echo "build,concurrency,run,tokens_per_s,req_per_s,p50_ms,p99_ms,server_cores,other_cores,box_busy,failed" > "$out"
IFS=',' read -ra cs <<< "$concurrency"
for c in "${cs[@]}"; do
  threads=$(( c < 2 ? 1 : 2 ))
  for run in $(seq 1 "$runs"); do
    for name in "${names[@]}"; do
      url="http://127.0.0.1:${port[$name]}/v1/ar/$model/samples"
      [[ $run -eq 1 ]] && AR_BODY_EXTRA="$extra" wrk -t"$threads" -c"$c" -d1s -s "$here/sse_tokens.lua" "$url" >/dev/null 2>&1 || true
      s0=$(ticks "${pid_of[$name]}"); read -r b0 t0 <<< "$(box)"
      AR_BODY_EXTRA="$extra" wrk -t"$threads" -c"$c" -d"${seconds}s" -s "$here/sse_tokens.lua" "$url" > "$work/wrk.out" 2>&1 &
      wpid=$!
      wait "$wpid" || true
      s1=$(ticks "${pid_of[$name]}"); read -r b1 t1 <<< "$(box)"
      line=$(grep '^RESULT' "$work/wrk.out" || true)
      [[ -n "$line" ]] || { cat "$work/wrk.out" >&2; exit 1; }
      eval "${line#RESULT }"
      row=$(awk -v tok="$tokens" -v req="$requests" -v sec="$duration" -v p50="$p50_ms" -v p99="$p99_ms" \
        -v s="$((s1 - s0))" -v hz="$hz" -v bb="$((b1 - b0))" -v bt="$((t1 - t0))" -v n="$(nproc)" -v fail="$failed" \
        'BEGIN { srv = s / hz / sec; busy = bb / bt; printf "%.0f,%.1f,%.2f,%.2f,%.2f,%.2f,%.2f,%d", tok/sec, req/sec, p50, p99, srv, busy*n - srv, busy, fail }')
      IFS=',' read -r tps rps p50 p99 srv wrkc busy fail <<< "$row"
      echo "| $name | $c | $run | $tps | $rps | $p50 | $p99 | $srv | $wrkc | $(awk -v b="$busy" 'BEGIN{printf "%.0f %%", b*100}') | $fail |"
      [[ -n "$out" ]] && echo "$name,$c,$run,$row" >> "$out"
    done
  done
done
