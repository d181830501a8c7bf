#!/usr/bin/env bash
# Retrains and exports every GenService model from scratch with fixed seeds.
# Training is not part of CI. Timings on 2 shared CPU cores are in models/README.md and each model's card.
set -euo pipefail
cd "$(dirname "$0")"

# wamerican is words-ar's training data (/usr/share/dict/words): checked on its own, since a machine can have the
# Python packages without it (the 2026-12-03 end-to-end run failed there, at words-ar, for want of it). regex is
# the CLIP tokenizer's (training/clip_bpe.py, digits-txt2img): a fresh machine without it failed there.
if ! /usr/bin/python3 -c "import torch, sklearn, onnx, scipy, PIL, regex" 2>/dev/null || [ ! -f /usr/share/dict/words ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update
    $sudo_cmd apt-get install -y python3-torch python3-sklearn python3-onnx python3-scipy python3-pil python3-regex wamerican
fi

mkdir -p logs
PY=/usr/bin/python3
TIMES=logs/train_all-times.log
: > "$TIMES"
# step LOG SCRIPT ARGS...: runs one script into logs/LOG.log and appends its wall-clock minutes to $TIMES.
step() {
    local log=$1; shift
    local t0=$SECONDS
    echo "$(date -u +%FT%TZ) start $log: $*" >> "$TIMES"
    "$PY" "$@" > "logs/$log.log" 2>&1
    echo "$(date -u +%FT%TZ) done $log $(( (SECONDS - t0) / 60 )) min $(( (SECONDS - t0) % 60 )) s" >> "$TIMES"
}
# The evaluation classifiers are the yardstick, not models: every digits script scores its samples (and the GAN and
# DDPM scripts choose their checkpoints) with eval/classifier.pt, digits-txt2img's figures come from
# eval/txt2img_classifier.pt. Both are committed and kept, so a rerun is scored as the shipped models were; they are
# trained only when missing, or when GS_RETRAIN_CLASSIFIERS=1. A retrain is deterministic on one machine but is not
# the committed file (made in the project's first environment): on 2026-12-03 it gave held-out accuracy 0.9889 and
# FID floor 6.64 against the committed 7.04, and every FID, accuracy and checkpoint choice moves with it.
retrain() { [ "${GS_RETRAIN_CLASSIFIERS:-0}" = 1 ] || [ ! -f "eval/$1" ]; }
if retrain classifier.pt; then step classifier evaluate.py --train; fi

# Two lanes side by side, one thread each (GS_THREADS=1): these models are far too small for intra-op
# parallelism, and two 2-thread processes on 2 cores run several times slower than this. The lanes are balanced by
# the wall-clock minutes of the 2026-12-03 end-to-end run (models/README.md): digits-ddpm 77, digits-gan 35,
# digits-flow 4, digits-vae 1, words-ar 4 in one lane (~121 min); digits-ar 48 and digits-txt2img ~90 in the other.
# digits-txt2img needs nothing from the digits models.
export GS_THREADS=1
( step ddpm train_ddpm.py
  step gan train_gan.py
  step flow train_flow.py
  step vae train_vae.py
  step words-ar train_words_ar.py ) &
lane_a=$!
( step digits-ar train_digits_ar.py
  step txt2img train_txt2img.py
  if retrain txt2img_classifier.pt; then step txt2img-classifier evaluate_txt2img.py --train-classifier; fi ) &
lane_b=$!
status=0
wait $lane_a || status=1
wait $lane_b || status=1
cat "$TIMES"
grep -h "^done" logs/*.log || true
[ "$status" -eq 0 ] || { echo "a training step failed: see $TIMES and logs/"; exit 1; }
echo "now run: dotnet test --project tests/GenService.Inference.Tests -- --filter-class \"*ModelParityTests\""
