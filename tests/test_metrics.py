"""SI-SDR against known values; permutation-invariant scoring; the shared strict state-dict check."""

import math

import pytest
import torch

import sips.evaluation.metrics as M
from sips.errors import AdapterError
from sips.evaluation.metrics import pit_si_sdr, si_sdr
from sips.pretrained.weights import load_strict, state_dict_mismatch

from conftest import noisy, speech_like


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


# --- perceptual metrics and folder evaluation ---------------------------------------------------


def _speech_and_noisy(snr, seconds=3.0):
    clean = speech_like(seconds, seed=5)
    return clean, noisy(clean, snr, seed=6)


def test_si_sdr_equals_torchmetrics():
    from torchmetrics.functional import scale_invariant_signal_distortion_ratio

    clean, degraded = _speech_and_noisy(5.0)
    expected = scale_invariant_signal_distortion_ratio(degraded, clean, zero_mean=True)
    assert float(si_sdr(degraded, clean)) == pytest.approx(float(expected), abs=1e-3)


def test_pesq_and_estoi_rank_noise_levels():
    from sips.evaluation.metrics import estoi, pesq_wb

    clean, mild = _speech_and_noisy(20.0)
    _, harsh = _speech_and_noisy(-5.0)
    assert pesq_wb(clean, clean) > 4.4
    assert pesq_wb(clean, clean) > pesq_wb(mild, clean) > pesq_wb(harsh, clean)
    assert estoi(clean, clean) == pytest.approx(1.0, abs=1e-6)
    assert estoi(mild, clean) > estoi(harsh, clean)
    with pytest.raises(ValueError, match="16000 Hz"):
        pesq_wb(clean, clean, sample_rate=8000)


def test_dnsmos_runs_offline_and_prefers_clean_speech(monkeypatch):
    from sips.evaluation.metrics import dnsmos

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clean, harsh = _speech_and_noisy(-5.0, seconds=4.0)
    good, bad = dnsmos(clean), dnsmos(harsh)
    assert set(good) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in good.values())
    assert good["dnsmos_bak"] > bad["dnsmos_bak"]


def test_mean_and_confidence_interval():
    from sips.evaluation.metrics import mean_ci

    mean, half = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and half == pytest.approx(3.182 * 1.2909944 / 2, abs=1e-4)
    assert mean_ci([2.0])[0] == 2.0 and math.isnan(mean_ci([2.0])[1])
    assert math.isnan(mean_ci([])[0])


@pytest.fixture
def folders(tmp_path):
    from conftest import write_wav

    ref, est = tmp_path / "ref", tmp_path / "est"
    clean, degraded = _speech_and_noisy(10.0, seconds=1.0)
    write_wav(ref / "a.wav", clean.numpy())
    write_wav(est / "a.wav", degraded.numpy())
    # a separated item, estimates swapped and 8 kHz references
    import soxr

    s1, s2 = speech_like(1.0, seed=11), 0.5 * speech_like(1.0, seed=12)
    write_wav(ref / "sub" / "b_s1.wav", soxr.resample(s1.numpy(), 16000, 8000), rate=8000)
    write_wav(ref / "sub" / "b_s2.wav", soxr.resample(s2.numpy(), 16000, 8000), rate=8000)
    write_wav(est / "sub" / "b_s1.wav", s2.numpy())
    write_wav(est / "sub" / "b_s2.wav", s1.numpy())
    write_wav(ref / "only_ref.wav", clean.numpy())
    return ref, est


def test_evaluate_folders_matches_and_permutes(folders, tmp_path, monkeypatch):
    from sips.evaluation.evaluate import evaluate_folders

    monkeypatch.delenv("SIPS_NISQA_WEIGHTS", raising=False)

    ref, est = folders
    items, summary, problems = evaluate_folders(ref, est, ["si_sdr", "estoi", "nisqa"], tmp_path / "s.csv")
    scores = {i.name: i.scores for i in items}
    assert set(scores) == {"a", "sub/b"}
    assert scores["a"]["si_sdr"] == pytest.approx(10.0, abs=0.5)
    assert scores["sub/b"]["si_sdr"] > 20  # swapped back by the permutation; resampling limits it
    assert "only_ref: no estimate" in problems and any(p.startswith("nisqa: ") for p in problems)
    assert list(summary) == ["si_sdr", "estoi", "nisqa"] and math.isnan(summary["nisqa"][0])
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "item,si_sdr,estoi,nisqa,notes" and len(rows) == 3


def test_cli_eval_prints_and_fails_cleanly(folders, tmp_path, capsys):
    from sips.cli import main

    ref, est = folders
    assert main(["eval", str(ref), str(est), "--metrics", "si_sdr", "pesq", "--csv", str(tmp_path / "o.csv")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("metric") and "pesq" in out and (tmp_path / "o.csv").is_file()
    assert main(["eval", str(ref), str(est), "--metrics", "mosnet"]) == 2
    assert "--metrics: invalid choice: 'mosnet'" in capsys.readouterr().err
    assert main(["eval", str(ref), str(tmp_path / "missing")]) == 2


# --- NISQA: only with local weights. No real weights can be fetched here, so the checks use a
# randomly initialised NISQA_DIM checkpoint and compare with the nisqa package's own file prediction.

NISQA_FEATURES = {
    "ms_sr": 48000,
    "ms_fmax": 20000,
    "ms_n_fft": 4096,
    "ms_hop_length": 0.01,
    "ms_win_length": 0.02,
    "ms_n_mels": 48,
    "ms_seg_length": 15,
    "ms_seg_hop_length": 4,
    "ms_max_segments": 1300,
    "ms_channel": None,
}


@pytest.fixture
def nisqa_checkpoint(tmp_path, monkeypatch):
    lib = pytest.importorskip("nisqa.NISQA_lib")
    import inspect

    torch.manual_seed(0)
    defaults = {k: p.default for k, p in inspect.signature(lib.NISQA_DIM).parameters.items()}
    model = lib.NISQA_DIM(**defaults)
    # pooling heads start near zero: move them so that different inputs give different scores
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    path = tmp_path / "nisqa.tar"
    torch.save(
        {"args": {"model": "NISQA_DIM", **defaults, **NISQA_FEATURES}, "model_state_dict": model.state_dict()}, path
    )
    monkeypatch.setenv("SIPS_NISQA_WEIGHTS", str(path))
    return path


def test_nisqa_reports_why_it_cannot_run(tmp_path, monkeypatch):
    from sips.errors import MissingDependencyError
    from sips.evaluation.metrics import nisqa, nisqa_unavailable_reason

    monkeypatch.delenv("SIPS_NISQA_WEIGHTS", raising=False)
    assert "SIPS_NISQA_WEIGHTS" in nisqa_unavailable_reason()
    monkeypatch.setenv("SIPS_NISQA_WEIGHTS", str(tmp_path / "none.tar"))
    assert "missing file" in nisqa_unavailable_reason()
    with pytest.raises(MissingDependencyError, match="NISQA cannot run"):
        nisqa(speech_like(0.5))


def test_nisqa_matches_the_packages_own_prediction(nisqa_checkpoint, tmp_path):
    from nisqa.NISQA_model import nisqaModel

    from sips.evaluation.metrics import nisqa, nisqa_unavailable_reason

    from conftest import write_wav

    assert nisqa_unavailable_reason() is None
    clean, degraded = _speech_and_noisy(0.0, seconds=2.0)
    degraded = 0.9 * degraded / degraded.abs().max()
    ours = nisqa(degraded)
    assert set(ours) == {"nisqa", "nisqa_noi", "nisqa_dis", "nisqa_col", "nisqa_loud"}
    write_wav(tmp_path / "deg.wav", degraded.numpy(), subtype="FLOAT")
    args = {"mode": "predict_file", "pretrained_model": str(nisqa_checkpoint), "deg": str(tmp_path / "deg.wav")}
    args.update(output_dir=None, tr_bs_val=1, tr_num_workers=0, tr_parallel=False, tr_device="cpu", ms_channel=None)
    theirs = nisqaModel(args).predict().iloc[0]
    for col, name in (("mos_pred", "nisqa"), ("noi_pred", "nisqa_noi"), ("loud_pred", "nisqa_loud")):
        assert ours[name] == pytest.approx(float(theirs[col]), abs=1e-4)
    assert ours["nisqa"] != pytest.approx(nisqa(clean)["nisqa"], abs=1e-6)


def test_nisqa_column_in_eval_and_unsafe_checkpoint_refused(nisqa_checkpoint, folders, tmp_path, monkeypatch):
    from sips.errors import SipsError
    from sips.evaluation.evaluate import evaluate_folders
    from sips.evaluation.metrics import nisqa

    ref, est = folders
    items, summary, problems = evaluate_folders(ref, est, ["si_sdr", "nisqa"])
    assert "nisqa" in summary and "nisqa_loud" in summary and math.isfinite(summary["nisqa"][0])
    assert not any(p.startswith("nisqa: ") for p in problems)
    unsafe = tmp_path / "unsafe.tar"
    torch.save({"args": {"model": "NISQA_DIM"}, "model_state_dict": {}, "extra": math.nan.__class__}, unsafe)
    monkeypatch.setenv("SIPS_NISQA_WEIGHTS", str(unsafe))
    with pytest.raises(
        SipsError, match=r"NISQA checkpoint .* holds Python objects besides tensors \(builtins\.float\)"
    ):
        nisqa(speech_like(0.5))


def test_a_missing_metric_package_names_the_metric_and_the_extra(monkeypatch, tmp_path, capsys):
    """Python names the metric, the package and the extra; ``sips eval`` says the same in one line
    with the CLI's --metrics (exit 2)."""
    import sys

    from sips.cli import main
    from sips.errors import MissingDependencyError

    from conftest import write_wav

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        M.dnsmos(speech_like(0.5))
    text = str(info.value)
    assert "metric dnsmos" in text and "onnxruntime" in text and "pip install 'sips-prior[eval]'" in text
    assert "metrics=" in text and "\n" not in text
    clean = speech_like(0.5)
    write_wav(tmp_path / "ref" / "x.wav", clean.numpy())
    write_wav(tmp_path / "est" / "x.wav", 0.9 * clean.numpy())
    assert main(["eval", str(tmp_path / "ref"), str(tmp_path / "est"), "--metrics", "si_sdr", "dnsmos"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "The metric dnsmos needs the package onnxruntime" in line and "--metrics" in line
    assert "metrics=" not in line
