"""Hub priors against a real Hub-compatible server (olah) on 127.0.0.1: download, pin, cache,
offline, checksum, errors, CLI and upload operations."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from huggingface_hub import constants

import sips
from sips.errors import HubError, PriorLoadError
from sips.method.prior import embedded_prior_path
from sips.pretrained import catalog, hub
from sips.pretrained.catalog import CatalogEntry

from localhub import LocalHub, _free_port

TINY = "sips-test/tiny"


def _files(folder):
    return {p.name: p for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory, tiny_prior):
    """olah serving: the tiny prior at two tags, the catalog's repo, and broken repos."""
    root = tmp_path_factory.mktemp("hub")
    server = LocalHub(root)
    v1 = tiny_prior.save_pretrained(root / "v1")
    changed = sips.ScorePrior(tiny_prior.config)
    changed.load_state_dict({k: v + 0.01 * torch.ones_like(v) for k, v in tiny_prior.state_dict().items()})
    v2 = changed.save_pretrained(root / "v2")
    server.v1 = server.commit(TINY, _files(v1), tag="v1")
    server.v2 = server.commit(TINY, _files(v2), tag="v2")
    entry = catalog.load_catalog()["sips-cpu-16k"]
    server.commit(entry.repo_id, _files(embedded_prior_path()), tag=entry.revision)

    config = json.loads((v1 / "config.json").read_text())
    other = {**config, "library": "transformers"}
    server.commit("sips-test/other-library", _files(v1) | {"config.json": json.dumps(other).encode()})
    misfit = {**config, "model_channels": config["model_channels"] * 2}
    server.commit(
        "sips-test/misfit", {"config.json": json.dumps(misfit).encode(), "model.safetensors": v1 / "model.safetensors"}
    )
    pt = root / "SIPS.pt"
    torch.save({"ema": tiny_prior.state_dict()}, pt)
    server.commit("sips-test/pickle", {"config.json": v1 / "config.json", "SIPS.pt": pt})
    server.start()
    yield server
    server.stop()


def _point_at(monkeypatch, url):
    # huggingface_hub reads HF_ENDPOINT once, at import, into these two constants.
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def online(hub_server, monkeypatch, tmp_path):
    """In-process Hub client pointed at the local server, with an empty cache of its own."""
    _point_at(monkeypatch, hub_server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _weights(prior):
    return {k: v.clone() for k, v in prior.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_download_by_repo_id_gets_main(online, hub_server, tiny_prior):
    prior = sips.load_prior(TINY)
    assert prior.config == tiny_prior.config
    assert not _same(_weights(prior), _weights(tiny_prior))  # main is v2, the changed weights
    folder = sips.prior.download_prior(TINY)
    assert folder.name == hub_server.v2 and folder.is_relative_to(online)


@pytest.mark.parametrize("how", ["tag-argument", "tag-suffix", "commit-hash"])
def test_pinned_revision_returns_the_older_weights(online, hub_server, tiny_prior, how):
    if how == "tag-argument":
        prior = sips.ScorePrior.from_pretrained(TINY, revision="v1")
    elif how == "tag-suffix":
        prior = sips.load_prior(f"{TINY}@v1")
    else:
        prior = sips.load_prior(TINY, revision=hub_server.v1)
    assert _same(_weights(prior), _weights(tiny_prior))


def test_download_by_catalog_name_is_checked_and_cached(online):
    entry = catalog.get_entry("sips-cpu-16k")
    assert [e.cached for e in sips.available_priors() if e.name == entry.name] == [False]
    prior = sips.load_prior("sips-cpu-16k")
    embedded = sips.load_prior()
    assert _same(_weights(prior), _weights(embedded))
    assert [e.cached for e in sips.available_priors() if e.name == entry.name] == [True]
    assert hub.file_sha256(sips.prior.download_prior("sips-cpu-16k") / "model.safetensors") == entry.sha256


def test_catalog_name_cannot_take_another_revision(online):
    entry = catalog.get_entry("sips-cpu-16k")
    with pytest.raises(PriorLoadError, match=f"pinned to {re.escape(entry.revision)}"):
        sips.load_prior("sips-cpu-16k", revision="main")


def test_checksum_mismatch_is_refused(online, monkeypatch, hub_server):
    wrong = CatalogEntry("tiny-v1", TINY, "v1", "0" * 64, 16000, 1, 1, "other", "test entry")
    monkeypatch.setattr(catalog, "load_catalog", lambda: {"tiny-v1": wrong})
    with pytest.raises(PriorLoadError, match=r"sha256 .* not the catalog's 000000000000.*not used"):
        sips.load_prior("tiny-v1")


def test_second_load_uses_the_cache_with_the_server_stopped(tmp_path, monkeypatch, tiny_prior, hub_server):
    server = LocalHub(tmp_path / "own")
    server.commit(TINY, _files(tiny_prior.save_pretrained(tmp_path / "p")), tag="v1")
    server.start()
    _point_at(monkeypatch, server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "cache"
    first = sips.load_prior(TINY, revision="v1", cache_dir=cache)
    server.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = sips.load_prior(TINY, revision="v1", cache_dir=cache)
    assert _same(_weights(first), _weights(again))
    again = sips.load_prior(TINY, revision="v1", cache_dir=cache, local_files_only=True)
    assert _same(_weights(first), _weights(again))
    with pytest.raises(PriorLoadError, match="not in the local Hub cache.*HF_HUB_OFFLINE.*sips download"):
        sips.load_prior(TINY, revision="v2", cache_dir=cache)


def test_offline_without_cache_says_how_to_prefetch(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PriorLoadError, match=r"not in the local Hub cache .*sips download sips-cpu-16k"):
        sips.load_prior("sips-cpu-16k", cache_dir=tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(PriorLoadError, match="local_files_only is set"):
        sips.load_prior(TINY, cache_dir=tmp_path, local_files_only=True)


@pytest.mark.parametrize(
    ("spec", "revision", "message"),
    [
        ("sips-test/missing", None, "repo sips-test/missing was not found"),
        (TINY, "v7", r"Revision 'v7' not found in sips-test/tiny \(it has main, v1, v2\)"),
        ("sips-test/other-library", None, "not a sips prior configuration"),
        ("sips-test/misfit", None, "do not fit the configuration"),
        ("sips-test/pickle", None, "SIPS.pt but no model.safetensors.*never unpickles.*sips convert"),
        ("no-such-name", None, "Unknown prior 'no-such-name'.*sips-cpu-16k"),
        ("a/b/c", None, "Prior folder not found: a/b/c does not exist"),
        (f"{TINY}@v1", "v2", "Two revisions"),
    ],
    ids=["missing-repo", "missing-revision", "other-library", "misfit", "pickle", "unknown-name", "bad-id", "two-revs"],
)
def test_documented_errors(online, spec, revision, message):
    with pytest.raises(PriorLoadError, match=message) as info:
        sips.load_prior(spec, revision=revision)
    assert "\n" not in str(info.value)


def test_a_hub_id_that_fails_names_both_readings(online):
    with pytest.raises(
        PriorLoadError, match=r"No folder sips-test/missing exists here, .*repo sips-test/missing was not"
    ):
        sips.load_prior("sips-test/missing")


def _closed_hub(monkeypatch) -> str:
    """Point the Hub client at a local port where nothing listens (connections are refused)."""
    url = f"http://127.0.0.1:{_free_port()}"
    _point_at(monkeypatch, url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return url


@pytest.mark.parametrize("spec", ["runs/myprior", "./myprior", "/no/such/prior", "runs/myprior/"])
def test_a_missing_folder_is_said_at_once_not_taken_for_the_hub(tmp_path, monkeypatch, spec):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    _closed_hub(monkeypatch)
    start = time.monotonic()
    with pytest.raises(PriorLoadError, match=f"Prior folder not found: {spec} does not exist"):
        sips.load_prior(spec)
    assert time.monotonic() - start < 1


def test_an_unreachable_hub_is_one_sentence_after_a_short_timeout(tmp_path, monkeypatch):
    url = _closed_hub(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no folder "runs" here: the name may mean a Hub repo
    start = time.monotonic()
    with pytest.raises(PriorLoadError) as info:
        sips.load_prior("runs/myprior", cache_dir=tmp_path / "cache")
    assert time.monotonic() - start < hub.HUB_TIMEOUT + 3
    message = str(info.value)
    assert message.startswith("No folder runs/myprior exists here") and f"Hub at {url} cannot be reached" in message
    assert "\n" not in message and "sips download" not in message


def test_an_unreachable_hub_serves_the_cache_at_once(hub_server, tmp_path, monkeypatch, tiny_prior):
    _point_at(monkeypatch, hub_server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    first = sips.load_prior(TINY, revision="v1", cache_dir=tmp_path)
    _closed_hub(monkeypatch)
    start = time.monotonic()
    again = sips.load_prior(TINY, revision="v1", cache_dir=tmp_path)
    assert time.monotonic() - start < hub.HUB_TIMEOUT + 3 and _same(_weights(first), _weights(again))
    with pytest.raises(
        PriorLoadError,
        match=r"cannot be reached \(no answer within .*so the prior .sips-test/tiny. cannot be fetched again",
    ):
        sips.load_prior(TINY, revision="v1", cache_dir=tmp_path, force_download=True)


@pytest.mark.parametrize("command", [["download", "org/name"], ["push", "PRIOR", "org/name"]])
def test_cli_without_a_reachable_hub_is_one_sentence(tmp_path, command):
    closed = {"HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_HUB_CACHE": str(tmp_path / "cache")}
    args = [str(embedded_prior_path()) if a == "PRIOR" else a for a in command]
    start = time.monotonic()
    done = _cli(args, closed, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("sips: error: The Hugging Face Hub at") and "cannot be reached" in lines[0]
    assert "sips download" not in lines[0]
    assert time.monotonic() - start < hub.HUB_TIMEOUT + 20  # a process start, not half a minute of retries


def test_downloads_send_the_library_name_and_version(online, monkeypatch):
    import huggingface_hub

    seen = []
    real = huggingface_hub.hf_hub_download

    def spy(*args, **kwargs):
        seen.append((kwargs.get("library_name"), kwargs.get("library_version")))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    sips.load_prior(TINY, revision="v1")
    assert seen == [("sips", sips.__version__)] * 2


def _cli(args, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | env_extra
    return subprocess.run(
        [sys.executable, "-m", "sips.cli", *args], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300
    )


def test_cli_download_priors_and_offline_refine(hub_server, tmp_path):
    """HF_ENDPOINT and HF_HOME are honoured; a pre-fetched prior then works offline."""
    env = {"HF_ENDPOINT": hub_server.url, "HF_HOME": str(tmp_path / "home")}
    listed = _cli(["priors"], env, tmp_path)
    assert listed.returncode == 0 and "sips-cpu-16k" in listed.stdout and " no " in listed.stdout
    done = _cli(["download", "sips-cpu-16k"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    folder = done.stdout.strip().splitlines()[-1]
    assert folder.startswith(str(tmp_path / "home" / "hub")) and os.path.isfile(
        os.path.join(folder, "model.safetensors")
    )
    listed = _cli(["priors"], env, tmp_path)
    assert " yes " in listed.stdout
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    from conftest import speech_like, write_wav

    write_wav(tmp_path / "in.wav", speech_like(0.5).numpy())
    out = _cli(["refine", "in.wav", "-o", "out", "--prior", "sips-cpu-16k", "--steps", "2"], offline, tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "in.wav").is_file()


def test_cli_download_errors_exit_2(hub_server, tmp_path):
    env = {"HF_ENDPOINT": hub_server.url, "HF_HUB_CACHE": str(tmp_path / "cache")}
    done = _cli(["download", TINY, "--revision", "v9"], env, tmp_path)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("sips: error: Revision 'v9'")
    done = _cli(["download", TINY, "--revision", "v1"], env, tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith(hub_server.v1)
    assert (tmp_path / "cache" / "models--sips-test--tiny").is_dir()


def test_push_builds_the_upload_and_card(tmp_path):
    ops = sips.push_prior(embedded_prior_path(), "me/my-prior", dry_run=True)
    assert [op.path_in_repo for op in ops] == ["config.json", "model.safetensors", "README.md"]
    card = ops[2].path_or_fileobj.decode()
    assert card.startswith("---\nlibrary_name: sips\nlicense: cc-by-sa-3.0\npipeline_tag: audio-to-audio\n")
    assert 'sips.load_prior("me/my-prior")' in card and "## Training" in card and "2,959,626 parameters" in card
    assert ops[1].upload_info.sha256.hex() == catalog.get_entry("sips-cpu-16k").sha256
    ops = sips.push_prior(embedded_prior_path(), "me/x", license="mit", datasets=["me/speech"], dry_run=True)
    card = ops[2].path_or_fileobj.decode()
    assert "license: mit" in card and "datasets:\n- me/speech" in card


def test_push_refuses_a_broken_folder(tmp_path, tiny_prior):
    folder = tiny_prior.save_pretrained(tmp_path / "p")
    (folder / "model.safetensors").write_bytes(b"nope")
    with pytest.raises(PriorLoadError, match="safetensors"):
        sips.push_prior(folder, "me/x", dry_run=True)


def test_push_to_a_server_that_refuses_uploads(online, tiny_prior, tmp_path):
    """olah is read-only: the upload fails with one sentence, not a traceback."""
    folder = tiny_prior.save_pretrained(tmp_path / "p")
    with pytest.raises(HubError, match="refused the upload to me/x"):
        sips.push_prior(folder, "me/x", token="hf_test")


def test_embedded_card_comes_from_the_generator():
    """Regenerating the embedded prior's card from its config and own sections changes nothing."""
    from sips.method.prior import _card_parts, model_card

    path = embedded_prior_path() / "README.md"
    meta, description, body = _card_parts(path)
    entry = catalog.get_entry("sips-cpu-16k")
    regenerated = model_card(
        sips.load_prior(), repo_id=entry.repo_id, description=description, license=meta["license"], body=body
    )
    assert regenerated == path.read_text()
    assert meta["license"] == entry.license


def test_catalog_entries_are_pinned_and_match_the_embedded_weights():
    entries = catalog.load_catalog()
    assert entries, "the catalog is empty"
    for entry in entries.values():
        assert entry.revision not in ("main", "master") and len(entry.sha256) == 64
    embedded = embedded_prior_path() / "model.safetensors"
    entry = entries["sips-cpu-16k"]
    assert hub.file_sha256(embedded) == entry.sha256 and embedded.stat().st_size == entry.size_bytes
    assert sips.load_prior().num_parameters == entry.parameters


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": 1, "priors": [{"name": "x"}]}', "exactly the fields"),
        ("[]", "format"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_catalog_is_refused(text, message):
    with pytest.raises(PriorLoadError, match=message):
        catalog.parse_catalog(text)


def test_catalog_refuses_a_branch_revision():
    entry = dict(json.loads((embedded_prior_path().parent / "catalog.json").read_text())["priors"][0], revision="main")
    with pytest.raises(PriorLoadError, match="must pin a tag or commit"):
        catalog.parse_catalog(json.dumps({"format": 1, "priors": [entry]}))


# --- cache errors (issue 22): a cache that cannot be written, damaged cached files --------------------


def _truncate(path, size=500):
    with open(os.path.realpath(path), "r+b") as f:  # the blob behind the snapshot's link
        f.truncate(size)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_truncated_cached_file_is_fetched_again_when_the_hub_answers(online, name, tiny_prior):
    folder = sips.prior.download_prior(TINY, revision="v1")
    _truncate(folder / name, 500 if name.endswith("safetensors") else 20)
    prior = sips.load_prior(TINY, revision="v1")
    assert _same(_weights(prior), _weights(tiny_prior))
    assert sips.ScorePrior.from_pretrained(folder).config == tiny_prior.config  # the cache is whole again


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_truncated_cached_file_without_the_hub_says_force_download(online, monkeypatch, name):
    folder = sips.prior.download_prior(TINY, revision="v1")
    _truncate(folder / name, 500 if name.endswith("safetensors") else 20)
    _closed_hub(monkeypatch)
    with pytest.raises(sips.CorruptPriorError, match=r"sips download sips-test/tiny@v1 --force-download") as info:
        sips.load_prior(f"{TINY}@v1")
    assert "\n" not in str(info.value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(sips.CorruptPriorError, match="--force-download"):
        sips.load_prior(TINY, revision="v1")


def test_cli_download_fetches_a_truncated_cached_file_again(hub_server, tmp_path):
    env = {"HF_ENDPOINT": hub_server.url, "HF_HUB_CACHE": str(tmp_path / "cache")}
    first = _cli(["download", TINY, "--revision", "v1"], env, tmp_path)
    folder = first.stdout.strip().splitlines()[-1]
    _truncate(os.path.join(folder, "model.safetensors"))
    again = _cli(["download", TINY, "--revision", "v1"], env, tmp_path)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == folder, again.stderr
    assert os.path.getsize(os.path.join(folder, "model.safetensors")) > 500


def test_a_cache_that_cannot_be_written_is_one_sentence_naming_the_setting(online, tmp_path, monkeypatch):
    import errno
    import pathlib

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(sips.HubCacheError, match=r"cache .*/file/cache cannot be written \(Not a directory\); pass"):
        sips.load_prior(TINY, cache_dir=tmp_path / "file" / "cache")
    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(online)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    monkeypatch.setattr(os, "makedirs", lambda path, *a, **k: read_only(pathlib.Path(path)))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    with pytest.raises(sips.HubCacheError, match=r"\(Read-only file system\); set HF_HOME to a writable folder"):
        sips.load_prior(TINY)


@pytest.mark.parametrize("variable", ["HF_HOME", "HF_HUB_CACHE"])
def test_cli_with_a_cache_that_cannot_be_written_exits_2(hub_server, tmp_path, variable):
    from conftest import speech_like, write_wav

    write_wav(tmp_path / "in.wav", speech_like(0.5).numpy())
    (tmp_path / "file").write_text("not a folder")
    env = {"HF_ENDPOINT": hub_server.url, variable: str(tmp_path / "file" / "cache")}
    for args in (["download", TINY], ["refine", "in.wav", "-o", "out", "--prior", TINY]):
        done = _cli(args, env, tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "cannot be written (Not a directory)" in lines[0] and f"set {variable}" in lines[0], lines
