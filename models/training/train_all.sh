#!/usr/bin/env bash
# Retrains and exports every GenService model from scratch with fixed seeds.
# Training is not part of CI. Timings on 2 shared CPU cores are in models/README.md and each model's card.
set -euo pipefail
cd "$(dirname "$0")"

if ! /usr/bin/python3 -c "import torch, sklearn, onnx, scipy, PIL" 2>/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update
    $sudo_cmd apt-get install -y python3-torch python3-sklearn python3-onnx python3-scipy python3-pil wamerican
fi

mkdir -p logs
PY=/usr/bin/python3
# The evaluation classifier first: every digits script scores its samples with it.
$PY evaluate.py --train | tee logs/classifier.log

# Two lanes side by side, one thread each (GS_THREADS=1): these models are far too small for intra-op
# parallelism, and two 2-thread processes on 2 cores run several times slower than this.
export GS_THREADS=1
( $PY train_gan.py > logs/gan.log 2>&1
  $PY train_flow.py > logs/flow.log 2>&1
  $PY train_digits_ar.py > logs/digits-ar.log 2>&1 ) &
lane_a=$!
( $PY train_ddpm.py > logs/ddpm.log 2>&1
  $PY train_vae.py > logs/vae.log 2>&1
  $PY train_words_ar.py > logs/words-ar.log 2>&1 ) &
lane_b=$!
wait $lane_a
wait $lane_b
# digits-txt2img (Optimum Stable Diffusion layout) after the lanes: VAE, then text encoder + UNet, then export;
# its evaluation classifier is trained on renders of the train split (evaluate_txt2img.py).
$PY train_txt2img.py > logs/txt2img.log 2>&1
$PY evaluate_txt2img.py --train-classifier > logs/txt2img-classifier.log 2>&1
grep -h "^done" logs/*.log
grep -h "done" logs/txt2img.log
echo "now run: dotnet test --project tests/GenService.Inference.Tests -- --filter-class \"*ModelParityTests\""
