#!/usr/bin/env bash
# One command for a GPU lease: trains four networks concurrently on one GPU, each for MINUTES of
# wall-clock time, and leaves one file per network in OUT (snapshots rewritten every minute, so a
# killed run still returns its latest EMA weights), plus train.log and summary.json.
#
#   priors/gpu/train_all.sh PACK OUT [MINUTES=6.5] [DEVICE=cuda]
#   REHEARSAL=1 priors/gpu/train_all.sh PACK OUT 0.1 cpu     # the same steps, tiny, on a CPU
#
# PACK is the data pack (priors/gpu/pack.py): the training voices (sips.corpus.TRAIN_SOURCES), the
# validation voices' valid/test files and the training noise; the test voices are not in it.
# Wheels in .whl/ at the repository root (priors/gpu/wheels.txt) are installed first if soundfile
# or asteroid is missing. The networks (README.md beside this file):
#   prior-cpu    the embedded prior's architecture (16 ch x [1,1,2,4,8], 2.96 M), from its v0.2 weights
#   prior-large  32 ch x [1,2,2,4,4], 2 blocks, attention at 16 (7.69 M), float16 snapshot
#   semamba      SEMamba at the published size (2.25 M)
#   convtasnet   Conv-TasNet, published architecture with H=384 (3.84 M)
# All: bf16 autocast, EMA, voice augmentation (speed/pitch, tilt, EQ) and random gains, batches
# prepared by worker processes. Same code path as `sips train` and the adapters' recipes.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -lt 2 ]; then
  echo "usage: priors/gpu/train_all.sh PACK OUT [MINUTES] [DEVICE]; PACK is a data pack (priors/gpu/pack.py)" >&2
  exit 2
fi
if [ ! -f "$1/PACK.json" ]; then
  echo "train_all.sh: $1 is no data pack (no PACK.json in it); build one with priors/gpu/pack.py" >&2
  exit 2
fi
if ! awk -v m="${3:-6.5}" 'BEGIN { exit !(m + 0 > 0 && m ~ /^[0-9.]+$/) }'; then
  echo "train_all.sh: MINUTES must be a positive number, got '${3}'" >&2
  exit 2
fi
case "${4:-cuda}" in cpu | cuda | cuda:[0-9]*) ;; *) echo "train_all.sh: DEVICE must be cpu or cuda[:N], got '$4'" >&2; exit 2 ;; esac
pack=$(cd "$1" && pwd) out=$2 minutes=${3:-6.5} device=${4:-cuda}
py=${PYTHON:-python3}
runs=${RUNS:-$(mktemp -d "${TMPDIR:-/tmp}/sips-gpu-runs.XXXXXX")}
mkdir -p "$out"
out=$(cd "$out" && pwd)

wheels=${WHEELS:-$root/.whl}
if [ -d "$wheels" ] && ! "$py" -c "import soundfile, asteroid" 2>/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$runs/site" \
    "$wheels"/*.whl || exit 2
  export PYTHONPATH=$runs/site
fi
export PYTHONPATH=$root:$root/adapters/semamba:$root/adapters/asteroid${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2

if [ "${REHEARSAL:-0}" = 1 ]; then  # every step of the real run, at a size a CPU does in about a minute
  precision=bf16 workers=1 valid_items=2 prior_batch=2 large_batch=2 se_batch=1 se_seconds=0.25
  tas_batch=1 tas_seconds=0.5 valid_seconds=0.5 valid_every=2 snap=0.05 steps=100000
else
  precision=bf16 workers=3 valid_items=64 prior_batch=128 large_batch=96 se_batch=16 se_seconds=2.0
  tas_batch=16 tas_seconds=2.0 valid_seconds=4.0 valid_every=250 snap=1 steps=1000000
fi

train=() valid=()
for split in train valid test; do
  for d in "$pack"/clean/$split/festvox_ru_* "$pack"/clean/$split/asterisk_*; do [ -d "$d" ] && train+=("$d"); done
  for v in be ca fr da; do  # sips.corpus.VALID_VOICES
    [ -d "$pack/clean/$split/tuxpaint_$v" ] && valid+=("$pack/clean/$split/tuxpaint_$v")
  done
done
common=(--device "$device" --precision "$precision" --workers "$workers" --max-minutes "$minutes"
        --snapshot-minutes "$snap" --steps "$steps" --valid-every "$valid_every" --valid-items "$valid_items"
        --checkpoint-every 500 --augment voice -q)
small_net=(--model-channels 16 --channel-mult 1,1,2,4,8 --num-blocks 1)  # attention: the lowest level only
large_net=(--model-channels 32 --channel-mult 1,2,2,4,4 --num-blocks 2 --attn-resolutions 16)
recipe=(--device "$device" --precision "$precision" --workers "$workers" --minutes "$minutes" --schedule time
        --snapshot-minutes "$snap" --steps "$steps" --valid-every "$valid_every" --valid-items "$valid_items"
        --valid-seconds "$valid_seconds" --split voices --augment voice --ema 0.999 -q)

declare -A cmd
cmd[prior-cpu]="$py -m sips.cli train ${train[*]} --valid ${valid[*]} -o $runs/prior-cpu ${small_net[*]}
  --init $root/sips/default_prior --batch-size $prior_batch --lr 4e-3 --warmup-steps 200 --decay-steps 2000
  --seed 2 --snapshot $out/prior-cpu.safetensors ${common[*]}"
cmd[prior-large]="$py -m sips.cli train ${train[*]} --valid ${valid[*]} -o $runs/prior-large ${large_net[*]}
  --batch-size $large_batch --lr 3e-3 --warmup-steps 300 --decay-steps 3000 --seed 3
  --snapshot $out/prior-large.safetensors --snapshot-dtype float16 ${common[*]}"
cmd[semamba]="$py $root/adapters/semamba/recipes/train.py $pack $runs/semamba --size published
  --batch $se_batch --seconds $se_seconds --lr 5e-4 --snapshot $out/semamba.safetensors ${recipe[*]}"
cmd[convtasnet]="$py $root/adapters/asteroid/recipes/train_convtasnet.py $pack $runs/convtasnet --size large
  --batch $tas_batch --seconds $tas_seconds --lr 1e-3 --snapshot $out/convtasnet.safetensors ${recipe[*]}"

names=(prior-cpu prior-large semamba convtasnet)
limit=$(awk "BEGIN { print int($minutes * 60 + ${SLACK:-150}) }")  # budget + loading and the last validation
start=$(date +%s)
declare -A pid
for name in "${names[@]}"; do
  # shellcheck disable=SC2086  # the command lines are word-split on purpose (no spaces in paths here)
  ( timeout -k 15 "$limit" ${cmd[$name]} 2>&1 | sed -u "s/^/[$name] /" >>"$out/train.log"; exit "${PIPESTATUS[0]}" ) &
  pid[$name]=$!
done
status=0
declare -A rc
for name in "${names[@]}"; do
  wait "${pid[$name]}"; rc[$name]=$?
  if [ "${rc[$name]}" -eq 124 ] || [ "${rc[$name]}" -eq 137 ]; then  # timeout's codes: killed at the limit
    echo "[$name] killed at the time limit ($limit s); its last snapshot, if any, is kept" >>"$out/train.log"
  fi
  [ "${rc[$name]}" -eq 0 ] || status=1
done
seconds=$(( $(date +%s) - start ))
codes=$(for n in "${names[@]}"; do printf '"%s": %s, ' "$n" "${rc[$n]}"; done)
"$py" - "$out" "$seconds" "{${codes%, }}" "$device" "$minutes" <<'EOF'
import json, sys
from pathlib import Path
from sips.pretrained.weights import read_snapshot
out, seconds, rc = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
report = {"seconds": seconds, "device": sys.argv[4], "minutes": float(sys.argv[5]), "jobs": {}}
for name, code in rc.items():
    path = out / f"{name}.safetensors"
    info = read_snapshot(path)[1] if path.is_file() else None
    report["jobs"][name] = {"exit": code, "snapshot": path.name if info else None, "info": info}
(out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps({n: (j["exit"], j["info"] and j["info"].get("step")) for n, j in report["jobs"].items()}))
EOF
exit $status
