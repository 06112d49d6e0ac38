"""Plots: spectrogram panels and the NFE curve are drawn and written atomically."""

import pytest

from sips.evaluation.plot import nfe_curve, spectrograms

from conftest import noisy, speech_like


def test_spectrograms_side_by_side(tmp_path):
    clean = speech_like(0.5)
    fig = spectrograms({"mixture": noisy(clean, 0.0), "clean": clean}, path=tmp_path / "figs" / "s.png")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["mixture", "clean"]
    assert (tmp_path / "figs" / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "figs").glob("*.tmp*"))
    with pytest.raises(ValueError, match="at least one"):
        spectrograms({})


def test_nfe_curve(tmp_path):
    fig = nfe_curve({"euler": [(14, 9.0), (4, 8.0)], "heun": [(8, 9.1)]}, reference=9.0, path=tmp_path / "n.svg")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "network calls" and len(ax.lines) == 3
    assert (tmp_path / "n.svg").read_text().lstrip().startswith("<?xml")


def test_uncertainty_overlay(tmp_path):
    import numpy as np

    from sips.evaluation.plot import uncertainty

    x = speech_like(0.5).numpy()
    frames = 1 + len(x) // 128
    curve = np.linspace(0, 1, frames)
    fig = uncertainty(x, curve, error=curve[::-1], path=tmp_path / "u.png", title="K = 4")
    lines = [line for ax in fig.axes for line in ax.lines if len(line.get_xdata())]
    assert len(lines) == 2 and np.allclose(lines[0].get_ydata(), curve)
    assert lines[0].get_xdata()[-1] == (frames - 1) * 128 / 16000
    assert (tmp_path / "u.png").read_bytes()[:4] == b"\x89PNG"


def test_spectrogram_images_share_one_scale_and_cap_their_width():
    import io

    from matplotlib import image

    from sips.evaluation.plot import spectrogram_images

    loud = speech_like(2.0)
    quiet = 0.01 * loud
    pictures, top = spectrogram_images({"loud": loud, "quiet": quiet}, max_columns=100)
    shown = {name: image.imread(io.BytesIO(data), format="png") for name, data in pictures.items()}
    assert shown["loud"].shape[:2] == (257, 84)  # 251 frames kept as the maxima of groups of 3
    brightness = {name: float(rgba[..., :3].mean()) for name, rgba in shown.items()}
    assert brightness["loud"] > 2 * brightness["quiet"]  # 40 dB quieter: darker on the shared scale
    alone, top_alone = spectrogram_images({"quiet": quiet})
    assert top_alone == pytest.approx(top - 40, abs=0.01) and alone["quiet"] != pictures["quiet"]
    assert spectrogram_images({"x": loud}, format="jpeg")[0]["x"][:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match="at least one"):
        spectrogram_images({})
