"""Strict state-dict checks shared by the prior and the predictor adapters.

A checkpoint that does not fit a network is a user error: it gets one sentence naming how many
keys are missing, unexpected or of another shape, with an example of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def state_dict_mismatch(module: torch.nn.Module, state: Mapping[str, Any]) -> str | None:
    """How ``state`` differs from ``module.state_dict()`` in keys and shapes (``None`` if it fits).

    Returns a phrase such as ``"2 missing (e.g. a.weight); 1 of another shape (e.g. b: [3] vs [4])"``;
    an entry that is not a tensor counts as of another shape.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        k
        for k in own
        if k in state and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(own[k].shape))
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        got = list(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
        parts.append(f"{len(wrong)} of another shape (e.g. {k}: {got} vs {list(own[k].shape)})")
    return "; ".join(parts) or None


def load_strict(
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    *,
    error: type[Exception],
    what: str = "the configuration",
    hint: str = "",
) -> None:
    """``module.load_state_dict(state, strict=True)``, raising ``error`` with one sentence on a mismatch.

    Args:
        module: the network to fill.
        state: the weights (any key order).
        source: where the weights come from, for the message (a path or a name).
        error: the exception class to raise (e.g. ``PriorLoadError``, ``AdapterError``).
        what: what the weights must fit, e.g. ``"the SEMamba configuration"``.
        hint: an optional clause appended to the sentence, e.g. ``"pass the model's YAML as config="``.
    """
    problem = state_dict_mismatch(module, state)
    if problem is not None:
        tail = f"; {hint}" if hint else ""
        raise error(f"The weights in {source} do not fit {what}: {problem} keys{tail}.")
    module.load_state_dict(dict(state), strict=True)
