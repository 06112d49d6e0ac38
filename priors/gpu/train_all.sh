#!/usr/bin/env bash
# One command for a GPU lease: trains four networks concurrently on one GPU and leaves one file per
# network in OUT (snapshots rewritten every minute, so a killed run still returns its latest EMA
# weights), plus train.log and summary.json.
#
#   priors/gpu/train_all.sh PACK OUT [MINUTES=5] [DEVICE=cuda]
#   REHEARSAL=1 priors/gpu/train_all.sh PACK OUT 0.1 cpu     # the same steps, tiny, on a CPU
#
# PACK is the data pack (priors/gpu/pack.py); its PACK.json names the training voices (every voice
# of sips.corpus.WIDE_SOURCES, festvox_ru and GPL audio: one licence for all four networks) and
# the validation voices (their valid/test files); the test voices are not in it.
# Wheels in .whl/ at the repository root (priors/gpu/wheels.txt) are installed first if soundfile
# or asteroid is missing. The networks (README.md beside this file), and their share of MINUTES:
#   prior-cpu    the embedded prior's architecture (16 ch x [1,1,2,4,8], 2.96 M), from scratch   1
#   prior-large  32 ch x [1,2,2,4,4], 2 blocks, attention at 16 (7.69 M), float16 snapshot       1
#   convtasnet   Conv-TasNet, published architecture with H=384 (3.84 M), two speakers           1
#   semamba      SEMamba at the published size (2.25 M); ends early, leaving the GPU to the rest  0.4
# All: bf16 autocast, EMA 0.999, 1 s prior crops, voice augmentation (speed/pitch, tilt, EQ) and
# random gains, batches prepared by worker processes. Same code path as `sips train` and the
# adapters' recipes.
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
if ! awk -v m="${3:-5}" 'BEGIN { exit !(m + 0 > 0 && m ~ /^[0-9.]+$/) }'; then
  echo "train_all.sh: MINUTES must be a positive number, got '${3}'" >&2
  exit 2
fi
case "${4:-cuda}" in cpu | cuda | cuda:[0-9]*) ;; *) echo "train_all.sh: DEVICE must be cpu or cuda[:N], got '$4'" >&2; exit 2 ;; esac
pack=$(cd "$1" && pwd) out=$2 minutes=${3:-5} device=${4:-cuda}
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
  precision=bf16 valid_items=2 prior_batch=2 large_batch=2 se_batch=1 se_seconds=0.25
  tas_batch=1 tas_seconds=0.5 valid_seconds=0.5 valid_every=2 snap=0.05 steps=100000
else
  precision=bf16 valid_items=64 prior_batch=128 large_batch=96 se_batch=16 se_seconds=2.0
  tas_batch=16 tas_seconds=2.0 valid_seconds=4.0 valid_every=250 snap=1 steps=1000000
fi

voices() {  # the pack's folders of one role in PACK.json ("train" or "valid"), one per line
  "$py" -c 'import json, pathlib, sys
pack = pathlib.Path(sys.argv[1]); names = json.loads((pack / "PACK.json").read_text()).get("voices", {}).get(sys.argv[2], ())
sys.stdout.write("".join(f"{d}\n" for d in sorted(pack.glob("clean/*/*")) if d.name in names))' "$pack" "$1"
}
mapfile -t train < <(voices train)
mapfile -t valid < <(voices valid)
if [ ${#train[@]} -eq 0 ] || [ ${#valid[@]} -eq 0 ]; then
  echo "train_all.sh: $pack names no training or validation voices; rebuild it with priors/gpu/pack.py" >&2
  exit 2
fi
declare -A share=([prior-cpu]=1 [prior-large]=1 [convtasnet]=1 [semamba]=0.4)
# batch workers (the GPU machine has 16 cores): a prior batch costs most to make (128 crops of 1 s:
# voice augmentation and STFT, about 0.7 s on one core here), a mixture batch far less
declare -A workers=([prior-cpu]=5 [prior-large]=4 [convtasnet]=2 [semamba]=2)
if [ "${REHEARSAL:-0}" = 1 ]; then workers=([prior-cpu]=1 [prior-large]=1 [convtasnet]=1 [semamba]=1); fi
declare -A budget
for name in "${!share[@]}"; do budget[$name]=$(awk "BEGIN { print $minutes * ${share[$name]} }"); done
# issue 21's CPU findings: EMA 0.999, 1 s crops, the learning rates as they were (no better at lower)
prior=(--device "$device" --precision "$precision" --snapshot-minutes "$snap"
       --steps "$steps" --valid-every "$valid_every" --valid-items "$valid_items" --checkpoint-every 500
       --segment-seconds 1.0 --ema 0.999 --augment voice -q)
small_net=(--model-channels 16 --channel-mult 1,1,2,4,8 --num-blocks 1)  # attention: the lowest level only
large_net=(--model-channels 32 --channel-mult 1,2,2,4,4 --num-blocks 2 --attn-resolutions 16)
recipe=(--device "$device" --precision "$precision" --schedule time
        --snapshot-minutes "$snap" --steps "$steps" --valid-every "$valid_every" --valid-items "$valid_items"
        --valid-seconds "$valid_seconds" --split voices --voice-set wide --augment voice --ema 0.999 -q)

declare -A cmd
cmd[prior-cpu]="$py -m sips.cli train ${train[*]} --valid ${valid[*]} -o $runs/prior-cpu ${small_net[*]}
  --batch-size $prior_batch --lr 4e-3 --warmup-steps 200 --decay-steps 2000 --seed 2
  --max-minutes ${budget[prior-cpu]} --workers ${workers[prior-cpu]} --snapshot $out/prior-cpu.safetensors ${prior[*]}"
cmd[prior-large]="$py -m sips.cli train ${train[*]} --valid ${valid[*]} -o $runs/prior-large ${large_net[*]}
  --batch-size $large_batch --lr 3e-3 --warmup-steps 300 --decay-steps 3000 --seed 3
  --max-minutes ${budget[prior-large]} --workers ${workers[prior-large]} --snapshot $out/prior-large.safetensors --snapshot-dtype float16 ${prior[*]}"
cmd[convtasnet]="$py $root/adapters/asteroid/recipes/train_convtasnet.py $pack $runs/convtasnet --size large
  --batch $tas_batch --seconds $tas_seconds --lr 1e-3 --minutes ${budget[convtasnet]} --workers ${workers[convtasnet]}
  --snapshot $out/convtasnet.safetensors ${recipe[*]}"
cmd[semamba]="$py $root/adapters/semamba/recipes/train.py $pack $runs/semamba --size published
  --batch $se_batch --seconds $se_seconds --lr 5e-4 --minutes ${budget[semamba]} --workers ${workers[semamba]}
  --snapshot $out/semamba.safetensors ${recipe[*]}"

names=(prior-cpu prior-large convtasnet semamba)
start=$(date +%s)
declare -A pid
for name in "${names[@]}"; do
  limit=$(awk "BEGIN { print int(${budget[$name]} * 60 + ${SLACK:-150}) }")  # + loading and the last validation
  # shellcheck disable=SC2086  # the command lines are word-split on purpose (no spaces in paths here)
  ( timeout -k 15 "$limit" ${cmd[$name]} 2>&1 | sed -u "s/^/[$name] /" >>"$out/train.log"
    code=${PIPESTATUS[0]}
    if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then  # timeout's codes: killed at the limit
      echo "[$name] killed at the time limit ($limit s); its last snapshot, if any, is kept" >>"$out/train.log"
    fi
    exit "$code" ) &
  pid[$name]=$!
done
status=0
declare -A rc
for name in "${names[@]}"; do
  wait "${pid[$name]}"; rc[$name]=$?
  [ "${rc[$name]}" -eq 0 ] || status=1
done
seconds=$(( $(date +%s) - start ))
codes=$(for n in "${names[@]}"; do printf '"%s": [%s, %s], ' "$n" "${rc[$n]}" "${budget[$n]}"; done)
"$py" - "$out" "$seconds" "{${codes%, }}" "$device" "$minutes" "$pack" <<'EOF'
import json, sys
from pathlib import Path
from sips.pretrained.weights import read_snapshot
out, seconds, rc = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
pack = json.loads((Path(sys.argv[6]) / "PACK.json").read_text())
report = {"seconds": seconds, "device": sys.argv[4], "minutes": float(sys.argv[5]), "jobs": {},
          "pack": {k: pack.get(k) for k in ("megabytes", "kbit_per_second", "voice_minutes", "voices")}}
for name, (code, minutes) in rc.items():
    path = out / f"{name}.safetensors"
    info = read_snapshot(path)[1] if path.is_file() else None
    report["jobs"][name] = {"exit": code, "minutes": minutes, "snapshot": path.name if info else None, "info": info}
(out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps({n: (j["exit"], j["info"] and j["info"].get("step")) for n, j in report["jobs"].items()}))
EOF
exit $status
