"""The FlexIO adapter (``sips-flexio``): golden outputs, published state-dict layout, loading, predictor."""

import argparse
import json

import pytest
import torch

import sips
from sips.errors import AdapterError, AudioError

from conftest import REFERENCE, noisy, speech_like

sips_flexio = __import__("sips_flexio")
from sips_flexio import FlexIOPredictor, build_model  # noqa: E402
from sips_flexio.checkpoint import load_strict, shared_groups  # noqa: E402
from sips_flexio.rope import rope_frequencies  # noqa: E402


@pytest.fixture(scope="module")
def tiny_hparams():
    return json.loads((REFERENCE / "flexio_config.json").read_text())["hparams"]


@pytest.fixture(scope="module")
def golden_state():
    from safetensors.torch import load_file

    return load_file(str(REFERENCE / "flexio_state_dict.safetensors"))


@pytest.fixture(scope="module")
def golden_io():
    from safetensors.torch import load_file

    return load_file(str(REFERENCE / "flexio_io.safetensors"))


@pytest.fixture(scope="module")
def golden_model(tiny_hparams, golden_state):
    model = build_model(tiny_hparams)
    load_strict(model, golden_state, "flexio_state_dict.safetensors")
    return model.eval()


@pytest.fixture(scope="module")
def tiny_predictor(tiny_hparams):
    return FlexIOPredictor.from_config(tiny_hparams, seed=0, n_src=1)


def _close(actual, expected, rel=1e-4):
    """Compare with a tolerance of ``rel`` times the reference's max |value|; returns the max abs diff."""
    assert actual.shape == expected.shape
    tol = rel * expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    assert diff <= tol, f"max |diff| {diff:.3g} > {tol:.3g}"
    return diff


# -- golden reference (tiny config, perturbed weights) ------------------------------------------
def test_golden_intermediates_and_output(golden_model, golden_io):
    mix = golden_io["mix"]
    n_src = golden_io["Y_sep"].shape[1]
    with torch.inference_mode():
        std = golden_model.normalization(mix.unsqueeze(1))
        spec = golden_model.encoder.encode((mix / std).unsqueeze(1))
        sep = golden_model.separator(spec, [["speech"] * n_src] * mix.shape[0])
        out = golden_model.decoder.decode(sep) * std.unsqueeze(-1)
    _close(std, golden_io["std"], rel=1e-6)
    _close(torch.view_as_real(spec), golden_io["X_stft"])
    _close(torch.view_as_real(sep), golden_io["Y_sep"])
    _close(out, golden_io["out"])


def test_golden_enhance(golden_model, golden_io):
    if "enhance_out" not in golden_io:
        pytest.skip("no enhance_out in the fixture")
    golden_model.num_speakers = golden_io["enhance_out"].shape[0]
    with torch.inference_mode():
        out = golden_model.enhance(golden_io["mix"])
    _close(out, golden_io["enhance_out"])


def test_golden_through_the_predictor(tiny_hparams, golden_state, golden_io, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file(golden_state, str(path))
    pred = sips.load_predictor("flexio", checkpoint=str(path), config=tiny_hparams, n_src=2)
    mix = golden_io["mix"]
    out = pred(mix)
    assert out.shape == (1, 2, mix.shape[-1]) and out.dtype == torch.float32
    _close(out, golden_io["out"][..., : mix.shape[-1]])


def test_cpu_attention_slicing_is_exact(golden_model, golden_io, monkeypatch):
    mix = golden_io["mix"]
    with torch.inference_mode():
        whole = golden_model(mix, [["speech", "speech"]])
        monkeypatch.setattr(sips_flexio.net, "CPU_ATTENTION_BYTES", 4096)
        sliced = golden_model(mix, [["speech", "speech"]])
    assert torch.equal(sliced, whole)
    _close(sliced, golden_io["out"])


# -- published configuration -------------------------------------------------------------------
def test_published_state_dict_layout():
    ref = json.loads((REFERENCE / "flexio_full_keys.json").read_text())
    model = build_model(None)  # the published flexio_hparams.yaml values
    state = model.state_dict()
    mine = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]
    assert mine == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_parameters_unique"] == 7_349_786
    assert sum(v.numel() for v in state.values()) == ref["num_state_dict_elements_incl_duplicates"]
    for group in ref["shared_tensor_groups"]:
        assert len({state[k].data_ptr() for k in group}) == 1, group
    assert sorted(map(sorted, shared_groups(model))) == sorted(map(sorted, ref["shared_tensor_groups"]))
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.endswith("rope.freqs"))


def test_rope_frequencies_match_the_fixture(golden_state):
    freqs = {v.numel(): v for k, v in golden_state.items() if k.endswith("rope.freqs")}
    for size, stored in freqs.items():
        assert torch.equal(rope_frequencies(2 * size), stored)
    # Published head sizes: cross-prompt 128 / 4 = 32, cond-TSE 96 / 4 = 24.
    for dim in (32, 24):
        expected = torch.tensor([1 / (10000 ** (2 * i / dim)) for i in range(dim // 2)], dtype=torch.float64)
        torch.testing.assert_close(rope_frequencies(dim).double(), expected, rtol=1e-6, atol=0)


def test_default_construction_is_the_published_config():
    assert FlexIOPredictor.from_config().model.state_dict().keys() == build_model(None).state_dict().keys()


# -- checkpoint loading ------------------------------------------------------------------------
@pytest.mark.parametrize("wrapper", ["lightning", "model", "model_state_dict", "plain", "prefixed"])
def test_torch_checkpoint_unwrap_rules(wrapper, tiny_hparams, golden_state, tmp_path):
    sd = dict(golden_state)
    ckpt = {
        "lightning": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
        "model": {"model": sd, "state_dict_unused": 1},
        "model_state_dict": {"model_state_dict": sd},
        "plain": sd,
        "prefixed": {f"model.{k}": v for k, v in sd.items()},
    }[wrapper]
    path = tmp_path / "flexio.ckpt"
    torch.save(ckpt, path)
    pred = sips_flexio.load(checkpoint=str(path), config=tiny_hparams)
    assert pred.n_src == 1
    loaded = pred.model.state_dict()
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_state_dict_key_priority(tiny_hparams, golden_state, tmp_path):
    # 'state_dict' wins over 'model' (checked in this order).
    path = tmp_path / "both.ckpt"
    torch.save({"model": {"junk": torch.zeros(1)}, "state_dict": dict(golden_state)}, path)
    sips_flexio.load(checkpoint=str(path), config=tiny_hparams)


def test_strict_loading_errors(tiny_hparams, golden_state, tmp_path):
    sd = dict(golden_state)
    missing = {k: v for k, v in sd.items() if not k.startswith("separator.deconv")}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(AdapterError, match="missing"):
        sips_flexio.load(checkpoint=str(tmp_path / "missing.pt"), config=tiny_hparams)
    # The published config does not fit the tiny weights.
    torch.save(sd, tmp_path / "tiny.pt")
    with pytest.raises(AdapterError, match="do not fit"):
        sips_flexio.load(checkpoint=str(tmp_path / "tiny.pt"))
    # Partly prefixed keys are not stripped.
    partly = {("model." + k if i % 2 else k): v for i, (k, v) in enumerate(sd.items())}
    torch.save(partly, tmp_path / "partly.pt")
    with pytest.raises(AdapterError, match="unexpected"):
        sips_flexio.load(checkpoint=str(tmp_path / "partly.pt"), config=tiny_hparams)
    # Shared rotary frequencies must agree.
    bad = dict(sd)
    key = "separator.cross_prompt_module.1.freq_path.attn.rope.freqs"
    bad[key] = bad[key] * 2
    torch.save(bad, tmp_path / "bad_rope.pt")
    with pytest.raises(AdapterError, match="shared"):
        sips_flexio.load(checkpoint=str(tmp_path / "bad_rope.pt"), config=tiny_hparams)


def test_unsafe_or_missing_checkpoints_are_refused(tiny_hparams, tmp_path):
    path = tmp_path / "pickle.ckpt"
    torch.save({"state_dict": argparse.Namespace(a=1)}, path)
    with pytest.raises(AdapterError, match="weights-only"):
        sips_flexio.load(checkpoint=str(path), config=tiny_hparams)
    with pytest.raises(AdapterError, match="does not exist"):
        sips_flexio.load(checkpoint=str(tmp_path / "nope.ckpt"), config=tiny_hparams)


def test_no_default_weights_asks_for_a_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setattr(sips_flexio.predictor, "default_weights_dir", lambda: tmp_path / "absent")
    with pytest.raises(AdapterError, match="checkpoint="):
        sips.load_predictor("flexio")


def test_default_folder_is_loaded_when_present(monkeypatch, tmp_path, tiny_hparams):
    source = FlexIOPredictor.from_config(tiny_hparams, seed=3, n_src=2)
    folder = source.save_pretrained(tmp_path / "default")
    monkeypatch.setattr(sips_flexio.predictor, "default_weights_dir", lambda: folder)
    pred = sips.load_predictor("flexio")
    assert isinstance(pred, FlexIOPredictor) and pred.n_src == 2
    assert sips.load_predictor("flexio", n_src=1).n_src == 1
    mix = torch.randn(1, 1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pred(mix), source(mix))
    # A saved folder is also a valid checkpoint= argument.
    assert torch.equal(FlexIOPredictor.from_checkpoint(folder)(mix), source(mix))


# -- configuration -----------------------------------------------------------------------------
def test_config_files_and_wrapped_dicts(tiny_hparams, tmp_path):
    import yaml

    reference = FlexIOPredictor.from_config(tiny_hparams, seed=1).model.state_dict()
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(dict(tiny_hparams, optimizer={"lr": 1e-3})))
    (tmp_path / "h.json").write_text(json.dumps({"hparams": tiny_hparams}))
    for config in (tmp_path / "h.yaml", str(tmp_path / "h.json"), REFERENCE / "flexio_config.json"):
        state = FlexIOPredictor.from_config(config, seed=1).model.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in state)


def test_cond_attention_dim_may_differ_from_emb_dim(tiny_hparams):
    hp = json.loads(json.dumps(tiny_hparams))
    hp["model_conf"]["conf_cond_tse_module"]["attention_dim"] = 24
    hp["model_conf"]["conf_cond_tse_module"]["n_heads"] = 3
    hp["model_conf"]["sample_rate"] = 8000
    pred = FlexIOPredictor.from_config(hp, n_src=2)
    assert pred.model.state_dict()["separator.cond_tse_module.0.freq_path.attn.qkv.weight"].shape == (72, 16)
    assert pred.model.state_dict()["separator.cond_tse_module.0.freq_path.attn.rope.freqs"].shape == (4,)
    assert pred.sample_rate == 8000
    assert pred(torch.randn(1, 1000)).shape == (1, 2, 1000)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda hp: hp["model_conf"].update(bogus=1), "bogus"),
        (lambda hp: hp["model_conf"]["conf_cross_prompt_module"].update(n_heads=3), "n_heads"),
        (lambda hp: hp.update(encoder_name="conv"), "stft"),
        (lambda hp: hp.pop("model_conf"), "model_conf"),
        (lambda hp: hp["model_conf"].update(ref_channel=1), "ref_channel"),
    ],
)
def test_bad_configs_raise_adapter_error(tiny_hparams, edit, match):
    hp = json.loads(json.dumps(tiny_hparams))
    edit(hp)
    with pytest.raises(AdapterError, match=match):
        FlexIOPredictor.from_config(hp)


def test_from_config_is_seeded_and_leaves_the_global_rng_alone(tiny_hparams):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = FlexIOPredictor.from_config(tiny_hparams, seed=5).model.state_dict()
    assert torch.equal(torch.rand(3), expected)
    b = FlexIOPredictor.from_config(tiny_hparams, seed=5).model.state_dict()
    c = FlexIOPredictor.from_config(tiny_hparams, seed=6).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["separator.conv.0.weight"], c["separator.conv.0.weight"])


# -- predictor ---------------------------------------------------------------------------------
def test_predictor_contract(tiny_predictor):
    pred = tiny_predictor
    assert pred.sample_rate == 16000 and pred.n_src == 1
    assert isinstance(pred, sips.Predictor)
    mix = torch.randn(2, 1999, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = pred(mix)
    assert out.shape == (2, 1, 1999) and out.dtype == torch.float32 and not out.requires_grad
    _close(pred(mix[0]), out[:1])
    assert pred(mix[:1], n_src=3).shape == (1, 3, 1999)
    assert pred.n_src == 1
    assert pred.to("cpu") is pred and pred.device.type == "cpu"
    for bad in (0, -1, 1.5, True):
        with pytest.raises(AdapterError, match="n_src"):
            pred(mix, n_src=bad)
    with pytest.raises(AudioError):
        pred(torch.zeros(1, 1, 1, 100))
    with pytest.raises(AudioError):
        pred(torch.zeros(1, 1))


def test_sources_differ_and_scale_follows_the_input(tiny_predictor):
    mix = noisy(speech_like(0.15), 5.0).unsqueeze(0)
    out = tiny_predictor(mix, n_src=2)
    assert not torch.allclose(out[:, 0], out[:, 1])
    # Variance normalisation: the network is scale-invariant up to float rounding.
    _close(tiny_predictor(mix * 10, n_src=2), out * 10)


def test_multi_microphone_input(tiny_predictor):
    g = torch.Generator().manual_seed(2)
    mono = torch.randn(2, 1600, generator=g)
    out_mono = tiny_predictor(mono, n_src=2)
    assert torch.equal(tiny_predictor(mono.unsqueeze(1), n_src=2), out_mono)
    mics = torch.stack([mono, torch.randn(2, 1600, generator=g), torch.randn(2, 1600, generator=g)], dim=1)
    out = tiny_predictor(mics, n_src=2)
    assert out.shape == (2, 2, 1600) and torch.isfinite(out).all()
    assert not torch.allclose(out, out_mono, atol=1e-3)  # the other microphones matter
    # Co-attention shares one attention map over the microphones: the order of the
    # non-reference microphones does not matter (up to summation order).
    _close(tiny_predictor(mics[:, [0, 2, 1]], n_src=2), out)
    # Batch items are independent.
    _close(tiny_predictor(mics[1:], n_src=2)[0], out[1])


def test_load_predictor_entry_point_and_default_n_src(tiny_hparams, tmp_path):
    from safetensors.torch import save_file

    assert "flexio" in sips.available_adapters()
    path = tmp_path / "w.safetensors"
    save_file(sips_flexio.checkpoint.state_dict_for_saving(build_model(tiny_hparams)), str(path))
    pred = sips.load_predictor("flexio", checkpoint=str(path), config=tiny_hparams, n_src=3)
    assert pred.n_src == 3 and pred(torch.randn(1, 1000)).shape == (1, 3, 1000)


def test_inside_refine(tiny_hparams):
    pred = FlexIOPredictor.from_config(tiny_hparams, seed=0, n_src=1)
    mixture = noisy(speech_like(0.5), 5.0)
    out = sips.refine(pred, mixture, steps=4)
    assert out.shape == (1, 8000) and torch.isfinite(out).all()
