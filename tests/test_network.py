import json

import pytest
import torch
from safetensors.torch import load_file

import sips
from sips.method.nets.edm2 import MPConv


def test_prior_output_matches_reference(reference, tiny_prior):
    io = load_file(str(reference / "sips_prior_io.safetensors"))
    with torch.no_grad():
        out, logvar = tiny_prior(io["x"], io["t"], return_logvar=True)
    torch.testing.assert_close(out, io["out"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logvar, io["logvar"], atol=1e-5, rtol=1e-5)
    assert torch.equal(tiny_prior(io["x"], io["t"]), out)  # return_logvar=False gives z_hat alone


def test_tiny_state_dict_keys_and_counts(reference, tiny_prior, tiny_reference_kwargs):
    ref = load_file(str(reference / "sips_prior_state_dict.safetensors"))
    ours = tiny_prior.state_dict()
    assert set(ours) == set(ref)
    assert all(ours[k].shape == ref[k].shape for k in ref)
    meta = json.loads((reference / "sips_prior_config.json").read_text())
    assert tiny_prior.num_parameters == meta["num_parameters"]
    assert sum(v.numel() for v in ours.values()) == meta["num_state_dict_elements"]
    heads = {name: m.num_heads for name, m in tiny_prior.unet.named_modules() if getattr(m, "num_heads", 0)}
    assert heads == meta["attention_blocks"]


def test_full_published_config_key_list(reference):
    full = json.loads((reference / "sips_prior_full_keys.json").read_text())
    with torch.device("meta"):
        prior = sips.ScorePrior(sips.PriorConfig.from_dict(full["model_kwargs"]))
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in prior.state_dict().items()]
    assert ours == [[k, list(shape), dtype] for k, shape, dtype in full["keys"]]
    assert prior.num_parameters == full["num_parameters"] == 62_461_746
    heads = {name: m.num_heads for name, m in prior.unet.named_modules() if getattr(m, "num_heads", 0)}
    assert heads == full["effective"]["attention_blocks_num_heads"]


def test_default_config_is_the_published_network():
    assert sips.PriorConfig().channel_mult == (1, 1, 2, 2, 2, 2, 2)
    assert sips.PriorConfig().frame_multiple == 128


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(model_channels=12, channel_mult=(1, 3, 5), num_blocks=2, attn_resolutions=(256, 64), channels_per_head=6),
        dict(model_channels=8, channel_mult=(2, 1), num_blocks=0, attn_resolutions=(), logvar_channels=0),
    ],
)
def test_any_configuration_runs(kwargs):
    torch.manual_seed(0)
    prior = sips.ScorePrior(**kwargs)
    for p in prior.parameters():
        if p.dim() == 0:
            p.data.fill_(0.5)  # non-zero gains so that the output is not trivially zero
    x = torch.randn(2, 2, 256, 2 ** len(prior.config.channel_mult))
    out, logvar = prior(x, torch.tensor([0.2, 0.9]), return_logvar=True)
    assert out.shape == x.shape and torch.isfinite(out).all() and out.abs().sum() > 0
    assert (logvar is None) == (prior.config.logvar_channels == 0)


def test_mpconv_output_ignores_weight_scale():
    conv = MPConv(4, 3, kernel=[3, 3])
    x = torch.randn(1, 4, 8, 8)
    before = conv(x)
    conv.weight.data *= 7.0
    torch.testing.assert_close(conv(x), before, atol=1e-3, rtol=1e-3)  # up to the 1e-4 eps


def test_eval_forward_never_changes_loaded_weights(tiny_prior):
    before = {k: v.clone() for k, v in tiny_prior.state_dict().items()}
    tiny_prior(torch.randn(1, 2, 256, 8), torch.tensor([0.5]))
    assert all(torch.equal(before[k], v) for k, v in tiny_prior.state_dict().items())


def test_forced_weight_normalisation_gives_unit_rms_filters():
    prior = sips.ScorePrior(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=())
    prior.normalize_weights_()
    w = prior.unet.out_conv.weight
    rms = w.flatten(1).pow(2).mean(1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=0)
