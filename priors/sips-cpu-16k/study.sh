#!/usr/bin/env bash
# Issue 21, item 3: which training configuration learns most per CPU minute on this CPU.
#   usage: priors/sips-cpu-16k/study.sh CORPUS_DIR OUT_DIR [MINUTES=5] [RUNS...]
# Every run trains on the campaign's voices (campaign.sh) with validation on the held-out
# validation voices every 40 steps, for MINUTES of training CPU time on one thread; summary.json records
# the validation loss against the training CPU seconds (validation excluded), and
# `python benchmarks/train_curves.py OUT_DIR` compares the runs at equal CPU minutes.
# Runs (default: all; "cb" = bf16 autocast + torch.compile, the fastest steps of
# benchmarks/train_speed.py): from scratch, the embedded architecture at 16 base channels in fp32
# and cb (bf16's effect on the loss), and 8 / 32 base channels in cb (network size); fine-tuning
# the embedded v0.2 prior in cb with lr 1e-3 (base) or 3e-4, EMA 0.999 (base) or none, 1 s (base)
# or 2 s crops (batch 4: equal seconds of audio per step), and on the studio-grade voices only
# (festvox_ru, Fish Fillets, Nexuiz: no Asterisk G.722 prompts; item 2's source choice).
set -euo pipefail
corpus=$1 out=$2 minutes=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
runs=("$@")
if [ ${#runs[@]} -eq 0 ]; then
  runs=(s16-fp32 s16-cb s8-cb s32-cb ft-cb ft-ema0 ft-lr3e-4 ft-crop2 ft-studio)
fi
source "$(dirname "$0")/voices.sh"
campaign_voices "$corpus"
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
for run in "${runs[@]}"; do
  channels=16 precision=bf16 extra=(--compile) lr=2e-3 ema=0.999 batch=8 crop=1.0 init=() data=("${train[@]}")
  case $run in
    s16-fp32) precision=fp32 extra=() ;;
    s16-cb) ;;
    s8-cb) channels=8 ;;
    s32-cb) channels=32 ;;
    ft-*) init=(--init "$here/sips/default_prior") lr=1e-3 ;;&
    ft-cb) ;;
    ft-ema0) ema=0 ;;
    ft-lr3e-4) lr=3e-4 ;;
    ft-crop2) batch=4 crop=2.0 ;;
    ft-studio) data=("${studio[@]}") ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  if [ -f "$out/$run/summary.json" ]; then echo "$run: done"; continue; fi
  sips train "${data[@]}" --valid "${valid[@]}" -o "$out/$run" --quiet \
    --model-channels "$channels" --channel-mult 1,1,2,4,8 --num-blocks 1 --attn-resolutions "" \
    --channels-per-head 64 --logvar-channels 32 --batch-size "$batch" --segment-seconds "$crop" --ema "$ema" \
    --threads 1 --precision "$precision" "${extra[@]}" "${init[@]}" --augment voice --lr "$lr" \
    --warmup-steps 100 --decay-steps 400 --steps 100000 --max-cpu-minutes "$minutes" --checkpoint-every 1000 \
    --valid-every 40 --valid-items 32 --seed 5 > "$out/$run.log" 2>&1 || echo "$run: failed" >&2
  echo "$run: $(tail -1 "$out/$run.log")"
done
