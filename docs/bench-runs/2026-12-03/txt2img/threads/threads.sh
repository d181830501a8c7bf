#!/usr/bin/env bash
# Extra: does the second core help? load at C 16 and 64 with the shipped settings (1 session, 1 intra-op thread),
# GenService:Instances=2 (two sessions, iterations of >= 32 rows split over both) and GenService:IntraOpNumThreads=2,
# one run of each per round, 3 rounds.
set -uo pipefail
cd /work/wt-bench
D=/work/wt-bench/docs/bench-runs/2026-12-03/txt2img/threads
mkdir -p $D
B="dotnet src/GenService.Bench/bin/Release/net10.0/GenService.Bench.dll txt2img"
log() { echo "$(date -u +%FT%TZ) $*  [load $(cut -d' ' -f1-3 /proc/loadavg)]" | tee -a $D/round.log; }
for run in 1 2 3; do
  for v in default GenService:Instances=2 GenService:IntraOpNumThreads=2; do
    name=${v#GenService:}; cfg=""; [[ $v != default ]] && cfg="--config $v"
    log "run $run $name"
    $B load --seconds 15 --runs 1 --concurrency 16,64 $cfg --out $D/$name-$run.json > $D/$name-$run.md 2>/dev/null
  done
done
log "end"
