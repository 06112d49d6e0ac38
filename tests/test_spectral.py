import pytest
import torch
from safetensors.torch import load_file

from sips.errors import AudioError
from sips.method import spectral


@pytest.fixture(scope="module")
def io(reference):
    return load_file(str(reference / "sips_encoder_io.safetensors"))


def test_window_matches_reference(io):
    torch.testing.assert_close(spectral.window(), io["window"], atol=0, rtol=0)


def test_encode_matches_reference(io):
    torch.testing.assert_close(spectral.encode(io["waveform"]), io["encoded"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(spectral.encode(io["waveform_long"]), io["encoded_long"], atol=1e-5, rtol=1e-5)


def test_decode_matches_reference(io):
    decoded = spectral.decode(io["encoded"])
    assert decoded.shape == io["decoded"].shape
    torch.testing.assert_close(decoded, io["decoded"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("key", "multiple", "source"), [("encoded_padded_tiny", 8, "encoded"), ("encoded_padded_full", 128, "encoded_long")]
)
def test_padding_matches_reference(io, key, multiple, source):
    padded, frames = spectral.pad_frames(io[source], multiple)
    assert frames == io[source].shape[-1]
    torch.testing.assert_close(padded, io[key], atol=0, rtol=0)
    torch.testing.assert_close(spectral.crop_frames(padded, frames), io[source], atol=0, rtol=0)


def test_decode_of_padded_full_matches_reference(io):
    torch.testing.assert_close(
        spectral.decode(io["encoded_padded_full"]), io["decoded_padded_full"], atol=1e-5, rtol=1e-5
    )


def test_original_lengths_match_reference(io):
    assert spectral.num_frames(io["waveform"].shape[-1]) == int(io["og_spec_length"])
    assert spectral.num_frames(io["waveform_long"].shape[-1]) == int(io["og_spec_length_long"])


def test_round_trip_restores_waveform_with_length():
    # Only the DC bin is dropped: a signal without energy near 0 Hz comes back unchanged.
    t = torch.arange(5000) / 16000
    freqs = torch.tensor([[330.0, 1234.0, 3500.0], [500.0, 2000.0, 7000.0]])
    wav = (0.1 * torch.sin(2 * torch.pi * freqs[:, :, None] * t)).sum(1)
    out = spectral.decode(spectral.encode(wav), length=5000)
    assert out.shape == wav.shape
    inner = slice(512, -512)  # the reflect-padded edges leak into the dropped DC bin
    torch.testing.assert_close(out[:, inner], wav[:, inner], atol=1e-4, rtol=0)


def test_padding_shorter_than_pad_does_not_fail():
    # The published pad_spec raises when pad >= frames; we mirror repeatedly instead.
    spec = torch.randn(1, 2, 256, 5)
    padded, frames = spectral.pad_frames(spec, 128)
    assert padded.shape[-1] == 128 and frames == 5
    torch.testing.assert_close(padded[..., :5], spec)


def test_too_short_audio_is_a_clear_error():
    with pytest.raises(AudioError, match="too short"):
        spectral.encode(torch.zeros(1, 100))


def test_decode_rejects_bad_shape():
    with pytest.raises(AudioError, match=r"\[B, 2, 256, T\]"):
        spectral.decode(torch.zeros(1, 2, 257, 4))
