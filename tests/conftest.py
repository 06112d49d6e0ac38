import json
import math
import os
from pathlib import Path

# The tests run small networks: one thread is as fast, and on a CPU shared with other work two
# threads can be ten times slower (they wait for each other). Set OMP_NUM_THREADS to choose.
# Subprocesses (the CLI, torchrun, the notebook kernel) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _adapter_tests_use_one_thread(request):
    """Adapter tests run tiny models: one thread is as fast, does not suffer when the CPU is shared,
    and gives the reductions the golden fixtures were made with (threads=1)."""
    if "adapters" not in request.node.path.parts:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_prior():
    """A tiny prior with non-zero output gains (its corrections are large and not speech-aware)."""
    import sips

    torch.manual_seed(0)
    prior = sips.ScorePrior(
        model_channels=8, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(), logvar_channels=8
    )
    for p in prior.parameters():
        if p.dim() == 0:
            p.data.fill_(0.3)
    return prior.eval()


@pytest.fixture(scope="module")
def zero_prior():
    """A prior whose output is exactly zero (out_gain = 0): refinement must return the estimate."""
    import sips

    return sips.ScorePrior(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=()).eval()


@pytest.fixture(scope="session")
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"golden fixtures not found at {REFERENCE}: the tests need ../shared/reference beside the clone")
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_reference_kwargs(reference) -> dict:
    """Constructor arguments of the tiny published-code prior of the fixtures."""
    return json.loads((reference / "sips_prior_config.json").read_text())["constructor_kwargs"]


@pytest.fixture(scope="session")
def tiny_prior(reference, tiny_reference_kwargs):
    """The golden tiny prior (loaded from the fixture state dict)."""
    from safetensors.torch import load_file

    import sips

    prior = sips.ScorePrior(sips.PriorConfig.from_dict(tiny_reference_kwargs))
    prior.load_state_dict(load_file(str(reference / "sips_prior_state_dict.safetensors")))
    return prior.eval()


def speech_like(seconds: float = 1.0, rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """A voiced, syllabic test signal: harmonics of a gliding f0 under a 4 Hz envelope, ``[T]``."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * rate)
    t = torch.arange(n) / rate
    f0 = 120 + 30 * torch.sin(2 * math.pi * 0.7 * t + float(torch.rand(1, generator=g)) * 6)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 20))
    envelope = torch.sin(math.pi * 4 * t).abs() ** 2
    return (0.3 * voiced * envelope).float()


def noisy(clean: torch.Tensor, snr_db: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=g)
    noise = noise * clean.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt() / 10 ** (snr_db / 20)
    return clean + noise


@pytest.fixture
def signal_pair():
    clean = speech_like(1.0)
    return clean, noisy(clean, 5.0)


def write_wav(path: Path, data, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(data, dtype=np.float32).T, rate, subtype=subtype)
    return path
