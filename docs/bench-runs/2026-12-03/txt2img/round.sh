#!/usr/bin/env bash
# The text-to-image round (docs/benchmarks.md, "Text-to-image (issue 13)").
set -uo pipefail
cd /work/wt-bench
D=/work/wt-bench/docs/bench-runs/2026-12-03/txt2img
B="dotnet src/GenService.Bench/bin/Release/net10.0/GenService.Bench.dll txt2img"
log() { echo "$(date -u +%FT%TZ) $*  [load $(cut -d' ' -f1-3 /proc/loadavg)]" | tee -a $D/round.log; }
log "round start; commit $(git rev-parse --short HEAD); model files:"; cat /tmp/t2i/sha.txt >> $D/round.log
log "load";   $B load   --seconds 15 --runs 3 --out $D/load.json   > $D/load.md   2> $D/load.err
log "cache";  $B cache  --seconds 10 --runs 3 --out $D/cache.json  > $D/cache.md  2> $D/cache.err
log "mixed";  $B mixed  --seconds 15 --runs 3 --out $D/mixed.json  > $D/mixed.md  2> $D/mixed.err
log "scalar"; $B scalar --seconds 15 --runs 3 --out $D/scalar.json > $D/scalar.md 2> $D/scalar.err
log "torch";  /usr/bin/python3 src/GenService.Bench/TextToImage/torch_txt2img_baseline.py --runs 3 --seconds 60 > $D/torch.log 2> $D/torch.err
log "round end"
