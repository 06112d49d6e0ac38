"""Comparing a refinement with its predictor: ``sips refine --write-estimates`` and its summary
line, and how ``sips eval`` / ``sips report`` pair what it writes (by relative path, refusing a
reference that is the estimate's own noisy input)."""

import numpy as np
import pytest
import soundfile as sf
import torch

import sips
from sips.cli import main

from conftest import noisy, speech_like, write_wav


@pytest.fixture(scope="module")
def prior_dir(small_prior, tmp_path_factory):
    return str(small_prior.save_pretrained(tmp_path_factory.mktemp("prior") / "tiny"))


class _Halves:
    """A "separator" at 16 kHz: the first and the second half of the mixture (exact sources)."""

    sample_rate, n_src = 16000, 2

    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        first = torch.zeros_like(mixture)
        first[..., : mixture.shape[-1] // 2] = 1
        return torch.stack([mixture * first, mixture * (1 - first)], dim=1)


class _Tone48k:
    """An "enhancer" at 48 kHz: 0.7 x the input plus a 12 kHz tone (its upper band)."""

    sample_rate, n_src = 48000, 1

    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        t = torch.arange(mixture.shape[-1]) / self.sample_rate
        return (0.7 * mixture + 0.05 * torch.sin(2 * torch.pi * 12000 * t)).unsqueeze(1)


@pytest.fixture
def test_adapters():
    sips.register_adapter("test-halves")(_Halves)
    sips.register_adapter("test-tone48k")(_Tone48k)
    yield
    sips.predictors.unregister_adapter("test-halves")
    sips.predictors.unregister_adapter("test-tone48k")


def _mixture(seconds=0.5, seed=0, rate=16000):
    clean = speech_like(seconds, rate=rate, seed=seed)
    return clean, noisy(clean, 5.0, seed=seed + 1)


def _refine(tmp_path, *args):
    return main(["refine", *map(str, args), "--steps", "2"])


def test_estimates_are_written_beside_by_relative_path_and_change_nothing_refined(tmp_path, prior_dir, capsys):
    """Two inputs of one name in two folders: the estimates keep the relative paths of the outputs;
    the refined files are bit-identical to a run without the option; each estimate is the
    predictor's output (Wiener, an enhancer: no rescaling); every file carries the input's tag."""
    for sub, seed in (("a", 0), ("b", 5)):
        clean, mix = _mixture(seed=seed)
        write_wav(tmp_path / "IN" / sub / "x.wav", mix.numpy(), subtype="FLOAT")
        write_wav(tmp_path / "CLEAN" / sub / "x.wav", clean.numpy(), subtype="FLOAT")
    common = ["--predictor", "wiener", "--prior", prior_dir]
    assert (
        _refine(tmp_path, tmp_path / "IN", "-o", tmp_path / "OUT", "--write-estimates", tmp_path / "EST", *common) == 0
    )
    assert _refine(tmp_path, tmp_path / "IN", "-o", tmp_path / "PLAIN", *common) == 0
    for sub in ("a", "b"):
        rel = f"{sub}/x.wav"
        assert np.array_equal(sf.read(tmp_path / "OUT" / rel)[0], sf.read(tmp_path / "PLAIN" / rel)[0])
        mix, rate = sf.read(tmp_path / "IN" / rel, dtype="float32")
        estimate, est_rate = sf.read(tmp_path / "EST" / rel, dtype="float32")
        want = sips.load_predictor("wiener")(torch.from_numpy(mix)[None])[0, 0].numpy()
        assert est_rate == rate and estimate.shape == mix.shape
        np.testing.assert_allclose(estimate, want, atol=1e-5)
        digest = sips.provenance.file_digest(tmp_path / "IN" / rel)
        for folder in ("OUT", "EST"):
            assert sips.provenance.mixture_digest(tmp_path / folder / rel) == digest
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]
    capsys.readouterr()
    # eval pairs a/x with a/x and b/x with b/x (relative paths), for the estimates as for the outputs
    for folder in ("EST", "OUT"):
        assert main(["eval", str(tmp_path / "CLEAN"), str(tmp_path / folder), "--metrics", "si_sdr"]) == 0
        out = capsys.readouterr().out
        assert "(n = 2)" in out
    ref = sf.read(tmp_path / "CLEAN" / "a" / "x.wav")[0]
    crossed = sips.metrics.si_sdr(torch.tensor(sf.read(tmp_path / "EST" / "b" / "x.wav")[0]), torch.tensor(ref))
    assert float(crossed) < 0  # the other file's estimate would score below 0 dB: the pairing is by path
    # report: the estimates' folder and the outputs' folder side by side
    report = tmp_path / "REPORT"
    assert main(["report", str(tmp_path / "EST"), str(tmp_path / "OUT"), "-o", str(report), "--metrics", "none"]) == 0
    import json

    data = json.loads((report / "report.json").read_text())
    assert data["systems"] == ["EST", "OUT"] and sorted(f["name"] for f in data["files"]) == ["a/x", "b/x"]


def test_a_separators_estimates_get_the_sources_names(tmp_path, prior_dir, test_adapters, capsys):
    s1, s2 = speech_like(0.5, seed=1), 0.5 * speech_like(0.5, seed=2)
    half = s1.shape[-1] // 2
    mix = torch.cat([s1[:half], s2[half:]])  # the halves are the exact sources of this "separator"
    write_wav(tmp_path / "IN" / "m.wav", mix.numpy(), subtype="FLOAT")
    args = [tmp_path / "IN" / "m.wav", "--predictor", "test-halves", "--prior", prior_dir]
    assert _refine(tmp_path, *args, "-o", tmp_path / "OUT", "--write-estimates", tmp_path / "EST") == 0
    assert sorted(p.name for p in (tmp_path / "EST").iterdir()) == ["m_s1.wav", "m_s2.wav"]
    assert sorted(p.name for p in (tmp_path / "OUT").iterdir()) == ["m_s1.wav", "m_s2.wav"]
    first = sf.read(tmp_path / "EST" / "m_s1.wav", dtype="float32")[0]
    np.testing.assert_allclose(first[:half], mix[:half].numpy(), atol=1e-5)  # rescaled by gain 1: the source
    np.testing.assert_allclose(first[half:], 0, atol=1e-5)
    assert (
        _refine(
            tmp_path, *args, "-o", tmp_path / "PUB", "--write-estimates", tmp_path / "PEST", "--layout", "published"
        )
        == 0
    )
    assert sorted(p.relative_to(tmp_path / "PEST").as_posix() for p in (tmp_path / "PEST").rglob("*.wav")) == [
        "s1/m.wav",
        "s2/m.wav",
    ]
    write_wav(tmp_path / "REF" / "m_s1.wav", torch.cat([s1[:half], 0 * s2[half:]]).numpy(), subtype="FLOAT")
    write_wav(tmp_path / "REF" / "m_s2.wav", torch.cat([0 * s1[:half], s2[half:]]).numpy(), subtype="FLOAT")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "REF"), str(tmp_path / "EST"), "--metrics", "si_sdr"]) == 0
    si_sdr = float(capsys.readouterr().out.splitlines()[1].split()[1])
    assert si_sdr > 40  # both sources found and paired


@pytest.mark.parametrize("rate", [44100, 22050])
def test_estimates_across_rates_are_the_full_band_output_at_the_files_rate(rate, tmp_path, prior_dir, test_adapters):
    """A 48 kHz predictor on a 44.1 kHz file: the estimate written is the predictor's full-band
    output at 44.1 kHz (its 12 kHz tone kept), and with --strength 0 the refined file equals it;
    at 22.05 kHz the same holds below that file's Nyquist frequency."""
    _, mix = _mixture(0.5, rate=rate)
    write_wav(tmp_path / "IN" / "x.wav", mix.numpy(), rate=rate, subtype="FLOAT")
    args = [tmp_path / "IN" / "x.wav", "--predictor", "test-tone48k", "--prior", prior_dir, "--strength", "0"]
    assert _refine(tmp_path, *args, "-o", tmp_path / "OUT", "--write-estimates", tmp_path / "EST") == 0
    estimate, est_rate = sf.read(tmp_path / "EST" / "x.wav", dtype="float32")
    refined, _ = sf.read(tmp_path / "OUT" / "x.wav", dtype="float32")
    assert est_rate == rate and estimate.shape == mix.shape
    np.testing.assert_allclose(refined, estimate, atol=1e-5)  # strength 0: the refined output is the estimate
    t = np.arange(len(mix)) / rate
    tone = 0.05 * np.sin(2 * np.pi * 12000 * t) if rate / 2 > 12000 else 0
    error = np.fft.rfft(estimate - 0.7 * mix.numpy() - tone)
    error[np.fft.rfftfreq(len(mix), 1 / rate) > 0.85 * rate / 2] = 0  # the resamplers' transition bands
    error = np.fft.irfft(error, len(mix))
    inner = slice(len(mix) // 8, -len(mix) // 8)  # away from the resamplers' edges
    assert np.abs(error[inner]).max() < 2e-3


def test_a_16khz_predictor_on_a_44khz_file_writes_its_estimate_at_44khz(tmp_path, prior_dir):
    """The predictor at the prior's rate: the estimate is resampled back to the file's rate and
    length like the refined output, and with --strength 0 the two are equal."""
    _, mix = _mixture(0.5, rate=44100)
    write_wav(tmp_path / "IN" / "x.wav", mix.numpy(), rate=44100, subtype="FLOAT")
    args = [tmp_path / "IN" / "x.wav", "--predictor", "wiener", "--prior", prior_dir, "--strength", "0"]
    assert _refine(tmp_path, *args, "-o", tmp_path / "OUT", "--write-estimates", tmp_path / "EST") == 0
    estimate, est_rate = sf.read(tmp_path / "EST" / "x.wav", dtype="float32")
    refined, _ = sf.read(tmp_path / "OUT" / "x.wav", dtype="float32")
    assert est_rate == 44100 and estimate.shape == refined.shape == mix.shape
    np.testing.assert_allclose(refined, estimate, atol=1e-5)


def test_a_failed_write_leaves_neither_output_nor_estimate(tmp_path, prior_dir, monkeypatch, capsys):
    _, mix = _mixture()
    write_wav(tmp_path / "IN" / "x.wav", mix.numpy())

    def fail_in_est(sound, digest):
        if b"EST" in sound.name if isinstance(sound.name, bytes) else "EST" in sound.name:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(sips.provenance, "write_tag", fail_in_est)
    args = [tmp_path / "IN" / "x.wav", "-o", tmp_path / "OUT", "--write-estimates", tmp_path / "EST"]
    assert _refine(tmp_path, *args, "--predictor", "wiener", "--prior", prior_dir) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "OUT" / "x.wav").exists() and not (tmp_path / "EST" / "x.wav").exists()
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]


def test_bad_estimate_folders_are_refused_first(tmp_path, prior_dir, capsys):
    _, mix = _mixture()
    write_wav(tmp_path / "IN" / "x.wav", mix.numpy())
    src = str(tmp_path / "IN" / "x.wav")
    cases = [
        (["-o", str(tmp_path / "OUT"), "--write-estimates", str(tmp_path / "OUT")], "needs its own folder"),
        (["-o", str(tmp_path / "OUT"), "--write-estimates", str(tmp_path / "e.wav")], "audio file extension"),
        (["-o", str(tmp_path / "OUT"), "--write-estimates", str(tmp_path / "IN")], "is also an input"),
        (["-o", str(tmp_path / "OUT"), "--estimates", str(tmp_path / "IN"), "--write-estimates", "E"], "no predictor"),
    ]
    for extra, fragment in cases:
        assert main(["refine", src if "is also" not in fragment else str(tmp_path / "IN"), *extra]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert fragment in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IN"]


def test_an_estimates_folder_inside_the_input_is_not_refined_on_a_rerun(tmp_path, prior_dir, capsys):
    _, mix = _mixture()
    write_wav(tmp_path / "IN" / "x.wav", mix.numpy())
    args = [tmp_path / "IN", "-o", tmp_path / "IN" / "out", "--write-estimates", tmp_path / "IN" / "est"]
    common = ["--predictor", "wiener", "--prior", prior_dir]
    assert _refine(tmp_path, *args, *common) == 0
    assert _refine(tmp_path, *args, *common, "--overwrite") == 0
    assert not (tmp_path / "IN" / "out" / "est").exists() and not (tmp_path / "IN" / "out" / "out").exists()
    assert sorted(p.relative_to(tmp_path / "IN").as_posix() for p in (tmp_path / "IN").rglob("*.wav")) == [
        "est/x.wav",
        "out/x.wav",
        "x.wav",
    ]
    # resuming: an input whose output exists but whose estimate does not is refined again
    (tmp_path / "IN" / "est" / "x.wav").unlink()
    capsys.readouterr()
    assert _refine(tmp_path, *args, *common) == 0
    assert (tmp_path / "IN" / "est" / "x.wav").is_file() and "skipped" not in capsys.readouterr().err


def test_one_summary_line_says_what_ran(tmp_path, prior_dir, capsys):
    clean, mix = _mixture(0.5)
    write_wav(tmp_path / "IN" / "x.wav", mix.numpy())
    write_wav(tmp_path / "IN" / "y.wav", mix.numpy())
    assert (
        _refine(tmp_path, tmp_path / "IN", "-o", tmp_path / "OUT", "--predictor", "wiener", "--prior", prior_dir) == 0
    )
    (line,) = capsys.readouterr().err.strip().splitlines()  # stderr is no terminal here: no bar, just the line
    assert line.startswith("sips: refined 2 files (1.00 s of audio) with predictor wiener and prior ")
    assert "(heun 2 steps, kappa 0)" in line and "s wall time" in line and "RTF " in line
    assert _refine(tmp_path, tmp_path / "IN", "-o", tmp_path / "QUIET", "--prior", prior_dir, "--quiet") == 0
    assert capsys.readouterr().err == ""
    write_wav(tmp_path / "EST" / "x.wav", clean.numpy())
    args = [tmp_path / "IN" / "x.wav", "-o", tmp_path / "O2", "--estimates", tmp_path / "EST", "--kappa", "0.5"]
    assert _refine(tmp_path, *args) == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"with estimates from {tmp_path / 'EST'} and the embedded prior (euler 2 steps, kappa 0.5)" in line
    assert (
        _refine(tmp_path, tmp_path / "IN", "-o", tmp_path / "OUT", "--predictor", "wiener", "--prior", prior_dir) == 0
    )
    (line,) = capsys.readouterr().err.strip().splitlines()  # nothing refined: the skip line says why, no summary
    assert line.startswith("skipped 2 input(s)")


def test_eval_refuses_the_estimates_own_mixture_as_reference(tmp_path, prior_dir, capsys):
    """`sips eval examples out` after refining examples/noisy.wav into out/: out/noisy.wav is matched
    by name with examples/noisy.wav, its own input. Refused in one sentence (exit 2), also when the
    input was copied elsewhere (by content), for the written estimates too; the clean reference,
    given as two files, is scored."""
    clean, mix = _mixture()
    write_wav(tmp_path / "examples" / "noisy.wav", mix.numpy())
    write_wav(tmp_path / "examples" / "clean.wav", clean.numpy())
    common = ["--predictor", "wiener", "--prior", prior_dir]
    src = tmp_path / "examples" / "noisy.wav"
    assert _refine(tmp_path, src, "-o", tmp_path / "out", "--write-estimates", tmp_path / "pred", *common) == 0
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "noisy.wav").write_bytes(src.read_bytes())
    capsys.readouterr()
    for ref, est in (("examples", "out"), ("copy", "out"), ("examples", "pred"), ("copy/noisy.wav", "out/noisy.wav")):
        assert main(["eval", str(tmp_path / ref), str(tmp_path / est), "--metrics", "si_sdr"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        est_file, ref_file = (tmp_path / p if p.endswith(".wav") else tmp_path / p / "noisy.wav" for p in (est, ref))
        assert f"{est_file} was refined from {ref_file}," in line, line
        assert "not a clean reference" in line and "sips eval CLEAN.wav ESTIMATE.wav" in line
    for est in ("out", "pred"):
        assert (
            main(["eval", str(src.parent / "clean.wav"), str(tmp_path / est / "noisy.wav"), "--metrics", "si_sdr"]) == 0
        )
        assert "(n = 1)" in capsys.readouterr().out
    assert main(["eval", str(src.parent / "clean.wav"), str(src), "--metrics", "si_sdr"]) == 0  # the input, scored
    # a file paired with itself, and a file with a folder
    assert main(["eval", str(tmp_path / "examples"), str(tmp_path / "copy"), "--metrics", "si_sdr"]) == 2
    assert "holds the same bytes as its reference" in capsys.readouterr().err
    assert main(["eval", str(src), str(tmp_path / "out"), "--metrics", "si_sdr"]) == 2
    assert "two folders (matched by relative path) or two files" in capsys.readouterr().err
    # the report refuses the mixture as --reference too
    args = ["report", str(tmp_path / "out" / "noisy.wav"), "--reference", str(src), "-o", str(tmp_path / "r")]
    assert main([*args, "--metrics", "none"]) == 2
    assert "so --reference would show its noisy input as the clean one" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_report_of_single_files_names_systems_after_their_folders(tmp_path, prior_dir):
    clean, mix = _mixture()
    write_wav(tmp_path / "examples" / "noisy.wav", mix.numpy())
    write_wav(tmp_path / "examples" / "clean.wav", clean.numpy())
    src = tmp_path / "examples" / "noisy.wav"
    common = ["--predictor", "wiener", "--prior", prior_dir]
    assert _refine(tmp_path, src, "-o", tmp_path / "refined", "--write-estimates", tmp_path / "predictor", *common) == 0
    files = [src, tmp_path / "predictor" / "noisy.wav", tmp_path / "refined" / "noisy.wav"]
    args = ["report", *map(str, files), "--reference", str(tmp_path / "examples" / "clean.wav")]
    assert main([*args, "-o", str(tmp_path / "report"), "--metrics", "si_sdr"]) == 0
    import json

    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["systems"] == ["examples", "predictor", "refined"] and [f["name"] for f in data["files"]] == ["noisy"]
    assert set(data["summary"]["refined"]) >= {"si_sdr"}
    assert main(["report", str(src), str(tmp_path / "refined"), "-o", str(tmp_path / "mixed")]) == 2
