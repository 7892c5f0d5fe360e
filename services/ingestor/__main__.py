"""Composition root of the ingestor process: ``python -m services.ingestor``."""

from __future__ import annotations

from lake.adapters.broker import Publisher
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.events import IngestRequested
from lake.runner import Wiring
from lake.service import run_service
from lake.settings import Settings
from services.ingestor.handler import Ingestor


def build(settings: Settings, publisher: Publisher) -> Wiring[IngestRequested]:
    ingestor = Ingestor(
        settings, S3ObjectStore.from_settings(settings.s3), RunLedger(settings.mysql), publisher
    )
    return Wiring(IngestRequested, ingestor.handle, ingestor.on_dead_letter)


if __name__ == "__main__":
    run_service("ingestor", build)
