"""Ensemble refinement: K seeded stochastic trajectories, combined, with their disagreement."""

import pytest
import torch

import sips
from sips.errors import OptionError

from conftest import noisy, speech_like


@pytest.fixture(scope="module")
def mixture():
    return noisy(speech_like(1.0, seed=2), 5.0)


def _refine(prior, x, **kw):
    return sips.refine(sips.load_predictor("wiener"), x, prior=prior, steps=4, **kw)


def test_ensemble_of_one_is_the_single_stochastic_run(small_prior, mixture):
    single = _refine(small_prior, mixture, kappa=0.5, seed=3)
    one, spread = _refine(small_prior, mixture, kappa=0.5, seed=3, ensemble=1, return_uncertainty=True)
    assert torch.equal(single, one)
    assert spread.shape == (1, 1 + len(mixture) // 128) and float(spread.abs().max()) == 0


def test_identical_members_disagree_nowhere(small_prior, mixture):
    deterministic = _refine(small_prior, mixture)
    out, spread = _refine(small_prior, mixture, ensemble=3, ensemble_reduce="median", return_uncertainty=True)
    assert torch.equal(out, deterministic) and float(spread.abs().max()) == 0


def test_members_differ_and_combine(small_prior, mixture):
    kw = dict(kappa=0.5, seed=3, return_uncertainty=True)
    mean, spread = _refine(small_prior, mixture, ensemble=4, **kw)
    median, _ = _refine(small_prior, mixture, ensemble=4, ensemble_reduce="median", **kw)
    assert float(spread.min()) > 0 and not torch.equal(mean, median)
    members = [_refine(small_prior, mixture, kappa=0.5, seed=3, ensemble=k)[0] for k in (1, 4)]
    assert not torch.equal(members[0], members[1])
    again, spread_again = _refine(small_prior, mixture, ensemble=4, **kw)
    assert torch.equal(again, mean) and torch.equal(spread_again, spread)


def test_windows_batching_and_separation_keep_the_ensemble_exact(small_prior):
    x = torch.stack([noisy(speech_like(1.2, seed=k), 5.0) for k in range(2)])
    kw = dict(kappa=0.4, seed=1, ensemble=3, return_uncertainty=True, chunk_seconds=0.5, overlap_seconds=0.1)
    a, sa = _refine(small_prior, x, chunk_batch=1, **kw)
    b, sb = _refine(small_prior, x, chunk_batch=3, **kw)
    assert torch.equal(a, b) and torch.equal(sa, sb) and sa.shape == (2, 1, 1 + x.shape[-1] // 128)
    two = sips.refine_estimates(torch.stack([x[0], 0.5 * x[0]]), x[0], prior=small_prior, steps=3, **kw)
    assert two[0].shape == (2, x.shape[-1]) and two[1].shape == (2, 1 + x.shape[-1] // 128)


def test_bad_ensemble_settings(small_prior, mixture):
    with pytest.raises(OptionError):
        _refine(small_prior, mixture, ensemble=0)
    with pytest.raises(OptionError):
        _refine(small_prior, mixture, ensemble=2, ensemble_reduce="mode")


def test_cli_ensemble_needs_kappa(tmp_path, capsys):
    from sips.cli import main

    from conftest import write_wav

    write_wav(tmp_path / "x.wav", noisy(speech_like(0.5), 5.0).numpy())
    assert main(["refine", str(tmp_path / "x.wav"), "-o", str(tmp_path / "out"), "--ensemble", "3"]) == 2
    assert "--kappa" in capsys.readouterr().err and not (tmp_path / "out").exists()
