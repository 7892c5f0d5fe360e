"""Composition root of the stager process: ``python -m services.stager``."""

from __future__ import annotations

from lake.adapters.broker import Publisher
from lake.adapters.mysql import Session
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.events import RawChunkReady
from lake.runner import Wiring
from lake.service import run_service
from lake.settings import Settings
from services.stager.handler import Stager


def build(settings: Settings, publisher: Publisher) -> Wiring[RawChunkReady]:
    db = Session(settings.mysql)  # one connection: a chunk's rows and its progress commit together
    stager = Stager(
        settings, S3ObjectStore.from_settings(settings.s3), StagingRepository(db), RunLedger(db), publisher
    )
    return Wiring(RawChunkReady, stager.handle, stager.on_dead_letter)


if __name__ == "__main__":
    run_service("stager", build)
