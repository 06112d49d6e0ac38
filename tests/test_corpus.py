"""Corpus mixtures (seeded, at the requested SNR, two different speakers) and the predictor fit loop."""

import json

import pytest
import torch

from sips.corpus import MixtureBank, snr_scale
from sips.errors import TrainingError
from sips.fit import fit

from conftest import noisy, speech_like, write_wav


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for split in ("train", "valid"):
        for k, speaker in enumerate(["src_a", "src_b", "other_c"]):
            for j in range(2):
                write_wav(root / "clean" / split / speaker / f"{j}.wav", speech_like(1.0, seed=10 * k + j).numpy())
    g = torch.Generator().manual_seed(0)
    write_wav(root / "noise" / "train" / "hum" / "n.wav", (0.1 * torch.randn(24000, generator=g)).numpy())
    return root


def _snr(clean, mixture):
    return 10 * torch.log10(clean.square().mean(-1) / (mixture - clean).square().mean(-1))


def test_noisy_mixtures_hit_the_requested_snr(corpus):
    bank = MixtureBank(corpus, "train")
    mix, clean = bank.noisy(6, 8000, torch.Generator().manual_seed(1), snr_db=(5.0, 5.0))
    assert mix.shape == clean.shape == (6, 8000)
    assert torch.allclose(_snr(clean, mix), torch.full((6,), 5.0), atol=1e-3)


def test_mixtures_are_reproducible_by_seed(corpus):
    bank = MixtureBank(corpus, "train")
    a = bank.noisy(3, 4000, torch.Generator().manual_seed(7))
    b = bank.noisy(3, 4000, torch.Generator().manual_seed(7))
    c = bank.noisy(3, 4000, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_two_speaker_mixtures_sum_their_sources(corpus):
    bank = MixtureBank(corpus, "train", sources=["src_"])
    assert bank.names == ["src_a", "src_b"]
    mix, sources = bank.two_speakers(4, 4000, torch.Generator().manual_seed(2), sir_db=(3.0, 3.0))
    assert sources.shape == (4, 2, 4000) and torch.allclose(mix, sources.sum(1))
    level = 10 * torch.log10(sources[:, 0].square().mean(-1) / sources[:, 1].square().mean(-1))
    assert torch.allclose(level, torch.full((4,), 3.0), atol=1e-3)


def test_missing_noise_split_and_sources_are_clear(corpus):
    with pytest.raises(TrainingError, match="no noise folder"):
        MixtureBank(corpus, "valid").noisy(1, 100, torch.Generator())
    assert MixtureBank(corpus, "valid", noise_split="train").noise is not None
    with pytest.raises(TrainingError, match="No folders of the sources nobody"):
        MixtureBank(corpus, "train", sources=["nobody"])


def test_snr_scale_inverts_the_definition():
    clean = speech_like(0.25)
    noise = noisy(clean, 0.0) - clean
    gain = snr_scale(clean[None], noise[None], torch.tensor([-3.0]))
    assert torch.allclose(_snr(clean, clean + gain[0] * noise), torch.tensor(-3.0), atol=1e-4)


def _regression(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 1)


def _batch(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def _mse(model, b):
    return (model(b[0]) - b[1]).square().mean()


def test_fit_learns_and_keeps_the_best_weights(tmp_path):
    model = _regression()
    valid = [_batch(10_000)]
    first = float(_mse(model, valid[0]).detach())
    state = fit(
        model, _batch, _mse, tmp_path, steps=300, valid=valid, lr=0.05, warmup=10, valid_every=50, progress=False
    )
    assert state["step"] == 300 and state["best_valid"] < first / 100
    assert len(state["valid_history"]) == 6
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()][-1] == 300


def test_fit_resume_equals_an_uninterrupted_run(tmp_path):
    straight = _regression()
    fit(straight, _batch, _mse, tmp_path / "a", steps=40, lr=0.05, warmup=5, checkpoint_every=10, progress=False)
    resumed = _regression()
    calls = []

    def stop_after_17(step):
        calls.append(step)
        if step == 17:
            raise KeyboardInterrupt
        return _batch(step)

    with pytest.raises(KeyboardInterrupt):
        fit(
            resumed,
            stop_after_17,
            _mse,
            tmp_path / "b",
            steps=40,
            lr=0.05,
            warmup=5,
            checkpoint_every=10,
            progress=False,
        )
    resumed = _regression(seed=99)  # a fresh process: the weights come from the checkpoint
    state = fit(resumed, _batch, _mse, tmp_path / "b", steps=40, lr=0.05, warmup=5, checkpoint_every=10, progress=False)
    assert state["step"] == 40
    for key, value in straight.state_dict().items():
        assert torch.allclose(resumed.state_dict()[key], value, atol=1e-6), key


def test_held_out_voices_pool_all_their_splits(corpus):
    from sips.corpus import voice_folders

    folders = voice_folders(corpus, ("train", "valid"), ["src_a", "other"])
    assert list(folders) == ["other_c", "src_a"] and all(len(v) == 2 for v in folders.values())
    bank = MixtureBank(corpus, ("train", "valid"), ["src"], noise_split="train")
    assert bank.names == ["src_a", "src_b"] and len(bank.speakers["src_a"]) == 4
    with pytest.raises(TrainingError, match="noise_split"):
        MixtureBank(corpus, ("train", "valid"), ["src"])


def _recipe_sources(path):
    import ast

    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SOURCES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"no SOURCES in {path}")


def test_no_training_recipe_sees_a_held_out_voice():
    """Speaker-disjoint evaluation: the test and validation voices are never trained on."""
    import re
    from pathlib import Path

    from sips.corpus import TEST_VOICES, TRAIN_SOURCES, VALID_VOICES

    root = Path(__file__).resolve().parents[1]
    held_out = set(TEST_VOICES) | set(VALID_VOICES)
    assert not set(TEST_VOICES) & set(VALID_VOICES) and len(TEST_VOICES) >= 3
    assert not any(v.startswith(TRAIN_SOURCES) for v in held_out)
    recipes = [root / "adapters/semamba/recipes/train_small.py", root / "adapters/asteroid/recipes/train_convtasnet.py"]
    for recipe in recipes:
        for source in _recipe_sources(recipe):
            assert source.startswith(TRAIN_SOURCES), (recipe, source)
    script = (root / "priors/sips-cpu-16k/train.sh").read_text()
    trained = re.findall(r"clean/\$split/(\w+)_\*", script) + re.findall(r"clean/train/(\w+)_\*", script)
    assert trained and all(s.startswith(TRAIN_SOURCES) for s in trained)
