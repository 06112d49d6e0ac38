"""The README and the pages of docs/ work as written.

Their ```python blocks run top to bottom, one namespace per page, prepared with what the text
assumes (a ``mixture``, ``my_model``, ``estimates``, ``audio``); every ``sips.name.name`` they
mention resolves after a plain ``import sips``. Both run in a fresh interpreter (this file run as a
script), so that submodules other tests imported cannot hide a missing name. Every link between
the README and docs/ resolves (the file, and the ``#anchor`` to one of its headings), and the
README's commands that score the demo run as written and are the ones ``make demo`` prints.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SIPS = Path(shutil.which("sips") or ROOT / ".venv" / "bin" / "sips")

# Blocks that cannot run offline, by a text they contain, and why. Keep this list short.
SKIPPED = {
    'checkpoint="SEMamba_advanced.pth"': "it loads the published checkpoints of three predictors, which are not shipped",
}
# Dotted names in the pages that are not Python attributes.
NOT_ATTRIBUTES = {"sips.adapters": "the entry-point group of adapters"}
# The Python blocks the README held before its reference material moved to docs/ (issue 26): none may be lost.
BLOCKS_BEFORE_THE_MOVE = 5

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


def _run_pages() -> None:
    """Executed in a fresh interpreter: resolve the names, then run each page's blocks (in the current folder)."""
    import sips

    for page in PAGES:
        text = page.read_text()
        for name in dotted_names(text):
            obj = sips
            for part in name.split(".")[1:]:
                obj = getattr(obj, part)  # an AttributeError names what the page gets wrong
        namespace: dict = {}
        exec(PREPARE, namespace)
        for index, block in enumerate(python_blocks(text)):
            where = f"{page.relative_to(ROOT)} python block {index}"
            if any(marker in block for marker in SKIPPED):
                print(f"skipped {where}")
                continue
            exec(compile(block, where, "exec"), namespace)
            print(f"ran {where}")


def test_the_python_of_the_readme_and_docs_runs_as_written(tmp_path):
    blocks = [block for page in PAGES for block in python_blocks(page.read_text())]
    for marker in SKIPPED:  # every skip still matches exactly one block
        assert sum(marker in block for block in blocks) == 1, marker
    assert len(blocks) >= BLOCKS_BEFORE_THE_MOVE + 1  # the moved ones and the sample-rate policy's
    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, __file__], cwd=tmp_path, capture_output=True, text=True, env=_env(tests), timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ran = [line for line in done.stdout.splitlines() if line.startswith("ran ")]
    assert len(ran) == len(blocks) - len(SKIPPED), done.stdout
    assert (tmp_path / "spread.png").is_file()  # the ensemble block's picture


def test_the_names_are_checked():
    names = set(dotted_names("\n".join(page.read_text() for page in PAGES)))
    assert {"sips.plot.uncertainty", "sips.refine_stream", "sips.files.refine_file", "sips.SampleRateError"} <= names


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)  # no headings inside code
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_links_between_the_readme_and_docs_resolve():
    """Every relative link of the README and of docs/*.md names a file that exists and, with
    #anchor, a heading of that file; the README links every page of docs/, and every page links back."""
    broken, linked = [], set()
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            linked.add(file)
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == [], "\n".join(broken)
    readme_links = {
        (README.parent / t.partition("#")[0]).resolve()
        for t in re.findall(r"\]\(([^)#\s]+)", README.read_text())
        if t.startswith("docs/")
    }
    assert {p.resolve() for p in PAGES[1:]} <= readme_links, "the README must link every page of docs/"
    for page in PAGES[1:]:
        assert "](../README.md)" in page.read_text(), f"{page.name} links back to the README"


def test_the_readme_starts_with_the_quick_start_and_the_measured_status():
    """The first 80 lines hold what sips is, the two quick-start commands, the demo's voice, the
    measured numbers on unseen voices (also where the prior does not help) and the links."""
    head = "\n".join(README.read_text().splitlines()[:80])
    assert "make demo   #" in head and "make test   #" in head
    assert "Allison Smith" in head and "were in the embedded prior's training data" in head
    assert "PESQ-WB by −0.18" in head and "does not improve" in head and "Where it helps" in head
    assert "](docs/benchmarks.md)" in head and "](docs/cli.md)" in head and "](docs/python.md)" in head


def _demo_commands() -> tuple[list[str], list[str]]:
    """The refine command of `make demo` and the commands it echoes (with $(BIN) as .venv/bin),
    and the README's block of scoring commands (comments dropped)."""
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    make = [line.replace("$(BIN)", ".venv/bin") for line in lines if line.startswith("$(BIN)/sips")]
    echoed = [
        line[len('@echo "') : -1].strip().replace("$(BIN)", ".venv/bin")
        for line in lines
        if line.startswith('@echo "  $(BIN)/sips')
    ]
    block = next(b for b in re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M) if "eval" in b)
    readme = [line.split("  #")[0].strip() for line in block.strip().splitlines()]
    assert echoed == readme, "make demo prints the README's commands"
    return make, readme


def test_the_demo_scoring_commands_of_the_readme_work_as_written(tmp_path):
    """`make demo`'s refine, then the README's commands, from a folder holding the example, with
    the installed `sips` for `.venv/bin/sips`; and the refusal the README promises."""
    make, readme = _demo_commands()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    outputs = []
    for command in [*make, *readme]:
        args = command.split()
        assert args[0] == ".venv/bin/sips"
        done = subprocess.run([str(SIPS), *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        outputs.append(done)
    assert (tmp_path / "out" / "refined" / "noisy.wav").is_file() and (
        tmp_path / "out" / "predictor" / "noisy.wav"
    ).is_file()
    assert "RTF" in outputs[0].stderr  # the summary line
    for done in outputs[1:3]:
        assert "si_sdr" in done.stdout and "(n = 1)" in done.stdout
    assert (tmp_path / "out" / "report" / "index.html").is_file()
    refused = subprocess.run(
        [str(SIPS), "eval", "examples", "out/refined"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert refused.returncode == 2 and "was refined from examples/noisy.wav" in refused.stderr


def _env(tests: Path) -> dict:
    import os

    path = os.pathsep.join(p for p in (str(tests), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    _run_pages()
