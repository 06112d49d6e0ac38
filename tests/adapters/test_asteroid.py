"""The asteroid / Conv-TasNet adapter (distribution sips-asteroid).

Golden data: ``convtasnet_kaituoxu_*`` of the reference fixtures (tiny gLN, non-causal, relu
kaituoxu Conv-TasNet as bundled with SIPS). The spec's §9 shows that asteroid's ``ConvTasNet``
constructor expresses kaituoxu models exactly only for cLN; the golden config is gLN, so the
adapter's default ("auto") route for it is the native re-implementation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import sips_asteroid  # noqa: E402
import soundfile as sf
import torch
from sips_asteroid import checkpoints  # noqa: E402
from sips_asteroid.kaituoxu import KaituoxuConfig, KaituoxuConvTasNet  # noqa: E402

import sips
from sips.cli import main

from conftest import REFERENCE

GOLDEN_CFG = json.loads((REFERENCE / "convtasnet_kaituoxu_config.json").read_text())["constructor_kwargs"]


@pytest.fixture(scope="module")
def golden():
    from safetensors.torch import load_file

    return {
        "state": load_file(str(REFERENCE / "convtasnet_kaituoxu_state_dict.safetensors")),
        "io": load_file(str(REFERENCE / "convtasnet_kaituoxu_io.safetensors")),
    }


def kaituoxu_package(hparams: dict, state: dict) -> dict:
    """A package as written by the kaituoxu trainer (hyper-parameters, weights, Adam state, losses)."""
    adam = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "params": [0]}],
    }
    return {
        **hparams,
        "state_dict": dict(state),
        "optim_dict": adam,
        "epoch": 3,
        "tr_loss": torch.rand(3),
        "cv_loss": torch.rand(3),
    }


def random_kaituoxu_state(hparams: dict, seed: int) -> dict:
    """Perturbed weights (and BatchNorm statistics) in the kaituoxu layout."""
    torch.manual_seed(seed)
    model = KaituoxuConvTasNet(KaituoxuConfig(**hparams))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p += 0.1 * torch.randn(p.shape, generator=g)
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=g))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=g))
    return model.state_dict()


def small_asteroid_convtasnet(seed: int = 0, **overrides):
    from asteroid.models import ConvTasNet

    kwargs = dict(
        n_src=2, n_filters=16, kernel_size=16, stride=8, n_blocks=2, n_repeats=1, bn_chan=8, hid_chan=16, skip_chan=8
    )
    kwargs.update(sample_rate=16000, **overrides)
    torch.manual_seed(seed)
    model = ConvTasNet(**kwargs).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p += 0.1 * torch.randn(p.shape, generator=g)
    return model


def serialize(model) -> dict:
    with warnings.catch_warnings():  # serialize() imports pytorch_lightning -> torchmetrics -> pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        return model.serialize()


def mixture(batch: int = 2, seconds: float = 0.1, seed: int = 5) -> torch.Tensor:
    return 0.1 * torch.randn(batch, int(seconds * 16000), generator=torch.Generator().manual_seed(seed))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# --------------------------------------------------------------------------------------------- golden


def test_golden_kaituoxu_package_native_route(golden, tmp_path):
    """gLN: not expressible by asteroid's constructor (§9.4 D1) -> the native route reproduces the reference."""
    path = tmp_path / "Conv-TasNet.pt"
    torch.save(kaituoxu_package(GOLDEN_CFG, golden["state"]), path)
    pred = sips.load_predictor("convtasnet", checkpoint=str(path))
    assert isinstance(pred, sips_asteroid.ConvTasNetPredictor)
    assert pred.backend == "native" and isinstance(pred.model, KaituoxuConvTasNet)
    assert (pred.sample_rate, pred.n_src) == (16000, 2)
    assert set(pred.model.state_dict()) == set(golden["state"])  # keys of the published format

    mix = golden["io"]["mixture"]
    out = pred(mix)
    assert out.dtype == torch.float32 and out.shape == golden["io"]["out"].shape
    torch.testing.assert_close(out, golden["io"]["out"], atol=1e-6, rtol=1e-5)  # observed: bit-identical
    torch.testing.assert_close(out[0], golden["io"]["enhance_out"], atol=1e-6, rtol=1e-5)


def test_golden_asteroid_backend_with_replaced_first_norm(golden, tmp_path):
    """backend='asteroid' for gLN: asteroid ConvTasNet + ChanLN as first norm; equal up to float32 rounding."""
    from asteroid.masknn.norms import ChanLN
    from asteroid.models import ConvTasNet

    path = tmp_path / "Conv-TasNet.pt"
    torch.save(kaituoxu_package(GOLDEN_CFG, golden["state"]), path)
    pred = sips.load_predictor("convtasnet", checkpoint=path, backend="asteroid")
    assert pred.backend == "asteroid" and isinstance(pred.model, ConvTasNet)
    assert isinstance(pred.model.masker.bottleneck[0], ChanLN)
    out = pred(golden["io"]["mixture"])
    assert rel_err(out, golden["io"]["out"]) < 2e-6  # observed 1.9e-7 (4.5e-8 absolute)


def test_stock_asteroid_gln_is_a_different_function(golden):
    """Why gLN cannot use asteroid's constructor alone: its first norm would be global (§9.4 D1)."""
    from asteroid.models import ConvTasNet
    from sips_asteroid.convert import asteroid_kwargs, convert_state_dict

    cfg = KaituoxuConfig(**GOLDEN_CFG)
    stock = ConvTasNet(**asteroid_kwargs(cfg, 16000)).eval()
    stock.load_state_dict(convert_state_dict(cfg, golden["state"]))
    with torch.no_grad():
        out = stock(golden["io"]["mixture"])
    assert rel_err(out, golden["io"]["out"]) > 1e-2


def test_golden_bare_state_dict_with_config(golden):
    path = REFERENCE / "convtasnet_kaituoxu_state_dict.safetensors"
    pred = sips.load_predictor("convtasnet", checkpoint=path, config=GOLDEN_CFG)
    torch.testing.assert_close(pred(golden["io"]["mixture"]), golden["io"]["out"], atol=1e-6, rtol=1e-5)
    with pytest.raises(sips.AdapterError, match="hyper-parameters"):
        sips.load_predictor("convtasnet", checkpoint=path)


def test_full_config_keys_match_published_layout():
    data = json.loads((REFERENCE / "convtasnet_kaituoxu_full_keys.json").read_text())
    with torch.device("meta"):
        model = KaituoxuConvTasNet(KaituoxuConfig(**data["assumed_cfg"]))
    got = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert got == data["keys"]
    assert sum(p.numel() for p in model.parameters()) == data["num_parameters_assumed"]


# --------------------------------------------------------------------------------------------- variants

VARIANTS = [
    # (norm_type, causal, mask_nonlinear, route under backend="auto")
    ("cLN", False, "relu", "asteroid"),
    ("cLN", True, "softmax", "asteroid"),
    ("gLN", False, "softmax", "native"),
    ("gLN", True, "relu", "native"),
    ("BN", False, "relu", "native"),
    ("BN", True, "softmax", "native"),
]


@pytest.mark.parametrize("norm_type, causal, mask, route", VARIANTS)
def test_kaituoxu_variants_load_run_and_agree(tmp_path, norm_type, causal, mask, route):
    hp = dict(N=16, L=8, B=8, H=12, P=3, X=3, R=2, C=3, norm_type=norm_type, causal=causal, mask_nonlinear=mask)
    state = random_kaituoxu_state(hp, seed=11)
    path = tmp_path / "pkg.pth"
    torch.save(kaituoxu_package(hp, state), path)
    mix = mixture(2, 0.1)

    auto = sips.load_predictor("convtasnet", checkpoint=path)
    native = sips.load_predictor("convtasnet", checkpoint=path, backend="native")
    assert auto.backend == route and native.backend == "native"
    assert set(native.model.state_dict()) == set(state)
    ref = native(mix)
    assert ref.shape == (2, 3, mix.shape[-1]) and torch.isfinite(ref).all() and ref.abs().max() > 0

    if causal and norm_type != "gLN":  # the future cannot change the past (gLN is global even when causal)
        later = mix.clone()
        later[:, 1000:] += 1.0
        assert torch.equal(native(later)[..., : 1000 - hp["L"]], ref[..., : 1000 - hp["L"]])
    if mask == "softmax":  # masks sum to one: the sources add up to decoder(encoder(mix)), computed by hand
        w = torch.relu(torch.nn.functional.conv1d(mix[:, None], state["encoder.conv1d_U.weight"], stride=4))
        basis = state["decoder.basis_signals.weight"].t().unsqueeze(1)  # [N, 1, L]
        direct = torch.nn.functional.conv_transpose1d(w, basis, stride=4)[:, 0]
        torch.testing.assert_close(ref.sum(1), direct, atol=1e-5, rtol=1e-5)

    if causal and norm_type != "cLN":
        with pytest.raises(sips.AdapterError, match="cannot run in asteroid"):
            sips.load_predictor("convtasnet", checkpoint=path, backend="asteroid")
    else:
        converted = sips.load_predictor("convtasnet", checkpoint=path, backend="asteroid")
        assert converted.backend == "asteroid"
        assert rel_err(converted(mix), ref) < 1e-5


def test_kaituoxu_bad_hyper_parameters(tmp_path):
    hp = dict(GOLDEN_CFG, mask_nonlinear="sigmoid")
    path = tmp_path / "pkg.pth"
    torch.save(kaituoxu_package(hp, {}), path)
    with pytest.raises(sips.AdapterError, match="mask_nonlinear"):
        sips.load_predictor("convtasnet", checkpoint=path)


def test_kaituoxu_strict_loading(golden, tmp_path):
    state = dict(golden["state"])
    state.pop("separator.network.3.weight")
    path = tmp_path / "pkg.pth"
    torch.save(kaituoxu_package(GOLDEN_CFG, state), path)
    with pytest.raises(sips.AdapterError, match=r"do not fit.*separator\.network\.3\.weight"):
        sips.load_predictor("convtasnet", checkpoint=path)
    torch.save(kaituoxu_package(dict(GOLDEN_CFG, B=4), golden["state"]), path)
    with pytest.raises(sips.AdapterError, match="another shape"):
        sips.load_predictor("convtasnet", checkpoint=path)
    torch.save(kaituoxu_package(GOLDEN_CFG, golden["state"]), path)
    with pytest.raises(sips.AdapterError, match="n_src=1"):
        sips.load_predictor("convtasnet", checkpoint=path, n_src=1)
    with pytest.raises(sips.AdapterError, match="disagrees"):
        sips.load_predictor("convtasnet", checkpoint=path, config={"N": 32})
    with pytest.raises(sips.AdapterError, match="backend"):
        sips.load_predictor("convtasnet", checkpoint=path, backend="onnx")


# --------------------------------------------------------------------------------------------- asteroid packages


def test_asteroid_package_round_trip_weights_only(tmp_path):
    from torch.serialization import safe_globals  # noqa: F401  (the API the adapter relies on)

    model = small_asteroid_convtasnet()
    path = tmp_path / "model.pth"
    torch.save(serialize(model), path)
    with pytest.raises(Exception, match="TorchVersion"):  # the package really needs the allow-list
        torch.load(path, weights_only=True)

    mix = mixture(2, 0.25)
    with torch.no_grad():
        expected = model(mix)
    for name in ("asteroid", "convtasnet"):
        pred = sips.load_predictor(name, checkpoint=str(path))
        assert isinstance(pred, sips_asteroid.ConvTasNetPredictor) and pred.backend == "asteroid"
        assert (pred.sample_rate, pred.n_src) == (16000, 2)
        assert torch.equal(pred(mix), expected)
    # the allow-list is scoped to the adapter's load, not a global side effect
    with pytest.raises(Exception, match="TorchVersion"):
        torch.load(path, weights_only=True)


def test_asteroid_other_model_through_generic_adapter(tmp_path):
    from asteroid.models import DPRNNTasNet

    torch.manual_seed(0)
    model = DPRNNTasNet(
        n_src=2,
        n_filters=16,
        kernel_size=8,
        stride=4,
        bn_chan=8,
        hid_size=8,
        chunk_size=10,
        n_repeats=1,
        sample_rate=16000,
    ).eval()
    path = tmp_path / "dprnn.pth"
    torch.save(serialize(model), path)
    pred = sips_asteroid.AsteroidPredictor.from_checkpoint(path)
    assert type(pred) is sips_asteroid.AsteroidPredictor and pred.n_src == 2
    mix = mixture(1, 0.1)
    with torch.no_grad():
        expected = model(mix)
    torch.testing.assert_close(pred(mix), expected[..., : mix.shape[-1]], atol=0, rtol=0)
    with pytest.raises(sips.AdapterError, match="not a ConvTasNet.*'asteroid' adapter"):
        sips.load_predictor("convtasnet", checkpoint=path)


def test_asteroid_package_strict_and_config_override(tmp_path):
    model = small_asteroid_convtasnet()
    package = serialize(model)
    path = tmp_path / "model.pth"
    torch.save(package, path)
    pred = sips.load_predictor("asteroid", checkpoint=path, config={"sample_rate": 8000})
    assert pred.sample_rate == 8000
    package["state_dict"].pop("masker.mask_net.1.bias")
    torch.save(package, path)
    with pytest.raises(sips.AdapterError, match="do not fit"):
        sips.load_predictor("asteroid", checkpoint=path)
    package["model_name"] = "NoSuchNet"
    torch.save(package, path)
    with pytest.raises(sips.AdapterError, match="does not know"):
        sips.load_predictor("asteroid", checkpoint=path)


def test_refuses_pickles_with_other_globals(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"model_name": "ConvTasNet", "model_args": {}, "state_dict": {}, "infos": Payload()}, path)
    for name in ("asteroid", "convtasnet"):
        with pytest.raises(sips.AdapterError, match=r"\((io|builtins)\.open\).*refuses to unpickle"):
            sips.load_predictor(name, checkpoint=path)
    assert not marker.exists()


def test_kaituoxu_package_refused_by_asteroid_adapter(golden, tmp_path):
    path = tmp_path / "pkg.pth"
    torch.save(kaituoxu_package(GOLDEN_CFG, golden["state"]), path)
    with pytest.raises(sips.AdapterError, match="'convtasnet' adapter"):
        sips.load_predictor("asteroid", checkpoint=path)


def test_hub_id_goes_through_asteroid_download(tmp_path, monkeypatch):
    """No network here: asteroid's cached_download is replaced by a local file."""
    import asteroid.utils.hub_utils as hub_utils

    model = small_asteroid_convtasnet()
    package = serialize(model)
    package["model_args"].pop("sample_rate")  # old zoo packages lack it; asteroid's table says 8 kHz
    path = tmp_path / "model.pth"
    torch.save(package, path)
    asked = []
    monkeypatch.setattr(hub_utils, "cached_download", lambda name: asked.append(name) or str(path))
    pred = sips.load_predictor("convtasnet", checkpoint="mpariente/ConvTasNet_WHAM!_sepclean")
    assert asked == ["mpariente/ConvTasNet_WHAM!_sepclean"] and pred.sample_rate == 8000

    def offline(name):
        raise OSError("offline")

    monkeypatch.setattr(hub_utils, "cached_download", offline)
    with pytest.raises(sips.AdapterError, match="Could not fetch"):
        sips.load_predictor("asteroid", checkpoint="someone/SomeModel@v1")


def test_hub_id_detection():
    assert checkpoints.looks_like_hub_id("JorisCos/ConvTasNet_Libri1Mix_enhsingle_16k")
    assert checkpoints.looks_like_hub_id("julien-c/DPRNNTasNet-ks16_WHAM_sepclean@main")
    assert checkpoints.looks_like_hub_id("https://zenodo.org/record/3862942/files/model.pth")
    assert not checkpoints.looks_like_hub_id("runs/model.pth")
    assert not checkpoints.looks_like_hub_id("./ckpt/model")
    assert not checkpoints.looks_like_hub_id("/abs/path/model")


# --------------------------------------------------------------------------------------------- errors, defaults


def test_missing_checkpoint_file(tmp_path):
    for name in ("asteroid", "convtasnet"):
        with pytest.raises(sips.AdapterError, match="No checkpoint file or folder at"):
            sips.load_predictor(name, checkpoint=str(tmp_path / "nope.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(sips.AdapterError, match="cannot be read as a torch checkpoint"):
        sips.load_predictor("convtasnet", checkpoint=corrupt)


def test_no_default_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "DEFAULT_FOLDER", tmp_path / "default")
    with pytest.raises(sips.AdapterError, match="No default weights"):
        sips.load_predictor("convtasnet")


def test_asteroid_needs_a_checkpoint_and_is_no_alias_of_convtasnet(tmp_path, capsys):
    """``"asteroid"`` runs the model you name: without a checkpoint it is an error (one sentence, exit
    2 in the CLI) that points to ``"convtasnet"`` for the shipped weights, never a silent Conv-TasNet."""
    with pytest.raises(sips.AdapterError, match=r"needs checkpoint= .*the predictor convtasnet"):
        sips.load_predictor("asteroid")
    sf.write(tmp_path / "x.wav", mixture(1, 0.3)[0].numpy(), 16000)
    assert main(["refine", str(tmp_path / "x.wav"), "-o", str(tmp_path / "out"), "--predictor", "asteroid"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "needs --checkpoint FILE" in line and "convtasnet" in line
    assert not (tmp_path / "out").exists()


def test_save_default_round_trip(tmp_path, monkeypatch):
    model = small_asteroid_convtasnet(seed=3, causal=True, norm_type="cLN", mask_act="softmax")
    folder = sips_asteroid.save_default(model, tmp_path / "default", "# Tiny test card")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["sample_rate"] == 16000 and config["n_src"] == 2 and config["causal"] is True
    assert (folder / "README.md").read_text() == "# Tiny test card\n"

    monkeypatch.setattr(checkpoints, "DEFAULT_FOLDER", folder)
    mix = mixture(2, 0.1)
    with torch.no_grad():
        expected = model(mix)
    assert torch.equal(sips.load_predictor("convtasnet")(mix), expected)
    # the same folder given explicitly, to either adapter
    assert torch.equal(sips.load_predictor("convtasnet", checkpoint=folder)(mix), expected)
    assert torch.equal(sips.load_predictor("asteroid", checkpoint=folder)(mix), expected)

    sips_asteroid.save_default(model, tmp_path / "nocard")
    assert "ConvTasNet" in (tmp_path / "nocard" / "README.md").read_text()


def test_save_default_refuses_what_it_cannot_rebuild(golden, tmp_path):
    converted = sips_asteroid.to_asteroid(KaituoxuConfig(**GOLDEN_CFG), golden["state"])
    with pytest.raises(sips.AdapterError, match="replaced first norm"):
        sips_asteroid.save_default(converted, tmp_path / "d", "card")
    with pytest.raises(sips.AdapterError, match="expects an asteroid ConvTasNet"):
        sips_asteroid.save_default(torch.nn.Linear(2, 2), tmp_path / "d", "card")


def test_predictor_contract(golden, tmp_path):
    pred = sips.load_predictor(
        "convtasnet",
        checkpoint=REFERENCE / "convtasnet_kaituoxu_state_dict.safetensors",
        config=GOLDEN_CFG,
        device="cpu",
    )
    assert pred.device == torch.device("cpu")
    assert pred.to(dtype=torch.float64) is pred
    out = pred(golden["io"]["mixture"])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, golden["io"]["out"], atol=1e-6, rtol=1e-5)
    assert pred(golden["io"]["mixture"][0]).shape == (1, 2, 8000)  # [T] is a batch of one
    with pytest.raises(sips.AdapterError, match="at least 16 samples"):
        pred(torch.zeros(1, 10))
    assert not torch.is_inference_mode_enabled()


def test_refine_with_convtasnet(golden, tmp_path):
    path = tmp_path / "Conv-TasNet.pt"
    torch.save(kaituoxu_package(GOLDEN_CFG, golden["state"]), path)
    pred = sips.load_predictor("convtasnet", checkpoint=path)
    mix = mixture(2, 0.5, seed=7)
    out = sips.refine(pred, mix, sample_rate=16000, steps=2)
    assert out.shape == (2, 2, 8000) and torch.isfinite(out).all()


def test_asteroid_is_imported_lazily_and_quietly():
    code = (
        "import sys, sips_asteroid\n"
        "from safetensors.torch import load_file\n"
        f"sd = load_file({str(REFERENCE / 'convtasnet_kaituoxu_state_dict.safetensors')!r})\n"
        f"p = sips_asteroid.load_convtasnet(checkpoint={str(REFERENCE / 'convtasnet_kaituoxu_state_dict.safetensors')!r}, "
        f"config={GOLDEN_CFG!r})\n"
        "assert 'asteroid' not in sys.modules, 'native route imported asteroid'\n"
        "from sips_asteroid._lazy import import_asteroid\n"
        "import_asteroid()\n"
        "assert 'asteroid' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "pkg_resources" not in result.stderr
