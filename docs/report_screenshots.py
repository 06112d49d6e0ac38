"""The README's pictures of `sips report`: docs/report-comparison.png and docs/report-test.png.

Cuts examples/noisy.wav and clean.wav into three parts, writes the Wiener filter's output and the
refined output (embedded prior, defaults) of each, builds the report with every metric, and takes
two screenshots in headless Chromium (tests/headless.py), reduced to 128 colours (Pillow, which
matplotlib brings). Run from the repository root: ``python docs/report_screenshots.py [WORKDIR]``.
"""

import base64
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

import sips
from sips.evaluation.report import build_report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from headless import Chromium  # noqa: E402


def folders(work: Path) -> None:
    noisy, rate = sf.read(ROOT / "examples" / "noisy.wav", dtype="float32")
    clean, _ = sf.read(ROOT / "examples" / "clean.wav", dtype="float32")
    wiener = sips.load_predictor("wiener")
    part = len(noisy) // 3
    for i in range(3):
        mixture = torch.from_numpy(noisy[i * part : (i + 1) * part])
        with torch.inference_mode():
            estimate = wiener(mixture[None])[0, 0].numpy()
        refined = sips.refine(wiener, mixture, sample_rate=rate)[0].numpy()
        versions = {
            "clean": clean[i * part : (i + 1) * part],
            "noisy": mixture.numpy(),
            "wiener": estimate,
            "refined": refined,
        }
        for name, signal in versions.items():
            (work / name).mkdir(parents=True, exist_ok=True)
            sf.write(work / name / f"part{i + 1}.wav", np.asarray(signal), rate, subtype="PCM_16")


def screenshot(browser: Chromium, height: int) -> Image.Image:
    clip = {"x": 0, "y": 0, "width": 1180, "height": height, "scale": 1}
    data = browser.send("Page.captureScreenshot", {"format": "png", "clip": clip})["data"]
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="sips-report-demo-"))
    folders(work)
    page = build_report(
        [work / s for s in ("noisy", "wiener", "refined")], work / "report", reference=work / "clean"
    ).page
    with Chromium(work / "browser") as browser:
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1180, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.open(page.resolve().as_uri())
        shots = {"comparison": screenshot(browser, 860)}
        browser.evaluate(
            "document.getElementById('tab-test').click(); document.getElementById('listener').value = 'ann'"
        )
        browser.evaluate("document.getElementById('start').click()")
        browser.evaluate(
            "(() => { const s = document.querySelectorAll('#stimuli input');"
            " [72, 35].forEach((v, i) => { s[i].value = v; s[i].dispatchEvent(new Event('input')); }); })()"
        )
        shots["test"] = screenshot(browser, 590)
        assert browser.console_errors() == [], browser.console_errors()
    for name, image in shots.items():
        path = ROOT / "docs" / f"report-{name}.png"
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
        print(f"{path}: {path.stat().st_size / 1000:.0f} kB")


if __name__ == "__main__":
    main()
