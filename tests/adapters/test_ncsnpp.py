"""The NCSN++ adapter (``sips-ncsnpp``): golden outputs, published layout, checkpoints, predictor, CLI.

Tolerances (spec §10): spectral tensors within 1e-6 of the reference's max |value|, network
tensors and waveforms within 1e-4 of it. On the CPU with one thread the implementation is in fact
bit-exact, which ``test_golden_bit_exact_on_cpu`` holds it to.
"""

import contextlib
import json
import os
import sys
import types

import pytest
import soundfile as sf
import torch

import sips
from sips.cli import main
from sips.errors import AdapterError, AudioError, OptionError

from conftest import REFERENCE, noisy, speech_like, write_wav

sips_ncsnpp = __import__("sips_ncsnpp")
from sips_ncsnpp import NCSNppNetwork, NCSNppPredictor  # noqa: E402
from sips_ncsnpp import net as ncsnpp_net  # noqa: E402
from sips_ncsnpp import stft as ncsnpp_stft  # noqa: E402

PADDED_TAIL_B = 4866  # 128 * 40 - 254: the first sample of enhanced_b that padded frames reach


@pytest.fixture(scope="module")
def golden():
    """The tiny reference model: its config (``ncsnpp_config.json``), weights and stored tensors."""
    from safetensors.torch import load_file

    return {
        "config": json.loads((REFERENCE / "ncsnpp_config.json").read_text()),
        **{part: load_file(str(REFERENCE / f"ncsnpp_{part}.safetensors")) for part in ("state_dict", "io")},
    }


tiny_config = pytest.fixture(scope="module")(lambda golden: golden["config"])
tiny_kwargs = pytest.fixture(scope="module")(lambda golden: golden["config"]["constructor_kwargs"])
golden_state = pytest.fixture(scope="module")(lambda golden: golden["state_dict"])
golden_io = pytest.fixture(scope="module")(lambda golden: golden["io"])


@pytest.fixture(scope="module")
def golden_net(tiny_kwargs, golden_state):
    net = NCSNppNetwork(tiny_kwargs)
    net.load_state_dict(golden_state, strict=True)
    return net.eval()


def _close(actual, expected, rel):
    """Within ``rel`` times the reference's max |value|; returns the max abs difference."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    tol = rel * expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    assert diff <= tol, f"max |diff| {diff:.3g} > {tol:.3g}"
    return diff


def _complex(stored):
    return torch.view_as_complex(stored.contiguous())


def _run(net, io):
    """Every stored tensor recomputed: spectral front end, network (with intermediates), decoding."""
    got, acts = {}, {}
    mid = net.dnn.all_modules[11].register_forward_hook(lambda m, i, o: acts.__setitem__("mid", o))
    pyr = net.dnn.output_layer.register_forward_pre_hook(lambda m, i: acts.__setitem__("pyramid", i[0]))
    try:
        with torch.inference_mode():
            got["window"] = ncsnpp_stft.window()
            for item in "ab":
                wav = io[f"wav_{item}"]
                got[f"norm_factor_{item}"] = wav.abs().amax(-1)
                spec = ncsnpp_stft.stft(wav / wav.abs().max())
                if item == "a":
                    got["stft_a"] = torch.view_as_real(spec)
                got[f"Y_{item}"] = torch.view_as_real(ncsnpp_stft.pad_frames(ncsnpp_stft.compress(spec).unsqueeze(1)))
                got[f"X_hat_{item}"] = torch.view_as_real(net(_complex(io[f"Y_{item}"])))
                if item == "a":
                    got["dbg_mid_a"], got["dbg_pyramid_a"] = acts["mid"], acts["pyramid"]
                decoded = ncsnpp_stft.istft(ncsnpp_stft.decompress(_complex(io[f"X_hat_{item}"])[:, 0]), wav.shape[-1])
                got[f"decoded_{item}"] = decoded * wav.abs().max()
                got[f"enhanced_{item}"] = ncsnpp_stft.enhance(net, wav, crop_padded_frames=False)
            got["raw_out"] = torch.view_as_real(net(_complex(io["raw_in"])))
    finally:
        mid.remove()
        pyr.remove()
    return got


# -- golden reference (tiny config, perturbed weights) ------------------------------------------
def test_golden_spectral_front_end(golden_net, golden_io):
    got = _run(golden_net, golden_io)
    for name in ("window", "norm_factor_a", "norm_factor_b", "stft_a", "Y_a", "Y_b"):
        _close(got[name], golden_io[name], 1e-6)
    assert torch.equal(golden_io["Y_b"][..., 40:, :], torch.zeros_like(golden_io["Y_b"][..., 40:, :]))


def test_golden_network_and_decoding(golden_net, golden_io):
    got = _run(golden_net, golden_io)
    for name in ("dbg_mid_a", "dbg_pyramid_a", "X_hat_a", "X_hat_b", "raw_out", "enhanced_a", "enhanced_b"):
        _close(got[name], golden_io[name], 1e-4)
    for item in "ab":  # the inverse alone, from the stored network output
        _close(got[f"decoded_{item}"], golden_io[f"enhanced_{item}"], 1e-4)


def test_golden_bit_exact_on_cpu(golden_net, golden_io):
    got = _run(golden_net, golden_io)
    for name in golden_io:
        if name in got:
            assert torch.equal(got[name], golden_io[name]), name
    assert torch.equal(got["decoded_a"], golden_io["enhanced_a"])
    assert torch.equal(got["decoded_b"], golden_io["enhanced_b"])


def test_golden_through_load_predictor(golden_io, tiny_kwargs, lightning_ckpt):
    pred = sips.load_predictor("ncsnpp", checkpoint=str(lightning_ckpt()), config=tiny_kwargs, crop_padded_frames=False)
    for item in "ab":
        out = pred(golden_io[f"wav_{item}"])
        assert out.shape == (1, 1, golden_io[f"wav_{item}"].shape[-1]) and out.dtype == torch.float32
        assert torch.equal(out[:, 0], golden_io[f"enhanced_{item}"]), item


def test_padded_frames_are_cropped_by_default(golden_io, golden_net):
    pred = NCSNppPredictor(golden_net)
    assert pred.crop_padded_frames
    # 8064 samples are 64 frames: nothing is padded, both settings give the published output.
    assert torch.equal(pred(golden_io["wav_a"])[:, 0], golden_io["enhanced_a"])
    # 5000 samples are 40 frames, padded to 64: only the samples the padded frames reach change.
    out = pred(golden_io["wav_b"])[0, 0]
    ref = golden_io["enhanced_b"][0]
    assert torch.equal(out[:PADDED_TAIL_B], ref[:PADDED_TAIL_B])
    assert (out[PADDED_TAIL_B:] - ref[PADDED_TAIL_B:]).abs().max() > 1e-3 * ref.abs().max()
    # The cropped tail is what the real frames alone give: the inverse of the cropped estimate.
    with torch.inference_mode():
        wav = golden_io["wav_b"]
        est = golden_net(_complex(golden_io["Y_b"]))[:, 0, :, :40]
        alone = ncsnpp_stft.istft(ncsnpp_stft.decompress(est), wav.shape[-1]) * wav.abs().max()
    assert torch.equal(out, alone[0])


def test_attention_in_slices_is_exact(golden_net, golden_io, monkeypatch):
    y = _complex(golden_io["Y_a"])
    with torch.inference_mode():
        whole = golden_net(y)
        monkeypatch.setattr(ncsnpp_net, "ATTENTION_BYTES", 4 * 1024 * 300)  # 256 query rows: 4 slices
        sliced = golden_net(y)
    assert torch.equal(sliced, whole)


def test_unused_parameters_do_not_change_the_output(golden_net, golden_io, tiny_config):
    y = _complex(golden_io["raw_in"])
    net = NCSNppNetwork(golden_net.config)
    net.load_state_dict(golden_net.state_dict())
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name in tiny_config["unused_in_forward"]:
                param.add_(1.0)
        assert torch.equal(net.eval()(y), golden_net(y))


# -- published configuration -------------------------------------------------------------------
def test_published_state_dict_layout():
    ref = json.loads((REFERENCE / "ncsnpp_full_keys.json").read_text())
    with torch.device("meta"):
        net = NCSNppNetwork()  # the published size
    mine = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]
    assert mine == ref["keys"]  # names, shapes, dtypes and order (the EMA list is positional)
    assert [n for n, _ in net.named_parameters()] == [k for k, _, _ in ref["keys"]]
    assert sum(p.numel() for p in net.parameters()) == ref["num_parameters"] == 27_342_350
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == ref["num_parameters_requires_grad"]
    assert sips_ncsnpp.parameter_count() == 27_342_350
    assert net.config == ref["constructor_kwargs"] == sips_ncsnpp.PUBLISHED_CONFIG
    assert isinstance(net.dnn.all_modules[13], ncsnpp_net.Attention) and net.dnn.frame_multiple == 8


def test_tiny_layout_matches_the_fixture(tiny_config, tiny_kwargs):
    net = NCSNppNetwork(tiny_kwargs)
    assert list(net.state_dict()) == tiny_config["state_dict_key_order"]
    assert sum(p.numel() for p in net.parameters()) == tiny_config["num_parameters"] == 77_708
    groups = {
        i: [m.GroupNorm_0.num_groups, m.GroupNorm_1.num_groups]
        for i, m in enumerate(net.dnn.all_modules)
        if isinstance(m, ncsnpp_net.ResBlock)
    }
    for entry in tiny_config["derived"]["modules"]:
        if entry["type"] == "ResnetBlockBigGANpp":
            assert groups[entry["index"]] == entry["groupnorm_groups"], entry


# -- checkpoints -------------------------------------------------------------------------------
def _lightning(state, order, shadow=None, data_module=None):
    """A checkpoint in the published Lightning layout: state_dict + ema (shadow list in key order)."""
    shadow = state if shadow is None else shadow
    ckpt = {
        "epoch": 96,
        "global_step": 1000,
        "pytorch-lightning_version": "1.9.5",
        "state_dict": {k: state[k] for k in order},
        "ema": {
            "decay": 0.999,
            "num_updates": 1000,
            "shadow_params": [shadow[k] for k in order],  # torch.save stores a shared tensor once
            "collected_params": None,
        },
    }
    if data_module is not None:
        ckpt["hyper_parameters"] = {"data_module_cls": data_module, "lr": 1e-4}
    return ckpt


@contextlib.contextmanager
def _sgmse_data_module():
    """Lets ``torch.save`` pickle a class named ``sgmse.data_module.SpecsDataModule``, as StoRM's
    checkpoints do; the module is gone again afterwards (sgmse is not installed when loading)."""
    module = types.ModuleType("sgmse.data_module")
    module.SpecsDataModule = type("SpecsDataModule", (), {"__module__": "sgmse.data_module"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "sgmse", types.ModuleType("sgmse"))
        patch.setitem(sys.modules, "sgmse.data_module", module)
        yield module.SpecsDataModule


def _save_lightning(path, state, order, **kwargs):
    with _sgmse_data_module() as data_module:
        torch.save(_lightning(state, order, data_module=data_module, **kwargs), path)
    return path


@pytest.fixture
def lightning_ckpt(tmp_path, golden_state, tiny_config):
    """Writes a Lightning checkpoint of the golden weights (hyper-parameters naming the data module)."""

    def write(name="NCSNpp_tiny.ckpt", **kwargs):
        return _save_lightning(tmp_path / name, golden_state, tiny_config["state_dict_key_order"], **kwargs)

    return write


def test_lightning_checkpoint_loads_with_the_allow_listed_data_module(lightning_ckpt):
    path = lightning_ckpt()
    assert "sgmse.data_module" not in sys.modules
    ckpt = sips_ncsnpp.load_torch_checkpoint(path)
    assert ckpt["hyper_parameters"]["data_module_cls"] is sips_ncsnpp.SpecsDataModule
    assert [name for _, name in sips_ncsnpp.ALLOWED_GLOBALS] == ["sgmse.data_module.SpecsDataModule"]


def test_ema_weights_are_the_inference_weights(tmp_path, golden_state, tiny_config, tiny_kwargs, golden_io):
    order = tiny_config["state_dict_key_order"]
    other = {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(3)) for k, v in golden_state.items()}
    # Training weights elsewhere, EMA weights = the golden ones: the golden output comes out.
    torch.save(_lightning(other, order, shadow=golden_state), tmp_path / "ema.ckpt")
    pred = NCSNppPredictor.from_checkpoint(tmp_path / "ema.ckpt", config=tiny_kwargs, crop_padded_frames=False)
    assert torch.equal(pred(golden_io["wav_b"])[:, 0], golden_io["enhanced_b"])
    loaded = pred.model.state_dict()
    assert all(torch.equal(loaded[k], golden_state[k]) for k in order)
    # Without an 'ema' entry the state dict is used.
    torch.save({"state_dict": other}, tmp_path / "plain.ckpt")
    plain = NCSNppPredictor.from_checkpoint(tmp_path / "plain.ckpt", config=tiny_kwargs).model.state_dict()
    assert all(torch.equal(plain[k], other[k]) for k in order)


def test_bare_state_dict_and_safetensors(tmp_path, golden_state, tiny_kwargs, golden_io):
    from safetensors.torch import save_file

    torch.save(dict(golden_state), tmp_path / "sd.pt")
    save_file(dict(golden_state), str(tmp_path / "sd.safetensors"))
    for name in ("sd.pt", "sd.safetensors"):
        pred = sips.load_predictor("ncsnpp", checkpoint=str(tmp_path / name), config=tiny_kwargs)
        assert torch.equal(pred(golden_io["wav_a"])[:, 0], golden_io["enhanced_a"]), name


def test_code_executing_pickle_is_refused(tmp_path, tiny_kwargs):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, path)
    with pytest.raises(AdapterError, match=r"Python objects besides tensors \(posix\.system\)") as err:
        sips.load_predictor("ncsnpp", checkpoint=str(path), config=tiny_kwargs)
    assert "\n" not in str(err.value) and str(err.value).replace("e.g. ", "").count(". ") == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda sd: sd.pop("dnn.all_modules.5.Conv_2.bias"), r"dnn\.all_modules\.5\.Conv_2\.bias is missing$"),
        (
            lambda sd: sd.update({"dnn.extra": torch.zeros(1)}),
            r"dnn\.extra is not a key of the network; for another size",
        ),
        (
            lambda sd: sd.update({"dnn.all_modules.1.weight": torch.zeros(8, 2, 1, 1)}),
            r"dnn\.all_modules\.1\.weight has shape \[8, 2, 1, 1\] instead of \[8, 2, 3, 3\]",
        ),
    ],
)
def test_state_dict_mismatch_names_the_first_difference(edit, match, tmp_path, golden_state, tiny_kwargs):
    sd = dict(golden_state)
    edit(sd)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(AdapterError, match=match.removesuffix("$")) as err:
        sips.load_predictor("ncsnpp", checkpoint=str(tmp_path / "bad.pt"), config=tiny_kwargs)
    assert "\n" not in str(err.value)


def test_published_size_refuses_tiny_weights_in_one_sentence(lightning_ckpt):
    with pytest.raises(AdapterError) as err:
        sips.load_predictor("ncsnpp", checkpoint=str(lightning_ckpt()))
    message = str(err.value)
    assert "(nf=128, ch_mult=[1, 2, 2, 2])" in message
    assert "dnn.all_modules.0.W has shape [8] instead of [128] (1 of " in message
    assert message.endswith("config=.") and "\n" not in message


def test_bad_ema_entries(tmp_path, golden_state, tiny_config, tiny_kwargs):
    order = tiny_config["state_dict_key_order"]
    ckpt = _lightning(golden_state, order)
    ckpt["ema"]["shadow_params"] = ckpt["ema"]["shadow_params"][:-1]
    torch.save(ckpt, tmp_path / "short.ckpt")
    with pytest.raises(AdapterError, match="hold 202 tensors, but the NCSN\\+\\+ network has 203 parameters"):
        NCSNppPredictor.from_checkpoint(tmp_path / "short.ckpt", config=tiny_kwargs)
    ckpt = _lightning(golden_state, order)
    ckpt["ema"]["shadow_params"][3] = torch.zeros(2)
    torch.save(ckpt, tmp_path / "shape.ckpt")
    with pytest.raises(AdapterError, match=r"EMA tensor 3 .*\(dnn\.all_modules\.1\.weight\) is \[2\]"):
        NCSNppPredictor.from_checkpoint(tmp_path / "shape.ckpt", config=tiny_kwargs)
    ckpt["ema"] = {"decay": 0.999}
    torch.save(ckpt, tmp_path / "noshadow.ckpt")
    with pytest.raises(AdapterError, match="no list of shadow_params"):
        NCSNppPredictor.from_checkpoint(tmp_path / "noshadow.ckpt", config=tiny_kwargs)


def test_missing_or_damaged_files(tmp_path, tiny_kwargs):
    with pytest.raises(AdapterError, match="does not exist"):
        sips.load_predictor("ncsnpp", checkpoint=str(tmp_path / "none.ckpt"))
    with pytest.raises(AdapterError, match="is a folder"):
        sips.load_predictor("ncsnpp", checkpoint=str(tmp_path))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(AdapterError, match="cannot be read as a torch checkpoint"):
        sips.load_predictor("ncsnpp", checkpoint=str(tmp_path / "junk.ckpt"), config=tiny_kwargs)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(AdapterError, match="holds no NCSN\\+\\+ state dict"):
        sips.load_predictor("ncsnpp", checkpoint=str(tmp_path / "list.pt"), config=tiny_kwargs)
    with pytest.raises(AdapterError, match="checkpoint="):
        sips.load_predictor("ncsnpp")
    with pytest.raises(AdapterError, match="n_src=2 cannot be"):
        sips.load_predictor("ncsnpp", checkpoint="x.ckpt", n_src=2)


# -- configuration -----------------------------------------------------------------------------
def test_config_as_file_dict_or_reference_json(tmp_path, tiny_kwargs, golden_state):
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_kwargs))
    for config in (tiny_kwargs, tmp_path / "c.yaml", str(REFERENCE / "ncsnpp_config.json")):
        net = NCSNppNetwork(config)
        assert net.state_dict().keys() == golden_state.keys()
    assert NCSNppNetwork({"nf": 8}).config["ch_mult"] == [1, 2, 2, 2]  # missing keys: the published values
    rng = torch.get_rng_state()
    first, again, other = (NCSNppPredictor.from_config(tiny_kwargs, seed=s).model.state_dict() for s in (5, 5, 6))
    assert torch.equal(torch.get_rng_state(), rng)  # seeded without touching the global generator
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["dnn.all_modules.1.weight"], other["dnn.all_modules.1.weight"])


@pytest.mark.parametrize(
    "config, match",
    [
        ({"nff": 8}, "Unknown NCSN\\+\\+ config key 'nff'"),
        ({"nf": 2}, "at least 4"),
        ({"ch_mult": []}, "ch_mult"),
        ({"ch_mult": [1, 0]}, "ch_mult"),
        ({"fir": False}, "FIR"),
        ({"fir_kernel": [1, 1]}, "FIR"),
        ({"spatial_channels": 2}, "single-channel"),
        ({"dropout": 1.5}, "dropout"),
        ({"nf": 132, "ch_mult": [1]}, "cannot be built"),
        ({"ch_mult": [1] * 10}, "at most 9 levels"),
        ("/nonexistent/ncsnpp.json", "does not exist"),
        (3, "must be a dict"),
    ],
)
def test_bad_configs(config, match):
    with pytest.raises(AdapterError, match=match):
        NCSNppNetwork(config)


# -- predictor ---------------------------------------------------------------------------------
def test_predictor_batches_and_inputs(golden_net, golden_io):
    pred = NCSNppPredictor(golden_net)
    assert isinstance(pred, sips.Predictor) and pred.sample_rate == 16000 and pred.n_src == 1
    wav = golden_io["wav_a"][0]
    other = noisy(speech_like(8064 / 16000), 5.0)[:8064]
    batch = torch.stack([wav, other, torch.zeros(8064), 4 * other]).double()
    out = pred(batch)
    assert out.shape == (4, 1, 8064) and out.dtype == torch.float32 and not out.requires_grad
    torch.testing.assert_close(out[0, 0], golden_io["enhanced_a"][0], atol=1e-5, rtol=0)
    assert torch.equal(out[2], torch.zeros(1, 8064))  # silence in, silence out (no NaN)
    # Each item is normalised by its own peak: a power-of-two gain passes through exactly.
    assert torch.equal(out[3], 4 * out[1])
    assert torch.equal(torch.from_numpy(pred(wav.numpy())[0, 0]), pred(wav)[0, 0])  # numpy in, numpy out
    assert pred(wav).shape == (1, 1, 8064)
    with pytest.raises(AudioError, match="at least 256"):
        pred(torch.zeros(1, 255))
    with pytest.raises(AudioError, match=r"\[B, T\]"):
        pred(torch.zeros(1, 1, 1000))
    assert pred.to("cpu") is pred and pred.device.type == "cpu"
    assert "parameters=77,708" in repr(pred)


def test_deep_networks_get_enough_padding():
    pred = NCSNppPredictor.from_config({"nf": 4, "ch_mult": [1] * 8}, seed=0)  # frames must be a multiple of 128
    assert pred.model.dnn.frame_multiple == 128
    assert pred(noisy(speech_like(0.1), 5.0)).shape == (1, 1, 1600)


def test_postprocess_applies_the_predictor_to_the_refined_signal(golden_net):
    pred = NCSNppPredictor(golden_net)
    mixture = noisy(speech_like(1.0), 5.0)
    refined = sips.refine(pred, mixture, steps=2)
    post = sips.refine(pred, mixture, steps=2, postprocess=True)
    assert post.shape == (1, 16000)
    torch.testing.assert_close(post, pred(refined)[0], atol=1e-6, rtol=0)
    assert (post - refined).abs().max() > 1e-3


# -- command line ------------------------------------------------------------------------------
def test_cli_refine_with_a_lightning_checkpoint(tmp_path, lightning_ckpt, tiny_kwargs, capsys):
    src = write_wav(tmp_path / "in" / "x.wav", noisy(speech_like(0.5), 5.0).numpy())
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_kwargs))
    args = ["refine", str(src), "-o", str(tmp_path / "out"), "--predictor", "ncsnpp", "--checkpoint"]
    args += [str(lightning_ckpt()), "--predictor-config", str(tmp_path / "tiny.json"), "--steps", "2"]
    assert main(args) == 0
    out, rate = sf.read(tmp_path / "out" / "x.wav")
    assert rate == 16000 and out.shape == (8000,)
    assert main([*args[:3], str(tmp_path / "post"), *args[4:], "--postprocess"]) == 0
    post, _ = sf.read(tmp_path / "post" / "x.wav")
    assert abs(post - out).max() > 1e-3


def test_cli_refuses_a_code_executing_checkpoint(tmp_path, capsys):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    src = write_wav(tmp_path / "in" / "x.wav", noisy(speech_like(0.5), 5.0).numpy())
    torch.save({"state_dict": {}, "ema": Payload()}, tmp_path / "evil.ckpt")
    code = main(
        [
            "refine",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--predictor",
            "ncsnpp",
            "--checkpoint",
            str(tmp_path / "evil.ckpt"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "posix.system" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_cli_postprocess_is_refused_for_estimates(tmp_path, capsys):
    src = write_wav(tmp_path / "in" / "x.wav", noisy(speech_like(0.5), 5.0).numpy())
    code = main(["refine", str(src), "-o", str(tmp_path / "out"), "--estimates", str(tmp_path / "in"), "--postprocess"])
    assert code == 2 and "--postprocess" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_published_size_checkpoint(tmp_path):
    """The published size end to end (a randomly initialised network in the published Lightning layout)."""
    state = NCSNppPredictor.from_config(seed=0).model.state_dict()
    _save_lightning(tmp_path / "NCSNpp_VB-DMD.ckpt", state, list(state))
    del state
    src = write_wav(tmp_path / "in" / "x.wav", noisy(speech_like(0.5), 5.0).numpy())
    args = ["refine", str(src), "-o", str(tmp_path / "out"), "--predictor", "ncsnpp"]
    assert main([*args, "--checkpoint", str(tmp_path / "NCSNpp_VB-DMD.ckpt"), "--steps", "2"]) == 0
    assert sf.info(tmp_path / "out" / "x.wav").frames == 8000


def test_option_error_for_a_separator_with_postprocess():
    separator = sips.as_predictor(lambda x: torch.stack([x, -x], dim=1), n_src=2)
    with pytest.raises(OptionError, match="enhancement predictors only"):
        sips.refine(separator, noisy(speech_like(0.2), 5.0), steps=1, postprocess=True)
