"""SI-SDR against known values; permutation-invariant scoring; the shared strict state-dict check."""

import math

import pytest
import torch

from sips.errors import AdapterError
from sips.metrics import pit_si_sdr, si_sdr
from sips.weights import load_strict, state_dict_mismatch

from conftest import speech_like


def test_si_sdr_of_a_known_noise_level():
    ref = speech_like(0.5)
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))
    noise = noise - noise.mean()
    # Make the noise orthogonal to the reference: SI-SDR is then exactly the SNR.
    r0 = ref - ref.mean()
    noise = noise - (noise @ r0) / (r0 @ r0) * r0
    noise = noise * (r0.square().sum() / noise.square().sum() / 10 ** (7.0 / 10)).sqrt()
    assert float(si_sdr(ref + noise, ref)) == pytest.approx(7.0, abs=1e-3)


def test_si_sdr_ignores_scale_and_offset_and_is_high_for_identity():
    ref = speech_like(0.25)
    assert float(si_sdr(ref, ref)) > 80
    noisy = ref + 0.1 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    assert float(si_sdr(3.0 * noisy + 0.5, ref)) == pytest.approx(float(si_sdr(noisy, ref)), abs=1e-4)


def test_si_sdr_broadcasts_over_leading_axes():
    ref = torch.stack([speech_like(0.25, seed=k) for k in range(3)])
    assert si_sdr(ref[:, None], ref[None]).shape == (3, 3)


def test_pit_finds_swapped_sources():
    refs = torch.stack([speech_like(0.25, seed=1), speech_like(0.25, seed=2) * 0.5])[None]  # [1, 2, T]
    est = refs.flip(1) + 0.01 * torch.randn(refs.shape, generator=torch.Generator().manual_seed(3))
    score, perm = pit_si_sdr(est, refs)
    assert perm.tolist() == [[1, 0]]
    assert float(score) == pytest.approx(float(si_sdr(est.flip(1), refs).mean()), abs=1e-5)
    assert float(score) > float(si_sdr(est, refs).mean()) + 10


def test_pit_three_sources_and_bad_counts():
    refs = torch.stack([speech_like(0.1, seed=k) for k in range(3)])
    score, perm = pit_si_sdr(refs[[2, 0, 1]], refs)
    assert perm.tolist() == [1, 2, 0] and math.isfinite(float(score))
    with pytest.raises(ValueError, match="as many estimates"):
        pit_si_sdr(refs[:2], refs)


def test_strict_loading_names_what_does_not_fit():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = net.state_dict()
    assert state_dict_mismatch(net, state) is None
    bad = dict(state)
    bad.pop("0.bias")
    bad["1.weight"] = torch.zeros(5, 5)
    bad["extra"] = torch.zeros(1)
    assert state_dict_mismatch(net, bad) == (
        "1 missing (e.g. 0.bias); 1 unexpected (e.g. extra); 1 of another shape (e.g. 1.weight: [5, 5] vs [2, 4])"
    )
    with pytest.raises(AdapterError, match=r"^The weights in x.pt do not fit the toy: .* keys; try config=\.$"):
        load_strict(net, bad, "x.pt", error=AdapterError, what="the toy", hint="try config=")
    load_strict(net, dict(reversed(list(state.items()))), "ok", error=AdapterError)
