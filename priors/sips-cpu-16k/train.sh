#!/usr/bin/env bash
# Recipe of the embedded default prior (sips/default_prior). Resumable: re-run the same command.
#   usage: priors/sips-cpu-16k/train.sh CORPUS_DIR RUN_DIR [STAGE1_MINUTES] [STAGE2_MINUTES]
# CORPUS_DIR is built by shared/data/build_corpus.py. Speech comes only from the permissively
# licensed sources (sips.corpus.TRAIN_SOURCES: festvox_ru, BSD-like; Asterisk prompts, CC-BY-SA-3.0
# / CC-BY-3.0), so that the weights can be published. The held-out voices of the speaker-disjoint
# evaluation (sips.corpus.TEST_VOICES, VALID_VOICES: whole Tux Paint voices, GPL-2+ audio) are
# never trained on; the validation voices only give stage 2's validation loss.
#   stage 1 (v0.1.0): from scratch, clean/train of the training sources, 100 minutes.
#   stage 2 (v0.2.0): from stage 1's EMA weights, every file of the training voices (the corpus'
#                     per-file valid/test splits of these voices are not used for evaluation any
#                     more), voice augmentation (speed/pitch 0.88-1.12, tilt, one EQ band).
set -euo pipefail
corpus=$1 run=$2 minutes1=${3:-100} minutes2=${4:-75}
net=(--model-channels 16 --channel-mult 1,1,2,4,8 --num-blocks 1 --attn-resolutions ""
     --channels-per-head 64 --logvar-channels 32 --batch-size 8 --segment-seconds 1.0 --ema 0.999 --threads 2)

train=() valid=()
for d in "$corpus"/clean/train/festvox_ru_* "$corpus"/clean/train/asterisk_*; do train+=("$d"); done
for d in "$corpus"/clean/valid/festvox_ru_* "$corpus"/clean/valid/asterisk_*; do valid+=("$d"); done
sips train "${train[@]}" --valid "${valid[@]}" -o "$run/stage1" --export "$run/stage1-prior" "${net[@]}" \
  --lr 2e-3 --warmup-steps 200 --decay-steps 2000 \
  --steps 100000 --max-minutes "$minutes1" --checkpoint-every 200 --valid-every 200 --seed 0

train=() valid=()
for split in train valid test; do
  for d in "$corpus"/clean/$split/festvox_ru_* "$corpus"/clean/$split/asterisk_*; do train+=("$d"); done
  for v in be ca fr da; do  # sips.corpus.VALID_VOICES
    if [ -d "$corpus/clean/$split/tuxpaint_$v" ]; then valid+=("$corpus/clean/$split/tuxpaint_$v"); fi
  done
done
exec sips train "${train[@]}" --valid "${valid[@]}" -o "$run/stage2" --export "$run/prior" "${net[@]}" \
  --init "$run/stage1-prior" --augment voice --lr 1e-3 --warmup-steps 100 --decay-steps 400 \
  --steps 100000 --max-minutes "$minutes2" --checkpoint-every 100 --valid-every 200 --seed 1
