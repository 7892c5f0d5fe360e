"""Fixtures of the integration tests: the pipeline's handlers wired in-process over the real stores
(the broker is the only fake)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pymongo
import pytest

from lake.adapters.broker import Publisher
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.settings import Settings
from lake.transform.tokenize import load_tokenizer
from services.curator.handler import Curator
from services.ingestor.handler import Ingestor
from services.stager.handler import Stager
from tests.fakes import CollectingPublisher


@pytest.fixture
def mongo(settings: Settings) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def pipeline(
    settings: Settings, store: S3ObjectStore, repo: StagingRepository, ledger: RunLedger, mongo: Any
):
    small = settings.model_copy(update={"pipeline": settings.pipeline.model_copy(update={"chunk_rows": 700})})
    pub = CollectingPublisher()
    publisher = cast(Publisher, pub)
    tok = load_tokenizer("bert-base-uncased", 64, offline=True)
    curated = CuratedRepository(mongo, settings.mongo)
    curator = Curator(small, store, repo, ledger, curated, tok, publisher)
    yield (
        pub,
        Ingestor(small, store, ledger, publisher),
        Stager(small, store, repo, ledger, publisher),
        curator,
        curated,
    )
    curator.close()
