"""The Kaggle source through kagglehub: a pinned version is read from kagglehub's cache without
network; an unpinned one without network or credentials is one clear refusal."""

from pathlib import Path

import pytest

from lake.sources import SourceRefused, kaggle_files

DATASET = "wjia26/big-tech-companies-tweet-sentiment"
SUBFOLDER_FILE = "Bigtech - 12-07-2020 till 19-09-2020/Bigtech - 12-07-2020 till 19-09-2020.csv"
ROOT_FILE = "Bigtech - 20-09-2020 till 13-10-2020.csv"


def _cache_version(cache: Path, version: int) -> Path:
    """Lay out a dataset version the way kagglehub 1.x stores a finished download."""
    base = cache / "datasets" / DATASET
    folder = base / "versions" / str(version)
    (folder / SUBFOLDER_FILE).parent.mkdir(parents=True)
    (folder / SUBFOLDER_FILE).write_text("created_at\n")
    (folder / ROOT_FILE).write_text("created_at\n")
    (base / f"{version}.complete").write_text("")
    return folder


def test_a_pinned_version_in_kagglehubs_cache_is_read_offline_with_both_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    folder = _cache_version(tmp_path, 3)
    files = kaggle_files(DATASET, 3)
    assert [f.name for f in files] == [SUBFOLDER_FILE, ROOT_FILE]
    assert [f.path for f in files] == [folder / SUBFOLDER_FILE, folder / ROOT_FILE]


def test_without_network_or_credentials_the_refusal_is_one_clear_message(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    # a version that is not cached must be downloaded, which cannot work here (no network) — or on
    # any machine without credentials
    with pytest.raises(SourceRefused) as refused:
        kaggle_files(DATASET, 999)
    message = str(refused.value)
    assert message.startswith(f"kaggle dataset {DATASET}/versions/999 is not available:")
    assert "KAGGLE_USERNAME" in message
    assert "\n" not in message
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
