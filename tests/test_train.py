import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import sips
from sips.errors import OptionError, SipsError, TrainingError
from sips.pretrained.weights import read_snapshot
from sips.training.train import TrainConfig, export, train

from conftest import speech_like, write_wav

TINY = dict(model_channels=4, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), logvar_channels=4)


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    for i in range(4):
        write_wav(root / "train" / f"{i}.wav", speech_like(0.6, seed=i).numpy(), rate=22050)  # resampled on load
    write_wav(root / "train" / "short.wav", speech_like(0.2, seed=9).numpy())  # shorter than a crop: tiled
    write_wav(root / "valid" / "v.wav", speech_like(1.0, seed=5).numpy())
    return root


def _cfg(speech_dir, out, steps, **kw):
    base = dict(
        train_dirs=[str(speech_dir / "train")],
        valid_dirs=[str(speech_dir / "valid")],
        out_dir=str(out),
        batch_size=2,
        segment_samples=31 * 128,
        max_steps=steps,
        valid_every=2,
        checkpoint_every=2,
        valid_items=4,
        warmup_steps=2,
        decay_steps=4,
        progress=False,
    )
    return TrainConfig(**{**base, **kw})


def test_training_lowers_validation_loss_and_exports(tmp_path, speech_dir):
    summary = train(_cfg(speech_dir, tmp_path / "run", 30, lr=1e-2), sips.PriorConfig(**TINY))
    assert summary["step"] == 30
    assert summary["valid_last"]["valid_loss"] < summary["valid_init"][0]
    prior = sips.ScorePrior.from_pretrained(export(tmp_path / "run", tmp_path / "prior"))
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(prior.state_dict()[k], v) for k, v in ckpt["ema"].items())


def test_resume_is_exact(tmp_path, speech_dir):
    prior_cfg = sips.PriorConfig(**TINY)
    train(_cfg(speech_dir, tmp_path / "straight", 6), prior_cfg)
    train(_cfg(speech_dir, tmp_path / "resumed", 4), prior_cfg)
    summary = train(_cfg(speech_dir, tmp_path / "resumed", 6), prior_cfg)
    assert summary["step"] == 6
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for key in ("net", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])


def test_resume_with_another_network_is_refused(tmp_path, speech_dir):
    train(_cfg(speech_dir, tmp_path / "run", 2), sips.PriorConfig(**TINY))
    with pytest.raises(TrainingError, match="another network configuration"):
        train(_cfg(speech_dir, tmp_path / "run", 4), sips.PriorConfig(**{**TINY, "model_channels": 8}))


def test_no_audio_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = TrainConfig(train_dirs=[str(tmp_path / "empty")], out_dir=str(tmp_path / "run"), progress=False)
    with pytest.raises(TrainingError, match="No usable audio"):
        train(cfg, sips.PriorConfig(**TINY))


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="torchrun missing")
def test_torchrun_two_processes_and_resume(tmp_path, speech_dir):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    sips_cli = os.path.join(os.path.dirname(sys.executable), "sips")
    run = tmp_path / "ddp"

    def launch(steps):
        cmd = [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            sips_cli,
            "train",
            str(speech_dir / "train"),
            "--valid",
            str(speech_dir / "valid"),
            "-o",
            str(run),
            "--steps",
            str(steps),
            "--batch-size",
            "2",
            "--segment-seconds",
            "0.25",
            "--model-channels",
            "4",
            "--channel-mult",
            "1,2",
            "--logvar-channels",
            "4",
            "--checkpoint-every",
            "2",
            "--valid-every",
            "2",
            "--threads",
            "1",
            "--no-progress",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)

    first = launch(2)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["step"] == 2
    second = launch(4)
    assert second.returncode == 0, second.stderr[-2000:]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["step"] == 4
    assert [h["step"] for h in ckpt["state"]["history"]] == [2, 4]  # continued, not restarted


def _losses(record):
    """A history record without its CPU time (which differs between equal runs)."""
    return {k: v for k, v in record.items() if k != "train_cpu_seconds"}


def test_init_starts_from_a_prior_and_augmented_training_resumes_exactly(tmp_path, speech_dir):
    prior_cfg = sips.PriorConfig(**TINY)
    torch.manual_seed(7)
    start = sips.ScorePrior(prior_cfg)
    start.normalize_weights_()
    start.save_pretrained(tmp_path / "start")
    cfg = _cfg(speech_dir, tmp_path / "zero", 1, init=str(tmp_path / "start"), augment="voice")
    train(cfg, prior_cfg)  # the first step has learning rate 0 (warm-up): the initial weights stay
    ckpt = torch.load(tmp_path / "zero" / "checkpoint.pt", weights_only=True)
    fresh = sips.ScorePrior(prior_cfg).state_dict()  # what a run without init starts from (seed 0)
    for k, v in ckpt["net"].items():  # equal up to the forced weight normalisation's rounding
        torch.testing.assert_close(v, start.state_dict()[k], atol=1e-3, rtol=1e-3)
    assert max(float((v - fresh[k]).abs().max()) for k, v in ckpt["net"].items()) > 0.1
    straight = train(_cfg(speech_dir, tmp_path / "a", 4, init=str(tmp_path / "start"), augment="voice"), prior_cfg)
    train(_cfg(speech_dir, tmp_path / "b", 2, init=str(tmp_path / "start"), augment="voice"), prior_cfg)
    resumed = train(_cfg(speech_dir, tmp_path / "b", 4, init=str(tmp_path / "start"), augment="voice"), prior_cfg)
    assert _losses(straight["valid_last"]) == _losses(resumed["valid_last"])
    plain = train(_cfg(speech_dir, tmp_path / "c", 4, init=str(tmp_path / "start")), prior_cfg)
    assert _losses(plain["valid_last"]) != _losses(straight["valid_last"])  # the augmentation changes the batches


def test_init_with_another_architecture_and_unknown_augmentation_are_errors(tmp_path, speech_dir):
    sips.ScorePrior(sips.PriorConfig(**{**TINY, "model_channels": 8})).save_pretrained(tmp_path / "other")
    with pytest.raises(TrainingError, match="another network configuration"):
        train(_cfg(speech_dir, tmp_path / "x", 2, init=str(tmp_path / "other")), sips.PriorConfig(**TINY))
    with pytest.raises(OptionError, match="Unknown augmentation 'pitch'"):
        train(_cfg(speech_dir, tmp_path / "y", 2, augment="pitch"), sips.PriorConfig(**TINY))


def test_workers_prepare_the_same_batches_and_snapshots_hold_the_ema_weights(tmp_path, speech_dir):
    prior_cfg = sips.PriorConfig(**TINY)
    train(_cfg(speech_dir, tmp_path / "inline", 4), prior_cfg)
    snap = tmp_path / "out" / "prior.safetensors"
    summary = train(_cfg(speech_dir, tmp_path / "workers", 4, workers=2, snapshot=str(snap)), prior_cfg)
    inline = torch.load(tmp_path / "inline" / "checkpoint.pt", weights_only=True)
    workers = torch.load(tmp_path / "workers" / "checkpoint.pt", weights_only=True)
    for key, value in inline["ema"].items():
        torch.testing.assert_close(workers["ema"][key], value, rtol=0, atol=0)
    weights, info = read_snapshot(snap)
    assert info["kind"] == "sips-prior" and info["step"] == 4 and info["prior_config"] == prior_cfg.to_dict()
    assert info["valid_last"]["valid_loss"] == summary["valid_last"]["valid_loss"]
    assert all(torch.equal(weights[k], v) for k, v in inline["ema"].items())
    prior = sips.ScorePrior.from_pretrained(export(snap, tmp_path / "prior"))
    assert all(torch.equal(prior.state_dict()[k], v) for k, v in inline["ema"].items())


def test_bf16_steps_and_float16_snapshots(tmp_path, speech_dir):
    snap = tmp_path / "p16.safetensors"
    summary = train(
        _cfg(speech_dir, tmp_path / "bf16", 4, precision="bf16", snapshot=str(snap), snapshot_dtype="float16"),
        sips.PriorConfig(**TINY),
    )
    assert summary["step"] == 4 and torch.isfinite(torch.tensor(summary["valid_last"]["valid_loss"]))
    weights, _ = read_snapshot(snap)
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float16}
    ema = torch.load(tmp_path / "bf16" / "checkpoint.pt", weights_only=True)["ema"]
    prior = sips.ScorePrior.from_pretrained(export(snap, tmp_path / "prior16"))
    for key, value in ema.items():  # float16 rounding only
        torch.testing.assert_close(prior.state_dict()[key], value, rtol=1e-3, atol=1e-4)


def test_cpu_budget_stops_resumably_and_the_history_records_training_cpu_time(tmp_path, speech_dir):
    prior_cfg = sips.PriorConfig(**TINY)
    first = train(_cfg(speech_dir, tmp_path / "run", 50, max_cpu_minutes=1e-9), prior_cfg)
    assert first["step"] == 1  # over budget after the first step, validated and checkpointed there
    assert [h["step"] for h in first["history"]] == [1]
    second = train(_cfg(speech_dir, tmp_path / "run", 5), prior_cfg)
    history = second["history"]
    assert [h["step"] for h in history] == [1, 2, 4, 5]
    seconds = [h["train_cpu_seconds"] for h in history]
    assert all(b > a for a, b in zip(seconds, seconds[1:], strict=False))
    assert seconds[-1] <= second["cpu_seconds"]  # validation's CPU time is left out
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["history"] == history


@pytest.mark.slow
def test_compiled_training_steps_match_eager_ones(tmp_path, speech_dir):
    prior_cfg = sips.PriorConfig(**TINY)
    eager = train(_cfg(speech_dir, tmp_path / "eager", 3), prior_cfg)
    compiled = train(_cfg(speech_dir, tmp_path / "compiled", 3, compile=True), prior_cfg)
    for a, b in zip(eager["history"], compiled["history"], strict=True):
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-3, abs=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"max_steps": 2.5}, "max_steps must be an integer >= 1"),
        ({"workers": -1}, "workers must be an integer >= 0"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"ema": 1.0}, r"ema must be in \[0, 1\)"),
        ({"max_minutes": 0}, "max_minutes must be a positive number"),
        ({"max_cpu_minutes": -1.0}, "max_cpu_minutes must be a positive number"),
        ({"precision": "fp16"}, "Unknown precision 'fp16'"),
        ({"snapshot_dtype": "int8"}, "Unknown snapshot dtype 'int8'"),
        ({"device": "gpu"}, "The device 'gpu' is not available"),
    ],
)
def test_config_values_out_of_range_are_option_errors_before_any_work(tmp_path, speech_dir, change, message):
    with pytest.raises(OptionError, match=message):
        train(_cfg(speech_dir, tmp_path / "run", 2, **change), sips.PriorConfig(**TINY))
    assert not (tmp_path / "run").exists()


def test_a_file_that_is_no_snapshot_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(SipsError, match="without the 'sips' metadata"):
        export(tmp_path / "plain.safetensors", tmp_path / "out")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SipsError, match="not a readable safetensors file"):
        export(tmp_path / "junk.safetensors", tmp_path / "out")
