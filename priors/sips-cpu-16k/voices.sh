# Sourced by campaign.sh and study.sh: the voices of issue 21's prior runs in a corpus.
#   campaign_voices CORPUS  sets the arrays
#     train   every file of festvox_ru, Asterisk, Fish Fillets and the Nexuiz narrator
#     studio  the same without the Asterisk G.722 prompts (the studio-grade voices)
#     valid   every file of the held-out validation voices (sips.corpus.VALID_VOICES)
# The test voices are never listed (tests/test_corpus.py checks it).
campaign_voices() {
  local corpus=$1 split d v
  train=() studio=() valid=()
  for split in train valid test; do
    for d in "$corpus"/clean/$split/festvox_ru_* "$corpus"/clean/$split/asterisk_* \
             "$corpus"/clean/$split/fillets_* "$corpus"/clean/$split/nexuiz_*; do
      train+=("$d")
      case $d in */asterisk_*) ;; *) studio+=("$d") ;; esac
    done
    for v in be ca fr da; do  # sips.corpus.VALID_VOICES
      if [ -d "$corpus/clean/$split/tuxpaint_$v" ]; then valid+=("$corpus/clean/$split/tuxpaint_$v"); fi
    done
  done
}
