#!/usr/bin/env bash
# Recipe of the embedded default prior (sips/default_prior). Resumable: re-run the same command.
#   usage: priors/sips-cpu-16k/train.sh CORPUS_DIR RUN_DIR [MAX_MINUTES]
# CORPUS_DIR is built by shared/data/build_corpus.py. Only the permissively licensed sources are
# used (festvox_ru: BSD-like; Asterisk prompts: CC-BY-SA-3.0 / CC-BY-3.0); the GPL-2+ sources
# (Tux Paint, Kajongg) are left out so that the weights can be published.
set -euo pipefail
corpus=$1 run=$2 minutes=${3:-95}
train=() valid=()
for d in "$corpus"/clean/train/festvox_ru_* "$corpus"/clean/train/asterisk_*; do train+=("$d"); done
for d in "$corpus"/clean/valid/festvox_ru_* "$corpus"/clean/valid/asterisk_*; do valid+=("$d"); done
exec sips train "${train[@]}" --valid "${valid[@]}" -o "$run" \
  --model-channels 16 --channel-mult 1,1,2,4,8 --num-blocks 1 --attn-resolutions "" \
  --channels-per-head 64 --logvar-channels 32 \
  --batch-size 8 --segment-seconds 1.0 --lr 2e-3 --warmup-steps 200 --decay-steps 2000 --ema 0.999 \
  --steps 100000 --max-minutes "$minutes" --checkpoint-every 200 --valid-every 200 --seed 0 --threads 2
