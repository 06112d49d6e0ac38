import json
import subprocess
import sys
from fractions import Fraction

import pytest
import torch
from safetensors.torch import load_file, save_file

import sips
from sips.errors import PriorLoadError


@pytest.fixture(scope="module")
def golden_io(reference):
    return load_file(str(reference / "sips_prior_io.safetensors"))


def _official_files(tmp_path, reference, tiny_reference_kwargs, wrap: bool):
    state = load_file(str(reference / "sips_prior_state_dict.safetensors"))
    payload = {"ema": state, "cur_nwav": 123456, "ema_suffix": "-0.050"} if wrap else state
    pt = tmp_path / "SIPS.pt"
    torch.save(payload, pt)
    config = tmp_path / "SIPS_config.json"
    kwargs = {"class_name": "sips_speech.models.model.SIPS", **tiny_reference_kwargs}
    config.write_text(json.dumps({"model_kwargs": kwargs, "audio_encoder_kwargs": {"spec_exp": 0.5}}))
    return pt, config


@pytest.mark.parametrize("wrap", [True, False], ids=["ema-snapshot", "bare-state-dict"])
def test_convert_official_reproduces_reference(tmp_path, reference, tiny_reference_kwargs, golden_io, wrap):
    pt, config = _official_files(tmp_path, reference, tiny_reference_kwargs, wrap)
    out = sips.convert_official(pt, config, tmp_path / "converted")
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    prior = sips.ScorePrior.from_pretrained(out)
    assert prior.config.channels_per_head == 8
    with torch.no_grad():
        z, logvar = prior(golden_io["x"], golden_io["t"], return_logvar=True)
    torch.testing.assert_close(z, golden_io["out"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logvar, golden_io["logvar"], atol=1e-5, rtol=1e-5)


def test_cli_convert(tmp_path, reference, tiny_reference_kwargs, golden_io):
    pt, config = _official_files(tmp_path, reference, tiny_reference_kwargs, True)
    result = subprocess.run(
        [sys.executable, "-m", "sips.cli", "convert", str(pt), str(config), "-o", str(tmp_path / "cli")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    prior = sips.ScorePrior.from_pretrained(tmp_path / "cli")
    torch.testing.assert_close(prior(golden_io["x"], golden_io["t"]), golden_io["out"], atol=1e-5, rtol=1e-5)


def test_convert_refuses_pickled_objects(tmp_path, reference, tiny_reference_kwargs):
    _, config = _official_files(tmp_path, reference, tiny_reference_kwargs, True)
    evil = tmp_path / "evil.pt"
    torch.save({"ema": {"x": torch.zeros(1)}, "obj": Fraction(1, 3)}, evil)
    with pytest.raises(PriorLoadError, match="weights-only"):
        sips.convert_official(evil, config, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_convert_unknown_config_field_is_clear(tmp_path, reference, tiny_reference_kwargs):
    pt, config = _official_files(tmp_path, reference, tiny_reference_kwargs, True)
    config.write_text(json.dumps({"model_kwargs": {**tiny_reference_kwargs, "wormholes": 3}}))
    with pytest.raises(PriorLoadError, match="wormholes"):
        sips.convert_official(pt, config, tmp_path / "never")


def test_save_load_round_trip(tmp_path, tiny_prior, golden_io):
    folder = tiny_prior.save_pretrained(tmp_path / "p")
    config = json.loads((folder / "config.json").read_text())
    assert config["library"] == "sips" and config["channel_mult"] == [1, 2, 2]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sips") and "pipeline_tag: audio-to-audio" in card
    loaded = sips.ScorePrior.from_pretrained(folder)
    assert loaded.config == tiny_prior.config
    assert torch.equal(loaded(golden_io["x"], golden_io["t"]), tiny_prior(golden_io["x"], golden_io["t"]))
    assert sips.load_prior(folder).config == tiny_prior.config


def test_weights_that_do_not_fit_the_config(tmp_path, tiny_prior):
    folder = tiny_prior.save_pretrained(tmp_path / "p")
    config = json.loads((folder / "config.json").read_text())
    config["model_channels"] = 12
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PriorLoadError, match="do not fit the configuration"):
        sips.ScorePrior.from_pretrained(folder)


def test_loading_is_strict_about_extra_keys(tmp_path, tiny_prior):
    folder = tiny_prior.save_pretrained(tmp_path / "p")
    state = load_file(str(folder / "model.safetensors"))
    state["unet.extra"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(PriorLoadError, match="1 unexpected"):
        sips.ScorePrior.from_pretrained(folder)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: (f / "model.safetensors").unlink(), "no model.safetensors"),
        (lambda f: (f / "config.json").write_text('{"model_type": "bert"}'), "not a sips prior"),
        (lambda f: (f / "config.json").write_text("{not json"), "Cannot read"),
        (lambda f: (f / "model.safetensors").write_bytes(b"\x80\x04pickle"), "safetensors"),
    ],
    ids=["missing-weights", "other-library", "bad-json", "not-safetensors"],
)
def test_broken_prior_folders(tmp_path, tiny_prior, mutate, message):
    folder = tiny_prior.save_pretrained(tmp_path / "p")
    mutate(folder)
    with pytest.raises(PriorLoadError, match=message):
        sips.ScorePrior.from_pretrained(folder)


def test_missing_prior_folder():
    with pytest.raises(PriorLoadError, match="not found"):
        sips.load_prior("/nonexistent/prior")


def test_embedded_prior_loads_offline():
    prior = sips.load_prior()
    assert prior.config.sample_rate == 16000 and not prior.training
    x = torch.randn(1, 2, 256, prior.config.frame_multiple)
    z, logvar = prior(x, torch.tensor([0.5]), return_logvar=True)
    assert z.shape == x.shape and torch.isfinite(z).all() and logvar.shape == (1, 1, 1, 1)
