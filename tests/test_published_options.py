"""Options of the published SIPS pipeline: predictor post-processing and the ``s1/``, ``s2/`` layout."""

import numpy as np
import pytest
import soundfile as sf
import torch

import sips
from sips.cli import main
from sips.errors import OptionError
from sips.io.files import output_paths, refine_estimate_files, refine_file, source_path

from conftest import noisy, speech_like, write_wav


@pytest.fixture(scope="module")
def wiener():
    return sips.load_predictor("wiener")


@pytest.fixture(scope="module")
def prior_dir(small_prior, tmp_path_factory):
    return small_prior.save_pretrained(tmp_path_factory.mktemp("prior") / "tiny")


class Recorder:
    """A linear enhancer (half the input) that records the length of every call."""

    sample_rate, n_src = 16000, 1

    def __init__(self):
        self.lengths = []

    def __call__(self, mixture):
        self.lengths.append(mixture.shape[-1])
        return 0.5 * mixture.unsqueeze(1)


# -- postprocess ---------------------------------------------------------------------------------
def test_postprocess_returns_the_predictor_on_the_refined_signal(small_prior, wiener):
    mixture = noisy(speech_like(1.0), 5.0)
    refined = sips.refine(wiener, mixture, prior=small_prior, steps=3)
    post = sips.refine(wiener, mixture, prior=small_prior, steps=3, postprocess=True)
    assert post.shape == refined.shape == (1, 16000)
    torch.testing.assert_close(post, wiener(refined)[0], atol=1e-6, rtol=0)
    assert (post - refined).abs().max() > 1e-3  # the second pass changes something


def test_postprocess_runs_per_window_before_the_cross_fade(small_prior):
    mixture = noisy(speech_like(2.0), 5.0)
    kwargs = dict(prior=small_prior, steps=2, chunk_seconds=0.5, overlap_seconds=0.1)
    plain, post = Recorder(), Recorder()
    refined = sips.refine(plain, mixture, **kwargs)
    out = sips.refine(post, mixture, **kwargs, postprocess=True)
    window = 8000
    assert set(plain.lengths) == {window} and len(plain.lengths) > 1
    assert post.lengths == [window] * (2 * len(plain.lengths))  # drift, then the refined window
    # The cross-fade is linear and the predictor halves: exactly half the refined signal.
    assert torch.equal(out, 0.5 * refined)


def test_postprocess_is_refused_for_separators(small_prior):
    mixture = noisy(speech_like(0.5), 5.0)
    declared = sips.as_predictor(lambda x: torch.stack([x, 0.5 * x], dim=1), n_src=2)
    with pytest.raises(OptionError, match="enhancement predictors only; this one separates 2"):
        sips.refine(declared, mixture, prior=small_prior, steps=1, postprocess=True)
    found_at_run_time = sips.as_predictor(lambda x: torch.stack([x, 0.5 * x], dim=1))
    with pytest.raises(OptionError, match="enhancement predictors only"):
        sips.refine(found_at_run_time, mixture, prior=small_prior, steps=1, postprocess=True)
    with pytest.raises(OptionError, match="True or False"):
        sips.refine(Recorder(), mixture, prior=small_prior, steps=1, postprocess="yes")


def test_file_layer_postprocess(tmp_path, small_prior, wiener):
    mixture = noisy(speech_like(0.5), 5.0)
    src = write_wav(tmp_path / "x.wav", mixture.numpy(), subtype="FLOAT")
    written = refine_file(wiener, src, tmp_path / "out" / "x.wav", prior=small_prior, steps=2, postprocess=True)
    expected = sips.refine(
        wiener, torch.from_numpy(sf.read(src, dtype="float32")[0]), prior=small_prior, steps=2, postprocess=True
    )
    np.testing.assert_allclose(sf.read(written[0], dtype="float32")[0], expected[0].numpy(), atol=1e-6)
    with pytest.raises(OptionError, match="needs a predictor"):
        refine_estimate_files([src], src, tmp_path / "est" / "x.wav", prior=small_prior, postprocess=True)
    assert not (tmp_path / "est").exists()


def test_cli_postprocess(tmp_path, prior_dir, wiener):
    src = write_wav(tmp_path / "in" / "x.wav", noisy(speech_like(0.5), 5.0).numpy(), subtype="FLOAT")
    args = ["refine", str(src), "--prior", str(prior_dir), "--steps", "2", "--predictor", "wiener"]
    assert main([*args, "-o", str(tmp_path / "plain")]) == 0
    assert main([*args, "-o", str(tmp_path / "post"), "--postprocess"]) == 0
    refined = torch.from_numpy(sf.read(tmp_path / "plain" / "x.wav", dtype="float32")[0])
    post = sf.read(tmp_path / "post" / "x.wav", dtype="float32")[0]
    np.testing.assert_allclose(post, wiener(refined[None])[0, 0].numpy(), atol=1e-5)


# -- layout --------------------------------------------------------------------------------------
def test_output_paths_layouts(tmp_path):
    out = tmp_path / "sub" / "m.wav"
    assert output_paths(out, 1, "published") == [out]
    assert output_paths(out, 2) == [out.with_name("m_s1.wav"), out.with_name("m_s2.wav")]
    assert output_paths(out, 2, "published") == [tmp_path / "sub" / "s1" / "m.wav", tmp_path / "sub" / "s2" / "m.wav"]
    with pytest.raises(OptionError, match="layout must be one of suffix, published"):
        output_paths(out, 2, "flat")


def test_cli_published_layout_for_estimates_and_outputs(tmp_path, prior_dir, capsys):
    s1, s2 = speech_like(0.5, seed=1), speech_like(0.5, seed=2) * 0.5
    for rel, other in (("m.wav", s2), ("sub/n.wav", -s2)):
        write_wav(tmp_path / "mix" / rel, (s1 + other).numpy())
        for k, source in ((1, s1), (2, other)):  # estimates in the published folders too
            write_wav(source_path(tmp_path / "est" / rel, k, "published"), source.numpy())
    args = ["refine", str(tmp_path / "mix"), "-o", str(tmp_path / "out"), "--estimates", str(tmp_path / "est")]
    args += ["--prior", str(prior_dir), "--steps", "2", "--layout", "published"]
    assert main(args) == 0
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.wav"))
    assert written == ["s1/m.wav", "s2/m.wav", "sub/s1/n.wav", "sub/s2/n.wav"]
    assert main(args) == 0 and "skipped 2 input(s)" in capsys.readouterr().err  # found again: resumable
    # The suffix layout (the default) does not read the published folders.
    default = [a for a in args if a not in ("--layout", "published")]
    default[default.index(str(tmp_path / "out"))] = str(tmp_path / "out2")
    assert main(default) == 2
    assert "m_s1.wav" in capsys.readouterr().err
