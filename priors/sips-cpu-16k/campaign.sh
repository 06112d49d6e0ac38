#!/usr/bin/env bash
# Issue 21's training campaign (resumable: re-run the same command; sips train resumes from RUN_DIR):
# the embedded prior's architecture, started from its weights (sips/default_prior, v0.2), on every
# file of the wider permitted voices, voice augmentation, validation loss on the held-out
# validation voices (sips.corpus.VALID_VOICES; the test voices are never read). bf16 autocast +
# torch.compile: 1.68x the fp32 steps per CPU second at the same loss per step (study.sh,
# docs/benchmarks.md); a run started in fp32 resumes in bf16.
#   usage: priors/sips-cpu-16k/campaign.sh CORPUS_DIR RUN_DIR [MINUTES=125] [THREADS=1]
# Voices: festvox_ru and Asterisk (as v0.2) plus Fish Fillets (cs, nl: GPL-2 audio) and the Nexuiz
# tutorial narrator (GPL-2+ audio). Whether weights trained on GPL audio may be published under the
# prior's licence is unsettled (see the corpus' LICENSES.md): a candidate from this recipe becomes
# the embedded prior only after that decision and a measurement on the validation voices.
set -euo pipefail
corpus=$1 run=$2 minutes=${3:-125} threads=${4:-1}
source "$(dirname "$0")/voices.sh"
campaign_voices "$corpus"
here=$(cd "$(dirname "$0")/../.." && pwd)
exec sips train "${train[@]}" --valid "${valid[@]}" -o "$run/train" --export "$run/prior" \
  --model-channels 16 --channel-mult 1,1,2,4,8 --num-blocks 1 --attn-resolutions "" \
  --channels-per-head 64 --logvar-channels 32 --batch-size 8 --segment-seconds 1.0 --ema 0.999 \
  --threads "$threads" --precision bf16 --compile --init "$here/sips/default_prior" --augment voice --lr 1e-3 --warmup-steps 100 \
  --decay-steps 400 --steps 100000 --max-minutes "$minutes" --checkpoint-every 100 --valid-every 200 --seed 3
