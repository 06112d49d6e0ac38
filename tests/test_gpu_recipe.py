"""The GPU recipe (priors/gpu): data pack, the one training command (rehearsed on the CPU), finish.

The rehearsal runs ``priors/gpu/train_all.sh`` exactly as the GPU lease will, with
``REHEARSAL=1`` (tiny batches, a few seconds of budget, ``cpu``), on a pack built from a
synthetic corpus laid out like ``shared/data/build_corpus.py``'s. It fails on anything that
would make the GPU run fail: a typo in the command lines, a recipe option, bf16 autocast, the
batch workers, a snapshot that cannot be read, a finished folder that the loaders refuse.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

import sips
from sips.training.corpus import TEST_VOICES

from conftest import speech_like, write_wav

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "priors" / "gpu"
TRAIN_VOICES = ("festvox_ru_msu_ru_nsh", "fillets_cs_m", "fillets_nl_v", "nexuiz_tutorial", "klettres_de")
VALID = ("tuxpaint_be", "tuxpaint_ca", "tuxpaint_fr", "tuxpaint_da")
# never packed: a CC-BY-SA voice (another licence), a KDE voice set in a held-out voice's language
OTHERS = ("asterisk_en_US_f_Allison", "klettres_fr", TEST_VOICES[0])
CAP = 0.05  # minutes per training voice: 3 s, so 3 of each voice's 6 files of 1.2 s


def _corpus(root: Path) -> Path:
    """A corpus of synthetic voices in every role: training, validation, test and other sources."""
    seed = 0
    for split in ("train", "valid", "test"):
        for voice in (*TRAIN_VOICES, *VALID, *OTHERS):
            for i in range(2):
                seed += 1
                write_wav(root / "clean" / split / voice / f"{i}.wav", speech_like(1.2, seed=seed).numpy())
    g = torch.Generator().manual_seed(0)
    for split in ("train", "test"):
        write_wav(root / "noise" / split / "hum" / "n.wav", (0.1 * torch.randn(40000, generator=g)).numpy())
    return root


def _run(args, env=None, timeout=900):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT}/adapters/semamba:{ROOT}/adapters/asteroid", **(env or {})}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _pack(corpus: Path, pack: Path, *options: str):
    return _run([sys.executable, str(GPU / "pack.py"), str(corpus), str(pack), "--workers", "1", *options])


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    corpus = _corpus(tmp_path_factory.mktemp("corpus"))
    pack = tmp_path_factory.mktemp("pack")
    done = _pack(corpus, pack, "--voice-minutes", str(CAP))
    assert done.returncode == 0, done.stderr
    return corpus, pack


def test_the_pack_holds_capped_training_voices_and_validation_voices_as_opus_and_nothing_else(pack):
    corpus, pack = pack
    packed = {p.relative_to(pack).with_suffix("") for p in pack.rglob("*.opus")}
    voices = {p.parts[2] for p in packed if p.parts[0] == "clean"}
    assert voices == {*TRAIN_VOICES, *VALID}  # no other licence, no held-out language, no test voice
    assert {p.parts[1] for p in packed if p.parts[0] == "noise"} == {"train"}  # the test noise stays out
    assert {p.parts[1] for p in packed if p.parts[2] in VALID} == {"valid", "test"}
    summary = json.loads((pack / "PACK.json").read_text())
    for voice in TRAIN_VOICES:  # capped: the first files past 3 s, drawn from every split
        assert sum(p.parts[2] == voice for p in packed) == 3
        assert summary["voices"]["train"][voice] == pytest.approx(3 * 1.2 / 60, abs=0.01)
    assert len({p.parts[1] for p in packed if p.parts[2] in TRAIN_VOICES}) > 1
    assert sorted(summary["voices"]["valid"]) == sorted(VALID)
    assert summary["parts"]["training voices"]["files"] == len(TRAIN_VOICES) * 3
    files = [p for p in packed if p.parts[0] == "noise" or p.parts[2] in TRAIN_VOICES]
    for name in (files[0], Path("noise/train/hum/n")):
        original, rate = sf.read(corpus / f"{name}.wav", dtype="float32")
        decoded, decoded_rate = sf.read(pack / f"{name}.opus", dtype="float32")
        assert decoded_rate == rate and decoded.shape == original.shape  # same crops on either
        if name.parts[0] == "clean":  # speech survives (white noise loses its top band at 26 kbit/s)
            assert 10 * torch.log10(torch.tensor((original**2).sum() / ((original - decoded) ** 2).sum())) > 10


def test_a_rebuild_keeps_encoded_files_and_drops_what_the_plan_no_longer_holds(pack, tmp_path):
    corpus, _ = pack
    done = _pack(corpus, tmp_path / "p", "--voice-minutes", "1")
    assert done.returncode == 0, done.stderr
    kept = tmp_path / "p/noise/train/hum/n.opus"
    stamp = kept.stat().st_mtime_ns
    assert len(list((tmp_path / "p").rglob("*.opus"))) == len(TRAIN_VOICES) * 6 + len(VALID) * 4 + 1
    done = _pack(corpus, tmp_path / "p", "--voice-minutes", str(CAP))
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "p").rglob("*.opus"))) == len(TRAIN_VOICES) * 3 + len(VALID) * 4 + 1
    assert kept.stat().st_mtime_ns == stamp


def test_an_oversized_pack_is_refused(pack, tmp_path):
    corpus, _ = pack
    done = _pack(corpus, tmp_path / "p", "--limit-mb", "0.001")
    assert done.returncode == 2 and "over the 0.001 MB limit" in done.stderr


def test_a_corpus_without_training_voices_is_refused(tmp_path):
    write_wav(tmp_path / "c/clean/train/asterisk_en_US_f_Allison/0.wav", speech_like(0.5).numpy())
    done = _pack(tmp_path / "c", tmp_path / "p")
    assert done.returncode == 2 and "no training voice" in done.stderr


def test_the_command_refuses_a_pack_that_names_no_voices(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old/PACK.json").write_text("{}")  # a pack of the earlier layout
    done = _run(
        ["bash", str(GPU / "train_all.sh"), str(tmp_path / "old"), str(tmp_path / "OUT"), "1", "cpu"],
        env={"PYTHON": sys.executable, "RUNS": str(tmp_path / "runs")},
    )
    assert done.returncode == 2 and "names no training or validation voices" in done.stderr


@pytest.mark.slow
def test_rehearsal_of_the_gpu_command_trains_all_four_and_finishes_loadable_folders(pack, tmp_path):
    _, pack = pack
    out = tmp_path / "OUT"
    done = _run(
        ["bash", str(GPU / "train_all.sh"), str(pack), str(out), "0.05", "cpu"],
        env={"REHEARSAL": "1", "PYTHON": sys.executable, "RUNS": str(tmp_path / "runs")},
    )
    log = (out / "train.log").read_text() if (out / "train.log").is_file() else ""
    assert done.returncode == 0, done.stdout + done.stderr + log
    names = ("prior-cpu", "prior-large", "convtasnet", "semamba")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(f"{n}.safetensors" for n in names), "train.log", "summary.json"]
    )
    report = json.loads((out / "summary.json").read_text())
    for name in names:
        job = report["jobs"][name]
        assert job["exit"] == 0 and job["info"]["step"] >= 1, (name, job)
        assert job["minutes"] == pytest.approx(0.05 * (0.4 if name == "semamba" else 1))  # its share of the time
    assert all((out / f"{n}.safetensors").stat().st_size < 16 * 2**20 for n in names)  # the lease's return limit

    dest = tmp_path / "finished"
    done = _run([sys.executable, str(GPU / "finish.py"), str(out), str(dest)])
    assert done.returncode == 0, done.stderr
    for name in names:  # each card names the pack's voices and the one licence they allow
        card = (dest / name / "README.md").read_text()
        assert f"{len(TRAIN_VOICES)} voices of `sips.corpus.WIDE_SOURCES`" in card and "GPL-2.0-only" in card, name
    assert "license: gpl-2.0" in (dest / "prior-cpu" / "README.md").read_text()
    small, large = sips.load_prior(dest / "prior-cpu"), sips.load_prior(dest / "prior-large")
    assert small.config.channel_mult == (1, 1, 2, 4, 8) and large.num_parameters > 7_000_000
    import sips_semamba
    from sips_asteroid import load_convtasnet

    enhancer = sips_semamba.load(dest / "semamba")
    assert sum(p.numel() for p in enhancer.model.parameters()) > 2_000_000
    separator = load_convtasnet(dest / "convtasnet")
    mixture = speech_like(0.5)[None]
    assert enhancer(mixture).shape == (1, 1, 8000) and separator(mixture).shape == (1, 2, 8000)
    refined = sips.refine(enhancer, mixture[0], sample_rate=16000, prior=large, steps=1)
    assert refined.shape == (1, 8000) and torch.isfinite(refined).all()
