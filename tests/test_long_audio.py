"""A ten-minute file through the CLI in bounded memory (slow: about a minute and a half)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import noisy, speech_like

CHILD = """
import json, resource, sys
from sips.cli import main
code = main(["refine", sys.argv[1], "-o", sys.argv[2], "--steps", "2"])
print(json.dumps({"code": code, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.slow
def test_ten_minutes_at_16k_stay_under_2_gb(tmp_path):
    src = tmp_path / "long.wav"
    block = noisy(speech_like(30.0, seed=1), 5.0).numpy()
    block = 0.9 * block / np.abs(block).max()
    with sf.SoundFile(src, "w", 16000, 1, subtype="PCM_16") as f:
        for k in range(20):  # 10 minutes, the level drifting from block to block
            f.write(block * (0.5 + 0.02 * k))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["code"] == 0
    assert stats["peak_rss_mb"] < 2048, stats
    out, rate = sf.read(tmp_path / "out" / "long.wav", dtype="float32")
    assert rate == 16000 and len(out) == sf.info(src).frames
    assert np.isfinite(out).all() and np.abs(out[-16000:]).max() > 0.01  # the end was refined too
