"""The pipeline's state from Kafka: topics and partitions, each consumer group's lag, and the depth
of every dead-letter topic — for operators without a Kafka UI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from kafka.errors import KafkaError
from pydantic import BaseModel, Field

from services.gateway.deps import Analyst, StoresDep
from services.gateway.kafka_state import current
from services.gateway.stores import StoreUnavailable

router = APIRouter(tags=["pipeline"])


class TopicState(BaseModel):
    name: str
    partitions: int
    messages: int = Field(description="messages currently retained (end minus start offsets)")
    end_offset: int = Field(description="sum of the partitions' end offsets")


class GroupState(BaseModel):
    service: str
    group: str
    topic: str
    lag: int = Field(description="messages not yet committed by the group, over all partitions")
    partitions: dict[int, int] = Field(description="lag per partition")


class PipelineState(BaseModel):
    topics: list[TopicState]
    consumer_groups: list[GroupState]
    dead_letters: dict[str, int] = Field(description="dead-letter topic -> messages in it")
    dead_letter_total: int


@router.get(
    "/pipeline",
    response_model=PipelineState,
    summary="Topics, consumer-group lag and dead-letter depth (analyst)",
    description="One snapshot serves every caller for 2 s, shared with `/health` and the dashboard:"
    " a burst of callers asks Kafka once.",
)
async def pipeline(stores: StoresDep, _: Analyst) -> Any:
    try:
        return await stores.pipeline.get(lambda: current(stores))
    except (KafkaError, OSError) as exc:  # the client was closed: the next snapshot makes another
        raise StoreUnavailable("kafka") from exc
