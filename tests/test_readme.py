"""The README's Python works as written.

Its ```python blocks run top to bottom in one namespace, prepared with what the text assumes
(a ``mixture``, ``my_model``, ``estimates``, ``audio``); and every ``sips.name.name`` the README
mentions resolves after a plain ``import sips``. Both run in a fresh interpreter (this file run as
a script), so that submodules other tests imported cannot hide a missing name.
"""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

# Blocks that cannot run offline, by a text they contain, and why. Keep this list short.
SKIPPED = {
    'checkpoint="SEMamba_advanced.pth"': "it loads the published checkpoints of three predictors, which are not shipped",
}
# Dotted names in the README that are not Python attributes.
NOT_ATTRIBUTES = {"sips.adapters": "the entry-point group of adapters"}

PREPARE = """
import torch
from conftest import noisy, speech_like

mixture = noisy(speech_like(0.5), 5.0)  # [T] at 16 kHz
audio = mixture
estimates = torch.stack([speech_like(0.5, seed=1), 0.5 * speech_like(0.5, seed=2)])  # two sources [2, T]


def my_model(x):  # [B, T] -> [B, T]
    return 0.8 * x
"""


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def dotted_names(text: str) -> list[str]:
    return sorted(set(re.findall(r"\bsips(?:\.[A-Za-z_]\w*)+", text)) - set(NOT_ATTRIBUTES))


def _run_readme() -> None:
    """Executed in a fresh interpreter: resolve the names, then run the blocks (in the current folder)."""
    import sips

    text = README.read_text()
    for name in dotted_names(text):
        obj = sips
        for part in name.split(".")[1:]:
            obj = getattr(obj, part)  # an AttributeError names what the README gets wrong
    namespace: dict = {}
    exec(PREPARE, namespace)
    for index, block in enumerate(python_blocks(text)):
        if any(marker in block for marker in SKIPPED):
            print(f"skipped block {index}")
            continue
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        print(f"ran block {index}")


def test_the_readme_python_runs_as_written(tmp_path):
    text = README.read_text()
    blocks = python_blocks(text)
    for marker in SKIPPED:  # every skip still matches exactly one block
        assert sum(marker in block for block in blocks) == 1, marker
    assert len(blocks) - len(SKIPPED) >= 3
    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, __file__], cwd=tmp_path, capture_output=True, text=True, env=_env(tests), timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ran = [line for line in done.stdout.splitlines() if line.startswith("ran block")]
    assert len(ran) == len(blocks) - len(SKIPPED), done.stdout
    assert (tmp_path / "spread.png").is_file()  # the ensemble block's picture


def test_the_readme_names_are_checked():
    names = dotted_names(README.read_text())
    assert {"sips.plot.uncertainty", "sips.refine_stream", "sips.files.refine_file"} <= set(names)


def _env(tests: Path) -> dict:
    import os

    path = os.pathsep.join(p for p in (str(tests), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    _run_readme()
