"""``lake``: bootstrap the stores, manage API keys, request runs and wait for them.

lake bootstrap                       topics, buckets, MySQL migrations, MongoDB indexes
lake backfill-items                  list items for curated tweets catalogued before migration 007
lake keys create --role admin NAME   prints the key once (stored hashed)
lake keys list | lake keys revoke KEY_ID
lake keys generate                   prints a new key, not stored (for a deployment's .env)
lake keys import --role analyst --from-env VAR NAME
                                     registers the key held in $VAR (idempotent; compose's bootstrap)
lake ingest generated --rows N       publish ingest.requested, print the run id
lake demo --rows N                   ingest a generated sample, wait, print the run summary as JSON
lake replay RUN --from curate|stage  rebuild a finished run: curated layer from its staged Parquet,
                                     or staging (then curated) from its raw objects
lake dlq list [--run ID] [--topic T] dead letters, newest first: why, attempts, whether redriven
lake dlq redrive --run ID | --letter ID | --topic T | --all
                                     re-publish dead letters to their topics (each at most once)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from lake import auth
from lake.events import COUNT_NAMES, GeneratedSource, KaggleSource, PathSource
from lake.runs import request_run
from lake.settings import Settings, get_settings


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bootstrap(settings: Settings) -> dict[str, Any]:
    from lake.adapters.broker import ensure_topics
    from lake.adapters.curated_catalog import CuratedCatalog
    from lake.adapters.curated_repo import CuratedRepository, make_client
    from lake.adapters.mysql import Session, migrate
    from lake.adapters.objectstore import S3ObjectStore

    applied = migrate(settings.mysql)
    store = S3ObjectStore.from_settings(settings.s3)
    buckets = [settings.s3.raw_bucket, settings.s3.staging_bucket, settings.s3.curated_bucket]
    for b in buckets:
        store.ensure_bucket(b)
    topics = ensure_topics(settings)
    client = make_client(settings.mongo)
    try:
        indexes = CuratedRepository(client, settings.mongo).ensure_indexes()
    finally:
        client.close()
    repo = Session(settings.mysql)
    try:
        missing = CuratedCatalog(repo).missing_items()
    finally:
        repo.close()
    return {
        "migrations_applied": applied,
        "buckets": buckets,
        "topics_created": topics,
        "indexes_dropped": indexes,
        "curated_items_missing": missing,
    }


def backfill_items(settings: Settings) -> int:
    """Render the list items that migration 007 left empty, from the documents, with progress."""
    from lake.adapters.curated_catalog import CuratedCatalog
    from lake.adapters.curated_repo import CuratedRepository, make_client
    from lake.adapters.mysql import Session

    client = make_client(settings.mongo)
    repo = Session(settings.mysql)
    started = last = time.monotonic()

    def progress(done: int, total: int) -> None:  # a line every 5 s
        nonlocal last
        if (now := time.monotonic()) - last >= 5 or done >= total:
            last = now
            err(f"list items: {done:,}/{total:,} written ({done / max(now - started, 1e-9):,.0f}/s)")

    try:
        return CuratedCatalog(repo).backfill_items(
            CuratedRepository(client, settings.mongo), progress=progress
        )
    finally:
        repo.close()
        client.close()


def reset_stores(settings: Settings) -> None:
    """Empty this settings' namespace: drop its MySQL and MongoDB databases, empty its buckets.
    For the test suite and the benchmarks, which run on namespaces of their own."""
    import pymongo

    from lake.adapters.mysql import connect
    from lake.adapters.objectstore import S3ObjectStore

    with connect(settings.mysql, database=False, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{settings.mysql.database}`")
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    client.drop_database(settings.mongo.database)
    client.close()
    store = S3ObjectStore.from_settings(settings.s3)
    for bucket in (settings.s3.raw_bucket, settings.s3.staging_bucket, settings.s3.curated_bucket):
        store.ensure_bucket(bucket)
        store.delete_prefix(bucket, "")


def create_key(settings: Settings, name: str, role: str) -> str:
    from lake.adapters.mysql import connect

    if role not in auth.ROLES:
        raise SystemExit(f"role must be one of {auth.ROLES}")
    key = auth.new_key()
    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        _insert_key(cur, key.key_id, key.token, name, role)
    return key.token


def _insert_key(cur: Any, key_id: str, token: str, name: str, role: str) -> None:
    """Store a key: its hash only, never the secret."""
    from lake.adapters.mysql import utc_now

    cur.execute(
        "INSERT INTO api_keys (key_id, key_hash, name, role, created_at) VALUES (%s, %s, %s, %s, %s)",
        (key_id, auth.hash_token(token), name[:128], role, utc_now()),
    )


def import_key(settings: Settings, name: str, role: str, token: str) -> str:
    """Register a key made elsewhere (``lake keys generate``), e.g. the one a deployment gives
    Airflow in its environment. Idempotent: the same key again is accepted; a key whose id is taken
    by another key, revoked, or of another role is refused (ValueError)."""
    from lake.adapters.mysql import connect

    token = token.strip()
    key_id = auth.key_id_of(token)
    if key_id is None or not auth.well_formed(token):
        raise ValueError("not a key of the form lk_<12 hex>_<43 url-safe characters> (`lake keys generate`)")
    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT key_hash, role, revoked_at FROM api_keys WHERE key_id = %s", (key_id,))
        row = cur.fetchone()
        if row is None:
            _insert_key(cur, key_id, token, name, role)
            return f"registered the {role} key {key_id} for {name!r}"
    stored_hash, stored_role, revoked = row
    if not auth.matches(token, stored_hash):
        raise ValueError(f"the key id {key_id} belongs to another key")
    if revoked is not None:
        raise ValueError(f"the key {key_id} was revoked: generate a new one")
    if stored_role != role:
        raise ValueError(f"the key {key_id} is registered as {stored_role}, not {role}")
    return f"the {role} key {key_id} is already registered"


def key_is_valid(settings: Settings, token: str) -> bool:
    from lake.adapters.mysql import connect

    key_id = auth.key_id_of(token)
    if key_id is None:
        return False
    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT key_hash FROM api_keys WHERE key_id = %s AND revoked_at IS NULL", (key_id,))
        row = cur.fetchone()
    return row is not None and auth.matches(token, row[0])


def dev_key(settings: Settings, run_dir: Path) -> str:
    """The development admin key of this checkout: reused while valid, created otherwise."""
    path = run_dir / "dev-api-key"
    if path.exists():
        token = path.read_text().strip()
        if key_is_valid(settings, token):
            return token
    token = create_key(settings, "development (make demo)", "admin")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def wait_for_run(
    settings: Settings, run_id: str, timeout: float, expected_rows: int | None = None
) -> dict[str, Any]:
    """Poll the run record, printing progress to stderr, until it succeeds or fails."""
    from lake.adapters.run_ledger import RunLedger

    repo = RunLedger(settings.mysql)
    deadline = time.monotonic() + timeout
    last = ""
    try:
        while True:
            state = repo.run_status(run_id)
            counts = repo.run_counts(run_id)
            status = state[0] if state else "requested"
            line = (
                f"run {run_id}: {status}; raw {counts['raw_rows']}"
                + (f"/{expected_rows}" if expected_rows else "")
                + f", staged {counts['staged_rows']} (+{counts['rejected_rows']} rejected,"
                f" {counts['duplicate_rows']} duplicates), curated {counts['curated_docs']}"
            )
            if line != last:
                err(line)
                last = line
            if state and state[0] in ("succeeded", "failed"):
                return {"run_id": run_id, "status": state[0], "error": state[1], **counts}
            if time.monotonic() > deadline:
                return {
                    "run_id": run_id,
                    "status": "timeout",
                    "error": f"not finished after {timeout:.0f}s",
                    **counts,
                }
            time.sleep(0.5)
    finally:
        repo.close()


def _add_keys(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    kc = ksub.add_parser("create")
    kc.add_argument("name")
    kc.add_argument("--role", choices=auth.ROLES, default="viewer")
    ksub.add_parser("list")
    ksub.add_parser("generate", help="print a new key without storing it")
    ki = ksub.add_parser("import", help="register the key held in an environment variable")
    ki.add_argument("name")
    ki.add_argument("--role", choices=auth.ROLES, default="viewer")
    ki.add_argument("--from-env", required=True, metavar="VAR", help="the variable holding the key")
    kr = ksub.add_parser("revoke")
    kr.add_argument("key_id")


def _add_runs(sub: Any) -> None:
    ing = sub.add_parser("ingest", help="request a run (publishes ingest.requested)")
    ing.add_argument("source", choices=("generated", "path", "kaggle"))
    ing.add_argument("--rows", type=int, default=50_000)
    ing.add_argument("--seed", type=int, default=42)
    ing.add_argument("--path")
    ing.add_argument("--version", type=int)
    ing.add_argument("--wait", action="store_true")
    demo = sub.add_parser("demo", help="ingest a sample, wait for it, print the summary JSON last")
    demo.add_argument("--rows", type=int, default=50_000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--source", choices=("generated", "kaggle"), default="generated")
    demo.add_argument("--timeout", type=float, default=1800)
    demo.add_argument("--run-dir", type=Path, default=Path(os.environ.get("LAKE_RUN_DIR", ".lake")))
    rp = sub.add_parser(
        "replay",
        help="rebuild a finished run: from curate (after a tokenizer change) or stage (a cleaning rule)",
    )
    rp.add_argument("run_id")
    rp.add_argument("--from", dest="layer", choices=("curate", "stage"), default="curate")
    rp.add_argument("--wait", action="store_true", help="wait for the run to succeed again")
    rp.add_argument("--timeout", type=float, default=1800)


def _add_dlq(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list them, redrive them once the cause is fixed")
    dsub = dlq.add_subparsers(dest="dlq_cmd", required=True)
    dl = dsub.add_parser("list", help="newest first")
    dl.add_argument("--run")
    dl.add_argument("--topic", help="e.g. staged.ready")
    dl.add_argument("--limit", type=int, default=50)
    dr = dsub.add_parser("redrive", help="re-publish to their topics, each at most once")
    which = dr.add_mutually_exclusive_group(required=True)
    which.add_argument("--letter", help="one dead letter's id")
    which.add_argument("--run", help="every dead letter of a run")
    which.add_argument("--topic", help="every dead letter of a topic, e.g. staged.ready")
    which.add_argument("--all", action="store_true", help="every dead letter not redriven yet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lake", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("bootstrap", help="create topics, buckets, schema and indexes (idempotent)")
    sub.add_parser(
        "backfill-items",
        help="give curated tweets catalogued before migration 007 their list items (idempotent)",
    )
    _add_keys(sub)
    _add_runs(sub)
    _add_dlq(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.cmd == "bootstrap":
        done = bootstrap(settings)
        if done["curated_items_missing"]:
            err(
                f"{done['curated_items_missing']} curated tweets have no list item yet (catalogued"
                " before migration 007): their pages read the document store until you run"
                " `python -m lake.cli backfill-items`"
            )
        print(json.dumps(done))
    elif args.cmd == "backfill-items":
        print(json.dumps({"items_written": backfill_items(settings)}))
    elif args.cmd == "keys":
        return keys_command(settings, args)
    elif args.cmd == "dlq":
        return dlq_command(settings, args)
    elif args.cmd == "replay":
        return replay_command(settings, args)
    elif args.cmd in ("ingest", "demo"):
        if args.source == "path" and not args.path:
            parser.error("--path is required for source=path")
        return run_command(settings, args)
    return 0


def replay_command(settings: Settings, args: argparse.Namespace) -> int:
    from lake.adapters.run_ledger import RunNotReplayable
    from lake.recovery import replay_run

    try:
        chunks = replay_run(settings, args.run_id, args.layer, "cli")
    except RunNotReplayable as exc:
        err(str(exc))
        return 1
    what = (
        "raw chunks published again to be staged"
        if args.layer == "stage"
        else "staged chunks published again to be curated"
    )
    err(f"run {args.run_id}: {chunks} {what}")
    if not args.wait:
        print(json.dumps({"run_id": args.run_id, "from": args.layer, "chunks": chunks}))
        return 0
    summary = wait_for_run(settings, args.run_id, args.timeout)
    print(json.dumps({k: summary.get(k) for k in ("run_id", "status", "error", *COUNT_NAMES)}))
    return 0 if summary["status"] == "succeeded" else 1


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """``lake ingest`` and ``lake demo``: request a run; wait for it and print its summary."""
    request: GeneratedSource | PathSource | KaggleSource
    if args.source == "generated":
        request = GeneratedSource(rows=args.rows, seed=args.seed)
    elif args.source == "path":
        request = PathSource(path=args.path)
    else:
        request = KaggleSource(version=getattr(args, "version", None))
    t0 = time.monotonic()
    run_id = request_run(settings, request, requested_by=f"cli:{args.cmd}")
    err(f"requested run {run_id} ({request.model_dump_json()})")
    if args.cmd == "ingest" and not args.wait:
        print(json.dumps({"run_id": run_id}))
        return 0
    expected = args.rows if args.source == "generated" else None
    summary = wait_for_run(settings, run_id, getattr(args, "timeout", 1800), expected)
    summary["seconds"] = round(time.monotonic() - t0, 2)
    if args.cmd == "demo":
        gw = settings.gateway
        summary["gateway"] = f"http://{gw.host}:{gw.port}"
        summary["api_key"] = dev_key(settings, args.run_dir)
        if summary["status"] != "succeeded":
            err(f"run {run_id} {summary['status']}: {summary.get('error')}")
    out = {k: summary[k] for k in ("run_id", *COUNT_NAMES, "seconds")}
    out.update({k: summary[k] for k in ("gateway", "api_key") if k in summary})
    if summary["status"] != "succeeded":
        out["status"], out["error"] = summary["status"], summary.get("error")
    print(json.dumps(out), flush=True)
    return 0 if summary["status"] == "succeeded" else 1


def dlq_command(settings: Settings, args: argparse.Namespace) -> int:
    from lake.adapters.dead_letters import DeadLetterStore, Scope
    from lake.adapters.mysql import Session
    from lake.recovery import redrive_dead_letters

    topic = None if args.topic is None else settings.topic(args.topic)
    if args.dlq_cmd == "redrive":
        scope = Scope(letter_id=args.letter, run_id=args.run, topic=topic, all=args.all)
        done = redrive_dead_letters(settings, scope, "cli")
        err(f"redrove {len(done.letters)} dead letter(s); runs reopened: {done.runs_reopened or 'none'}")
        print(json.dumps(done.as_dict()))
        return 0
    repo = Session(settings.mysql)
    try:
        letters = DeadLetterStore(repo).list(args.run, topic, limit=args.limit)
    finally:
        repo.close()
    prefix = settings.kafka.topic_prefix
    for x in letters:
        state = f"redriven {x.redriven_at:%Y-%m-%d %H:%M}" if x.redriven_at else "waiting"
        print(
            f"{x.letter_id}  {x.source_topic.removeprefix(prefix)}  run {x.run_id or '-'}"
            f" chunk {'-' if x.chunk_id is None else x.chunk_id}  attempts {x.attempts}"
            f"  last {x.last_failed_at:%Y-%m-%d %H:%M:%S}  {state}\n    {x.error}"
        )
    if not letters:
        err("no dead letters")
    return 0


def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    from lake.adapters.mysql import connect, utc_now

    if args.keys_cmd == "create":
        token = create_key(settings, args.name, args.role)
        err(f"created a {args.role} key for {args.name!r}; it is shown once, store it now:")
        print(token)
        return 0
    if args.keys_cmd == "generate":
        print(auth.new_key().token)
        return 0
    if args.keys_cmd == "import":
        try:
            said = import_key(settings, args.name, args.role, os.environ.get(args.from_env, ""))
        except ValueError as exc:
            err(f"{args.from_env}: {exc}")
            return 1
        err(said)
        return 0
    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        if args.keys_cmd == "list":
            cur.execute("SELECT key_id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at")
            for key_id, name, role, created, revoked in cur.fetchall():
                print(
                    f"{key_id}  {role:8} {'revoked ' + str(revoked) if revoked else 'active':28} "
                    f"{created:%Y-%m-%d %H:%M}  {name}"
                )
            return 0
        cur.execute(
            "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
            (utc_now(), args.key_id),
        )
        if cur.rowcount == 0:
            err(f"no active key with id {args.key_id}")
            return 1
        err(f"revoked {args.key_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
