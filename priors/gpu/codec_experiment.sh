#!/usr/bin/env bash
# The paired codec experiment of priors/gpu/README.md: the same network, seed and crops trained
# for 22 minutes on the original audio and on the audio decoded from the data pack (the same
# files: the pack's festvox_ru and Fish Fillets files of the train split), both validated on the
# original audio of the validation voices. Then `priors/gpu/codec_check.py CORPUS PACK RUNS`.
#   usage: priors/gpu/codec_experiment.sh CORPUS PACK RUNS     (2 processes, 1 thread each)
set -euo pipefail
corpus=$1 pack=$2 runs=$3
mapfile -t packed < <(cd "$pack" && find clean/train \( -path '*/festvox_ru_*' -o -path '*/fillets_*' \) -name '*.opus' | sort)
if [ ${#packed[@]} -eq 0 ]; then echo "codec_experiment.sh: no festvox_ru or fillets files in $pack/clean/train" >&2; exit 2; fi
valid=()
for s in valid test; do for v in be ca fr da; do valid+=("$corpus/clean/$s/tuxpaint_$v"); done; done
for run in original opus; do
  files=("${packed[@]/#/$pack/}")
  if [ "$run" = original ]; then files=("${packed[@]/#/$corpus/}"); files=("${files[@]/%.opus/.wav}"); fi
  sips train "${files[@]}" --valid "${valid[@]}" -o "$runs/$run" \
    --model-channels 8 --channel-mult 1,2,4,8 --num-blocks 1 --logvar-channels 32 --batch-size 8 --lr 2e-3 \
    --warmup-steps 100 --decay-steps 1000 --steps 100000 --max-minutes 22 --valid-every 100 --checkpoint-every 100 \
    --threads 1 --seed 0 -q &
done
wait
