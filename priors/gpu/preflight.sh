#!/usr/bin/env bash
# Before spending a GPU lease: is everything the command needs here, and does it fit the lease?
#   priors/gpu/preflight.sh        (from the repository root; exit 2 names what is missing)
# Checks: the data pack (pack/PACK.json, <= pack.py's LIMIT_MB), the wheels (.whl/, cp312 cffi), and the size
# of what travels (tracked and untracked-not-ignored files + pack/ + .whl/) against the 64 MiB limit.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "preflight: $1" >&2; exit 2; }
[ -f pack/PACK.json ] || fail "no data pack: make gpu-pack CORPUS=/path/to/corpus"
ls .whl/cffi-*-cp312-*.whl >/dev/null 2>&1 || fail "no CPython 3.12 wheels in .whl/: make gpu-wheels"
bytes() { awk '{s+=$1} END {print s+0}'; }
tracked=$(git ls-files -z | xargs -0 stat -c %s | bytes)
untracked=$(git ls-files -z -o --exclude-standard | xargs -0 -r stat -c %s | bytes)
pack=$(find pack -type f -printf '%s\n' | bytes)
wheels=$(find .whl -type f -printf '%s\n' | bytes)
total=$((tracked + untracked + pack + wheels))
awk -v t="$total" -v r="$((tracked + untracked))" -v p="$pack" -v w="$wheels" 'BEGIN {
  m = 1048576; printf "travels: %.1f MiB (repository %.1f, pack %.1f, wheels %.1f) of 64 MiB\n", t/m, r/m, p/m, w/m }'
limit=$(sed -n 's/^LIMIT_MB = \([0-9.]*\)$/\1/p' priors/gpu/pack.py)
awk -v p="$pack" -v l="$limit" 'BEGIN { exit !(p <= l * 1e6) }' || fail "the pack is over $limit MB"
grep -q '"voices"' pack/PACK.json || fail "pack/ is of an earlier layout (no voices in PACK.json): make gpu-pack again"
[ "$total" -le $((64 * 1048576)) ] || fail "what travels is over 64 MiB"
echo "preflight: ready (run the rehearsal too: make gpu-rehearsal)"
