"""SEMamba speech enhancement as a SIPS predictor (adapter ``"semamba"``).

``sips.load_predictor("semamba", checkpoint="SEMamba_advanced.pth")`` gives a :class:`SEMambaPredictor`
(``[B, T] -> [B, 1, T]`` at 16 kHz). The generator :class:`SEMamba`, the STFT helpers and the
selective scans are exposed for training scripts and experiments.
"""

from __future__ import annotations

from .config import PUBLISHED_CONFIG, published_config, resolve_config
from .model import SEMamba, count_parameters
from .predictor import (
    SEMambaPredictor,
    default_weights_dir,
    load,
    load_weights,
    read_state_dict,
    save_default,
    unwrap_state_dict,
)
from .scan import (
    has_cuda_kernel,
    linear_recurrence,
    selective_scan,
    selective_scan_loop,
    selective_scan_parallel,
)
from .stft import enhance, mag_phase_istft, mag_phase_stft, rms_norm_factor

__all__ = [
    "PUBLISHED_CONFIG",
    "SEMamba",
    "SEMambaPredictor",
    "count_parameters",
    "default_weights_dir",
    "enhance",
    "has_cuda_kernel",
    "linear_recurrence",
    "load",
    "load_weights",
    "mag_phase_istft",
    "mag_phase_stft",
    "published_config",
    "read_state_dict",
    "resolve_config",
    "rms_norm_factor",
    "save_default",
    "selective_scan",
    "selective_scan_loop",
    "selective_scan_parallel",
    "unwrap_state_dict",
]
