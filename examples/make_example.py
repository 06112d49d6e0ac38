"""Rebuild the shipped example mixture from the development corpus (see examples/README.md).

Usage: python examples/make_example.py CORPUS_DIR
"""

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

SPEECH = "clean/test/asterisk_en_US_f_Allison/vm-forward.wav"
NOISE = "noise/test/megaglest/autumn_sunny_day.wav"
SNR_DB = 5.0
NOISE_OFFSET_S = 3.0


def main(corpus: Path) -> None:
    speech, rate = sf.read(corpus / SPEECH, dtype="float64")
    noise, noise_rate = sf.read(corpus / NOISE, dtype="float64")
    assert rate == noise_rate == 16000
    start = int(NOISE_OFFSET_S * rate)
    noise = noise[start : start + len(speech)]
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (SNR_DB / 10))
    noisy = speech + gain * noise
    peak = np.abs(noisy).max() / 0.8  # same gain on both files keeps them aligned as reference/input
    here = Path(__file__).parent
    sf.write(here / "noisy.wav", noisy / peak, rate, subtype="PCM_16")
    sf.write(here / "clean.wav", speech / peak, rate, subtype="PCM_16")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
