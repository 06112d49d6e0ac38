import pytest
import torch
from safetensors.torch import load_file

import sips
from sips.method.interpolant import corrupt, gamma, gamma_dot, interpolate


@pytest.fixture(scope="module")
def io(reference):
    return load_file(str(reference / "sips_sampler_io.safetensors"))


def _close(actual, expected):
    # rtol 1e-4 relative to the tensor's max |value| (reference README)
    tol = 1e-4 * expected.abs().max().item()
    torch.testing.assert_close(actual, expected, atol=tol, rtol=0)


@pytest.mark.parametrize(("key", "steps"), [("out_steps4_kappa0", 4), ("out_steps1_kappa0", 1)])
def test_ode_runs_match_reference(io, tiny_prior, key, steps):
    with torch.no_grad():
        out = sips.sample(tiny_prior, io["y"], io["v_hat"], steps=steps)
    _close(out, io[key])


def test_sde_run_with_injected_noise_matches_reference(io, tiny_prior):
    noise = io["noise_steps4_kappa0.5"]
    with torch.no_grad():
        out = sips.sample(tiny_prior, io["y"], io["v_hat"], steps=4, kappa=0.5, noise_sampler=lambda i, like: noise[i])
    _close(out, io["out_steps4_kappa0.5"])


def test_sde_run_with_seeded_generator_matches_reference(io, tiny_prior):
    g = torch.Generator().manual_seed(7)  # RandomGenerator('cpu', 7) of the reference
    with torch.no_grad():
        out = sips.sample(tiny_prior, io["y"], io["v_hat"], steps=4, kappa=0.5, generator=g)
    _close(out, io["out_steps4_kappa0.5"])


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_zero_denoiser_lands_on_the_estimate(method):
    y, v = torch.randn(2, 2, 8, 4), torch.randn(2, 2, 8, 4)
    out = sips.sample(lambda x, t: torch.zeros_like(x), y, v, steps=7, method=method)
    torch.testing.assert_close(out, y + v, atol=1e-5, rtol=1e-5)


def test_heun_differs_from_euler_and_counts_calls(io, tiny_prior):
    calls = []

    def denoiser(x, t):
        calls.append(float(t[0]))
        return tiny_prior(x, t)

    with torch.no_grad():
        heun = sips.sample(denoiser, io["y"], io["v_hat"], steps=4, method="heun")
    # gamma_dot(t) = 0 at t = 0 and t = 1: those evaluations are skipped.
    assert 0.0 not in calls and 1.0 not in calls and len(calls) == 2 * 4 - 2
    assert not torch.allclose(heun, io["out_steps4_kappa0"])


def test_first_ode_step_skips_the_network():
    calls = []
    sips.sample(lambda x, t: calls.append(1) or torch.zeros_like(x), torch.zeros(1, 3), torch.ones(1, 3), steps=5)
    assert len(calls) == 4


def test_callback_and_heun_rejects_kappa():
    seen = []
    sips.sample(lambda x, t: x, torch.zeros(1, 3), torch.ones(1, 3), steps=3, callback=seen.append)
    assert [d["i"] for d in seen] == [0, 1, 2] and seen[-1]["x"].shape == (1, 3)
    with pytest.raises(ValueError, match="heun"):
        sips.sample(lambda x, t: x, torch.zeros(1, 3), torch.ones(1, 3), steps=3, kappa=0.1, method="heun")
    with pytest.raises(ValueError, match="method"):
        sips.sample(lambda x, t: x, torch.zeros(1, 3), torch.ones(1, 3), steps=3, method="rk4")


def test_generator_makes_sde_reproducible():
    y, v = torch.zeros(1, 4), torch.ones(1, 4)

    def run(seed):
        return sips.sample(lambda x, t: x, y, v, steps=5, kappa=0.3, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_interpolant_end_points_and_derivative():
    y, x, z = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    torch.testing.assert_close(interpolate(y, x, torch.zeros(3), z), y)
    torch.testing.assert_close(interpolate(y, x, torch.ones(3), z), x, atol=1e-6, rtol=0)
    t, h = torch.tensor(0.3, dtype=torch.float64), 1e-6
    numeric = (gamma(t + h) - gamma(t - h)) / (2 * h)
    torch.testing.assert_close(numeric, gamma_dot(t), atol=1e-6, rtol=1e-6)
    s = torch.zeros(2, 4)
    torch.testing.assert_close(corrupt(s, torch.tensor([0.0, 0.5]), torch.ones(2, 4))[:, 0], torch.tensor([0.1, 0.6]))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"steps": True}, "steps must be a positive integer, got True"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"kappa": float("nan")}, "kappa must be a finite number >= 0"),
        ({"kappa": -0.5}, "kappa must be a finite number >= 0"),
        ({"kappa": "0.5"}, "kappa must be a finite number >= 0"),
        ({"method": "auto"}, "method must be one of 'euler', 'heun', not 'auto'"),
    ],
)
def test_sample_and_refine_share_one_settings_check(settings, message):
    from sips.errors import OptionError

    args = {"steps": 3, "kappa": 0.0, "method": "euler", **settings}
    with pytest.raises(OptionError, match=message):
        sips.sample(lambda x, t: x, torch.zeros(1, 3), torch.ones(1, 3), **args)
    if args["method"] == "auto":  # refine resolves 'auto' itself
        sips.sampler.check_settings(args["steps"], args["kappa"], "auto", allow_auto=True)
        return
    with pytest.raises(OptionError, match=message):
        sips.refine_estimates(torch.zeros(4000), torch.zeros(4000), sample_rate=16000, **args)
