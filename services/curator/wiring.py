"""The curator process's parts, wired (``python -m services.curator`` runs :func:`main` once the
allocators are set: ``services/curator/__main__.py``)."""

from __future__ import annotations

from lake.adapters.broker import Publisher
from lake.adapters.curated_repo import CuratedRepository, make_client
from lake.adapters.mysql import Session
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.events import StagedChunkReady
from lake.runner import Wiring
from lake.service import run_service
from lake.settings import Settings
from lake.transform.tokenize import load_tokenizer
from services.curator.handler import Curator


def build(settings: Settings, publisher: Publisher) -> Wiring[StagedChunkReady]:
    tokenizer = load_tokenizer(settings.pipeline.tokenizer, settings.pipeline.max_tokens)
    db = Session(settings.mysql)  # one connection: a chunk's catalogue rows and progress commit together
    curator = Curator(
        settings,
        S3ObjectStore.from_settings(settings.s3),
        StagingRepository(db),
        RunLedger(db),
        CuratedRepository(make_client(settings.mongo), settings.mongo),
        tokenizer,
        publisher,
    )
    return Wiring(StagedChunkReady, curator.handle, curator.on_dead_letter, close=curator.close)


def main() -> None:
    run_service("curator", build)
