"""Events, settings, API keys and source checks: the small rules everything else leans on."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from lake import auth
from lake.events import (
    ChunkCounts,
    GeneratedSource,
    IngestRequested,
    RawChunkReady,
    StagedChunkReady,
    dlq,
    parse,
)
from lake.settings import Settings
from lake.sources import SourceRefused, check_allowed, check_rows, local_files


def raw_event(chunk_id: int = 3) -> RawChunkReady:
    return RawChunkReady(
        run_id="r1",
        chunk_id=chunk_id,
        bucket="raw",
        key="runs/r1/a.csv",
        byte_start=10,
        byte_end=90,
        first_record=1,
        records=4,
        columns=["a"],
        sha256="0" * 64,
    )


def test_events_round_trip_through_their_topic_with_a_prefix():
    event = raw_event()
    assert parse("test.raw.ready", event.dumps(), prefix="test.") == event
    req = IngestRequested(run_id="r1", request=GeneratedSource(rows=10))
    assert parse("ingest.requested", req.dumps()) == req


def test_chunks_of_one_run_get_different_partition_keys():
    assert raw_event(1).partition_key() != raw_event(2).partition_key()
    staged = StagedChunkReady(run_id="r1", chunk_id=1, bucket="s", key="k", counts=ChunkCounts())
    assert staged.partition_key() == "r1:1"


def test_events_are_frozen_and_reject_unknown_fields():
    with pytest.raises(ValidationError):
        raw_event().chunk_id = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RawChunkReady.model_validate_json(raw_event().dumps().replace(b'"run_id"', b'"extra":1,"run_id"'))


def test_dead_letter_topic_name():
    assert dlq("raw.ready") == "raw.ready.dlq"


def test_production_refuses_placeholder_secrets(monkeypatch):
    monkeypatch.setenv("LAKE_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="LAKE_MYSQL_PASSWORD"):
        Settings(_env_file=None)
    monkeypatch.setenv("LAKE_MYSQL_PASSWORD", "a-real-one")
    monkeypatch.setenv("LAKE_S3_SECRET_KEY", "another-real-one")
    assert Settings(_env_file=None).environment == "production"


def test_api_keys_are_parsed_hashed_and_compared():
    key = auth.new_key()
    stored = auth.hash_token(key.token)
    assert auth.key_id_of(key.token) == key.key_id
    assert auth.matches(key.token, stored) and not auth.matches(key.token + "x", stored)
    assert auth.key_id_of("Bearer nonsense") is None and auth.key_id_of("lk__x") is None


@pytest.mark.parametrize(
    ("role", "needed", "ok"),
    [
        ("viewer", "viewer", True),
        ("viewer", "analyst", False),
        ("analyst", "viewer", True),
        ("analyst", "admin", False),
        ("admin", "admin", True),
        ("root", "viewer", False),
    ],
)
def test_roles_are_ordered(role, needed, ok):
    assert auth.allows(role, needed) is ok


def test_paths_outside_the_allowed_roots_are_refused(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.csv").write_text("x")
    check_allowed(str(root / "sub" / "a.csv"), [root])
    for bad in (str(tmp_path), str(root / ".." / "etc"), "/etc/passwd"):
        with pytest.raises(SourceRefused, match="outside the allowed roots"):
            check_allowed(bad, [root])
    check_allowed("s3://inbox/tweets/a.csv", [Path("s3://inbox/tweets")])
    for bad in ("s3://inbox/other.csv", "s3://inbox/tweets/../x.csv", "s3://inboxes/tweets/a.csv"):
        with pytest.raises(SourceRefused):
            check_allowed(bad, [Path("s3://inbox/tweets")])


def test_a_refused_path_names_the_roots_as_configured_never_the_servers_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(SourceRefused) as refused:
        check_allowed("/etc/passwd", [Path("data")])
    assert str(refused.value) == "/etc/passwd is outside the allowed roots ['data'] (LAKE_ALLOWED_ROOTS)"
    with pytest.raises(SourceRefused) as refused:
        check_allowed("../x.csv", [Path("data"), tmp_path / "inbox", tmp_path / "more"])
    message = str(refused.value)
    assert str(tmp_path) not in message and "'(2 absolute folders)'" in message


def test_rows_over_the_cap_are_refused():
    check_rows(10, 10)
    with pytest.raises(SourceRefused, match="exceeds"):
        check_rows(11, 10)


def test_a_folder_yields_its_csv_files_with_subfolders_kept(tmp_path):
    (tmp_path / "B sub").mkdir()
    (tmp_path / "B sub" / "two.csv").write_text("x")
    (tmp_path / "one.csv").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    assert [f.name for f in local_files(tmp_path)] == ["B sub/two.csv", "one.csv"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceRefused, match=r"no \.csv"):
        local_files(tmp_path / "empty")
    with pytest.raises(SourceRefused, match="no such file"):
        local_files(tmp_path / "missing.csv")


def test_a_runs_chunks_cover_every_partition_and_replays_keep_theirs():
    from lake.adapters.broker import chunk_partition

    for run_id in ("20261129T014657Z-1f8d0bc4", "r1", "another-run"):
        keys = [chunk_key(run_id, c) for c in range(8)]
        parts = [chunk_partition(k, 3) for k in keys]
        assert {parts[i] for i in range(3)} == {0, 1, 2}
        assert max(parts.count(p) for p in range(3)) - min(parts.count(p) for p in range(3)) <= 1
        assert [chunk_partition(k, 3) for k in keys] == parts
    assert chunk_partition(b"no-chunk-suffix", 3) in {0, 1, 2}


def chunk_key(run_id: str, chunk_id: int) -> bytes:
    return f"{run_id}:{chunk_id}".encode()
