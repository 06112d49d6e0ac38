"""`sips report`: the comparison page, its blind listening test in a real (headless) Chromium, the
ratings summary, and the bad inputs that must leave no page behind."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import sips
from sips.cli import main
from sips.evaluation import report

from conftest import noisy, speech_like, write_wav
from headless import Chromium, find_chromium

SYSTEMS = ("noisy", "enhanced", "refined")
RATE = 16000


@pytest.fixture(scope="module")
def tiny_prior_dir(tmp_path_factory):
    torch.manual_seed(0)
    prior = sips.ScorePrior(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=())
    return prior.save_pretrained(tmp_path_factory.mktemp("prior") / "tiny")


def make_folders(root: Path, files: int = 3, seconds: float = 1.0, rate: int = RATE) -> dict[str, Path]:
    """``clean/`` and one folder per system, ``files`` utterances each (``sub/`` holds the last)."""
    folders = {name: root / name for name in ("clean", *SYSTEMS)}
    for i in range(files):
        clean = speech_like(seconds, rate=rate, seed=i)
        mixture = noisy(clean, 0.0, seed=i + 1)
        versions = {
            "clean": clean,
            "noisy": mixture,
            "enhanced": (mixture + clean) / 2,
            "refined": 0.1 * mixture + clean,
        }
        rel = f"sub/u{i}.wav" if i == files - 1 else f"u{i}.wav"
        for name, signal in versions.items():
            write_wav(folders[name] / rel, 0.5 * signal.numpy(), rate=rate)
    return folders


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dirs(folders) -> list[Path]:
    return [folders[s] for s in SYSTEMS]


def test_page_holds_every_file_system_and_score_and_nothing_from_the_network(tmp_path, capsys, tiny_prior_dir):
    folders = make_folders(tmp_path)
    out = tmp_path / "page"
    args = [*dirs(folders), "-o", out, "--reference", folders["clean"], "--metrics", "si_sdr", "quality"]
    code, stdout, stderr = run(capsys, *args, "--prior", tiny_prior_dir)
    assert code == 0, stderr
    assert stdout.strip() == str(out / "index.html")
    data = json.loads((out / "report.json").read_text())
    assert data["systems"] == list(SYSTEMS) and [f["name"] for f in data["files"]] == ["sub/u2", "u0", "u1"]
    for index, entry in enumerate(data["files"]):
        assert set(entry["audio"]) == {*SYSTEMS, "reference"}
        for system, rel in entry["audio"].items():
            played, rate = sf.read(out / rel)
            assert rate == RATE and played.ndim == 1 and abs(len(played) - RATE) <= 1  # Ogg Opus, whole length
            assert (out / entry["images"][system]).read_bytes()[:2] == b"\xff\xd8"  # JPEG
        assert set(entry["scores"]["refined"]) == {"si_sdr", "quality"} and "si_sdr" not in entry["scores"]["reference"]
        assert entry["audio"]["noisy"] == f"audio/{index}/0.ogg"
    si_sdr = {s: data["summary"][s]["si_sdr"][0] for s in SYSTEMS}
    assert si_sdr["noisy"] < si_sdr["enhanced"] < si_sdr["refined"]  # the synthetic systems' order
    quality = {s: data["summary"][s]["quality"] for s in (*SYSTEMS, "reference")}
    assert all(np.isfinite(v[0]) and np.isfinite(v[1]) for v in quality.values())  # mean and 95 % CI half-width
    # the blind test: every file once, every system (and the hidden reference) once per file, labels A..D
    assert sorted(t["file"] for t in data["trials"]) == [0, 1, 2]
    for trial in data["trials"]:
        assert [s["label"] for s in trial["stimuli"]] == list("ABCD")
        assert sorted(s["system"] for s in trial["stimuli"]) == sorted([*SYSTEMS, "reference"])
    page = (out / "index.html").read_text()
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page.split('id="report-data">')[0])  # no host named
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left beside the page


def test_seed_fixes_the_sample_and_the_blind_order(tmp_path, capsys):
    folders = make_folders(tmp_path, files=6, seconds=0.3)

    def build(name, *extra):
        code, _, stderr = run(
            capsys, *dirs(folders), "-o", tmp_path / name, "--metrics", "none", "--audio", "wav", *extra
        )
        assert code == 0, stderr
        data = json.loads((tmp_path / name / "report.json").read_text())
        return [f["name"] for f in data["files"]], data["trials"]

    first = build("a", "--limit", "3", "--seed", "4")
    assert first == build("b", "--limit", "3", "--seed", "4") and len(first[0]) == 3
    others = [build(f"c{seed}", "--limit", "3", "--seed", str(seed)) for seed in (5, 6)]
    assert any(o != first for o in others)
    files, trials = build("all")
    assert len(files) == 6 and {t["file"] for t in trials} == set(range(6))
    orders = {tuple(s["system"] for s in t["stimuli"]) for t in trials}
    assert len(orders) > 1  # the systems' order changes from file to file


def test_names_and_a_rerun_replace_an_earlier_report(tmp_path, capsys):
    folders = make_folders(tmp_path, files=2, seconds=0.3)
    out = tmp_path / "page"
    args = [*dirs(folders), "-o", out, "--metrics", "none"]
    assert run(capsys, *args)[0] == 0
    (out / "audio" / "stale.ogg").write_bytes(b"x")
    code, _, stderr = run(capsys, *args, "--names", "mix", "model", "model+sips")
    assert code == 0, stderr
    assert json.loads((out / "report.json").read_text())["systems"] == ["mix", "model", "model+sips"]
    assert not (out / "audio" / "stale.ogg").exists()
    code, _, stderr = run(capsys, *args, "--names", "a", "a", "b")
    assert code == 2 and "distinct" in stderr


def test_opus_makes_the_page_much_smaller_than_wav(tmp_path, capsys):
    folders = make_folders(tmp_path, files=2, seconds=3.0)
    sizes = {}
    for fmt in ("opus", "flac", "wav"):
        out = tmp_path / fmt
        assert run(capsys, *dirs(folders), "-o", out, "--metrics", "none", "--audio", fmt)[0] == 0
        sizes[fmt] = sum(p.stat().st_size for p in (out / "audio").rglob("*"))
    assert sizes["opus"] * 3 < sizes["flac"] < sizes["wav"]


def one_error(code: int, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sips: error: "), stderr
    return lines[0]


def no_page(tmp_path: Path, out: Path) -> None:
    assert not out.exists()
    if out.parent.exists():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "a temporary folder was left"


@pytest.mark.parametrize(
    "problem, message",
    [
        ("no common file", "No audio file is in every folder"),
        ("different rates", "at 16000 Hz in noisy but at 22050 Hz in refined"),
        ("different lengths", "has 16000 samples in noisy but 17600 in refined"),
        ("unreadable file", "Cannot read"),
        ("missing folder", "No such folder"),
        ("missing reference", "No audio file is in every folder"),
    ],
)
def test_bad_inputs_give_one_sentence_and_no_page(tmp_path, capsys, problem, message):
    folders = make_folders(tmp_path, files=2)
    refined = folders["refined"]
    extra = []
    if problem == "no common file":
        for p in refined.rglob("*.wav"):
            p.rename(p.with_name("other_" + p.name))
    elif problem == "different rates":
        write_wav(refined / "u0.wav", speech_like(1.0, rate=22050).numpy(), rate=22050)
    elif problem == "different lengths":
        write_wav(refined / "u0.wav", speech_like(1.1).numpy())
    elif problem == "unreadable file":
        (refined / "sub" / "u1.wav").write_bytes(b"RIFF not really a wave file")
    elif problem == "missing folder":
        refined = tmp_path / "nowhere"
    else:
        empty = tmp_path / "empty"
        empty.mkdir()
        extra = ["--reference", empty]
    out = tmp_path / "out" / "page"
    code, _, stderr = run(
        capsys, folders["noisy"], folders["enhanced"], refined, "-o", out, "--metrics", "none", *extra
    )
    assert message in one_error(code, stderr)
    no_page(tmp_path, out)


def test_a_failure_while_building_leaves_no_page_and_keeps_an_earlier_one(tmp_path, capsys, monkeypatch):
    folders = make_folders(tmp_path, files=2, seconds=0.3)
    out = tmp_path / "page"
    assert run(capsys, *dirs(folders), "-o", out, "--metrics", "none")[0] == 0
    before = (out / "report.json").read_text()

    def broken(*args, **kwargs):
        raise sips.AudioError("The second file broke.")

    monkeypatch.setattr(report, "blind_trials", broken)
    code, _, stderr = run(capsys, *dirs(folders), "-o", out, "--metrics", "none", "--names", "x", "y", "z")
    assert "The second file broke." in one_error(code, stderr)
    assert (out / "report.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_output_folders_that_are_not_a_report_or_overlap_the_inputs_are_refused(tmp_path, capsys):
    folders = make_folders(tmp_path, files=1, seconds=0.3)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, stderr = run(capsys, *dirs(folders), "-o", busy, "--metrics", "none")
    assert "holds no sips report" in one_error(code, stderr) and (busy / "notes.txt").read_text() == "mine"
    code, _, stderr = run(capsys, *dirs(folders), "-o", folders["refined"] / "page", "--metrics", "none")
    assert "overlaps the input folder" in one_error(code, stderr)


def test_options_are_checked_before_any_work(tmp_path, capsys):
    folders = make_folders(tmp_path, files=1, seconds=0.3)
    out = tmp_path / "page"
    cases = [
        (["--metrics", "pesq"], "compares with a reference"),
        (["--metrics", "none", "quality"], "--metrics none goes alone"),
        (["--names", "a", "b"], "gives 2 name(s) for 3 folder(s)"),
        (["--limit", "0"], "expected an integer >= 1"),
        (["--csv", "x.csv"], "--csv goes with --ratings"),
    ]
    for extra, message in cases:
        code, _, stderr = run(capsys, *dirs(folders), "-o", out, *extra)
        assert message in one_error(code, stderr), extra
    assert "needs folders of outputs and -o OUT" in one_error(*run(capsys, *dirs(folders))[::2])
    code, _, stderr = run(
        capsys, *dirs(folders), "-o", out, "--names", "reference", "b", "c", "--reference", folders["clean"]
    )
    assert "names the --reference folder" in one_error(code, stderr)
    assert not out.exists()


def test_all_metrics_where_installed(tmp_path, capsys):
    pytest.importorskip("pesq")
    folders = make_folders(tmp_path, files=1, seconds=2.0)
    out = tmp_path / "page"
    code, _, stderr = run(
        capsys,
        folders["noisy"],
        "-o",
        out,
        "--reference",
        folders["clean"],
        "--metrics",
        "si_sdr",
        "pesq",
        "estoi",
        "dnsmos",
    )
    assert code == 0, stderr
    scores = json.loads((out / "report.json").read_text())["files"][0]["scores"]
    assert set(scores["noisy"]) == {"si_sdr", "pesq", "estoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    assert set(scores["reference"]) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    assert 1.0 <= scores["noisy"]["pesq"] <= 4.6 and 0 < scores["noisy"]["estoi"] < 1


def test_default_metrics_leave_out_what_is_not_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pesq" else real(name, *a))
    chosen, notes = report.choose_metrics(None, reference=True)
    assert "pesq" not in chosen and "si_sdr" in chosen and "quality" in chosen
    assert any("pesq left out" in n and "sips-prior[eval]" in n for n in notes)
    assert report.choose_metrics(None, reference=False)[0] == ["dnsmos", "quality"]
    with pytest.raises(sips.MissingDependencyError, match="install it with"):
        report.choose_metrics(["pesq"], reference=True)


# --- ratings ------------------------------------------------------------------------------------


def ratings_file(path: Path, listener: str, scores: dict[str, list[float]], report_id: str = "r1") -> Path:
    """A JSON ratings file as the page saves it: ``scores[system][file index]``."""
    rows = []
    for system, values in scores.items():
        for i, value in enumerate(values):
            rows.append({"trial": i + 1, "file": f"u{i}", "label": "?", "system": system, "rating": value})
    data = {"format": "sips-ratings", "version": 1, "report": report_id, "listener": listener, "ratings": rows}
    path.write_text(json.dumps(data))
    return path


def test_ratings_of_several_listeners_are_summarised(tmp_path, capsys):
    ann = ratings_file(tmp_path / "ann.json", "ann", {"a": [20, 30], "b": [80, 70], "reference": [100, 95]})
    bob = ratings_file(tmp_path / "bob.json", "bob", {"a": [50, 60], "b": [50, 40], "reference": [60, 70]})
    code, stdout, stderr = run(capsys, "--ratings", ann, bob, "--csv", tmp_path / "summary.csv")
    assert code == 0, stderr
    assert re.search(r"^a\s+4\s+2\s+40\.00\s+\S+\s+1\s+1$", stdout, re.M), (
        stdout
    )  # best alone in bob/u1, tied in bob/u0
    assert re.search(r"^b\s+4\s+2\s+60\.00\s+\S+\s+2\s+1$", stdout, re.M), stdout
    assert re.search(r"^reference\s+4\s+2\s+81\.25\s+\S+\s+—\s+—$", stdout, re.M), stdout
    assert "a above b in 1 of 4 trials, below in 2, equal in 1" in stdout
    assert "'bob' rated the hidden reference below 90 in 2 of 2 files" in stderr
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [r["system"] for r in rows] == ["a", "b", "reference"]
    a = rows[0]
    expected = report.M.mean_ci([20, 30, 50, 60])
    assert float(a["mean"]) == pytest.approx(40) and float(a["ci95"]) == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not a ratings file of a sips report"),
        ('{"format": "other"}', "is not a ratings file of a sips report"),
        (
            '{"format": "sips-ratings", "ratings": [{"file": "u0", "system": "a", "rating": 101}]}',
            "ratings from 0 to 100",
        ),
        ('{"format": "sips-ratings", "ratings": []}', "holds no ratings"),
    ],
)
def test_bad_ratings_files_give_one_sentence(tmp_path, capsys, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    assert message in one_error(*run(capsys, "--ratings", path)[::2])


def test_ratings_from_two_reports_or_given_twice_are_refused(tmp_path, capsys):
    ann = ratings_file(tmp_path / "ann.json", "ann", {"a": [20]})
    other = ratings_file(tmp_path / "other.json", "bob", {"a": [20]}, report_id="r2")
    assert "2 different reports" in one_error(*run(capsys, "--ratings", ann, other)[::2])
    assert "rated a on u0 twice" in one_error(*run(capsys, "--ratings", ann, ann)[::2])
    assert "Cannot read the ratings file" in one_error(*run(capsys, "--ratings", tmp_path / "none.json")[::2])
    assert "without folders and -o" in one_error(*run(capsys, tmp_path, "--ratings", ann)[::2])


# --- the page in a real browser -----------------------------------------------------------------

RATED = {"noisy": 20, "enhanced": 45, "refined": 70, "reference": 95}  # what the scripted listener gives


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (make test installs Debian's package)")
def test_page_and_a_blind_session_in_headless_chromium(tmp_path, capsys):
    folders = make_folders(tmp_path, files=10)
    out = tmp_path / "page"
    code, _, stderr = run(capsys, *dirs(folders), "-o", out, "--reference", folders["clean"], "--metrics", "si_sdr")
    assert code == 0, stderr
    data = json.loads((out / "report.json").read_text())
    with Chromium(tmp_path / "browser") as browser:
        browser.open((out / "index.html").as_uri())
        # every player of the comparison loads and knows its duration
        durations = browser.evaluate(
            """Promise.all([...document.querySelectorAll('#compare audio')].map((a) =>
                 a.error ? 'error ' + a.error.code : a.readyState >= 1 ? a.duration : new Promise((done) => {
                   a.addEventListener('loadedmetadata', () => done(a.duration));
                   a.addEventListener('error', () => done('error ' + (a.error && a.error.code)));
                 })))""",
            timeout=20,
        )
        assert len(durations) == 10 * 4  # one per file and system, and the reference
        assert all(isinstance(d, float) and abs(d - 1.0) < 0.02 for d in durations), durations
        assert browser.evaluate("document.querySelectorAll('#summary tbody tr').length") == 4
        assert browser.evaluate("[...document.querySelectorAll('#compare img')].every((i) => i.src.endsWith('.jpg'))")

        # the blind test: no system named on screen, Next only once every slider moved
        browser.evaluate("document.getElementById('tab-test').click()")
        browser.evaluate("document.getElementById('listener').value = 'ann'; document.getElementById('start').click()")
        for index, trial in enumerate(data["trials"]):
            state = browser.evaluate(
                """(() => { const t = document.getElementById('trial');
                   return {text: t.innerText, progress: document.getElementById('progress-text').textContent,
                           next: document.getElementById('next').disabled,
                           labels: [...t.querySelectorAll('.stimulus .label')].map((l) => l.textContent),
                           sources: [...t.querySelectorAll('audio')].map((a) => a.src.split('/').slice(-3).join('/'))}; })()"""
            )
            assert state["progress"] == f"File {index + 1} of 10" and state["next"] is True
            assert not any(s in state["text"] for s in SYSTEMS)
            assert state["labels"] == ["reference", *"ABCD"]
            file = data["files"][trial["file"]]
            assert state["sources"] == [
                file["audio"]["reference"],
                *(file["audio"][s["system"]] for s in trial["stimuli"]),
            ]
            for stimulus in trial["stimuli"]:
                browser.evaluate(
                    f"""(() => {{ const s = document.querySelector('input[data-label="{stimulus["label"]}"]');
                        s.value = {RATED[stimulus["system"]]}; s.dispatchEvent(new Event('input')); }})()"""
                )
            browser.evaluate("document.getElementById('next').click()")
        assert "you rated 10 of 10 files" in browser.evaluate("document.getElementById('done').innerText")
        saved_json = browser.download("document.getElementById('download-json').click()")
        saved_csv = browser.download("document.getElementById('download-csv').click()")
        assert browser.console_errors() == []
        urls = browser.requested_urls()
        assert urls and all(u.startswith(("file://", "data:", "blob:")) for u in urls), urls

    saved = json.loads(saved_json.read_text())
    assert saved["listener"] == "ann" and saved["report"] == data["id"] and len(saved["ratings"]) == 40
    with saved_csv.open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 40
    code, stdout, stderr = run(capsys, "--ratings", saved_json, "--csv", tmp_path / "summary.csv")
    assert code == 0, stderr
    for system, value in RATED.items():
        assert re.search(rf"^{system}\s+10\s+1\s+{value}\.00\s", stdout, re.M), stdout
    assert re.search(r"^refined\s+.*\s10\s+0$", stdout, re.M), stdout  # rated best in all 10 files
    assert run(capsys, "--ratings", saved_csv)[1] == stdout  # the CSV download says the same
    assert "twice" in one_error(*run(capsys, "--ratings", saved_json, saved_csv)[::2])  # one listener, two copies
