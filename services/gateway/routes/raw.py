"""The raw layer (S3): a run's original CSV objects, and records of one object streamed from S3."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from lake.adapters.objectstore import S3ObjectStore
from lake.transform.chunking import InvalidRawFile, read_columns
from lake.transform.csvrecords import iter_records
from services.gateway.deps import Analyst, StoresDep
from services.gateway.read.runs import RUN_ID

router = APIRouter(tags=["raw"])
MAX_OFFSET = 2_000_000


class RawRecord(BaseModel):
    record_no: int = Field(description="1-based record number in the object (the header is not a record)")
    fields: dict[str, str] | None = Field(description="by column name; null when the record is not valid CSV")
    error: str | None = None


class RawPage(BaseModel):
    run_id: str
    objects: list[str] = Field(description="the run's raw objects (keys in the raw bucket)")
    key: str
    columns: list[str]
    offset: int
    limit: int
    records: list[RawRecord]
    next_offset: int | None


def read_records(store: S3ObjectStore, bucket: str, key: str, offset: int, limit: int) -> dict[str, Any]:
    """Stream the object: records before ``offset`` are parsed and dropped, never held."""
    lines = store.iter_lines(bucket, key)
    try:
        columns, _ = read_columns(io.BytesIO(next(lines, b"")), key)
        records: list[dict[str, Any]] = []
        more = False
        numbered = enumerate(iter_records(lines), start=1)
        for no, rec in itertools.islice(numbered, offset, offset + limit + 1):
            if len(records) == limit:
                more = True
                break
            fields = None
            error = rec.error
            if rec.fields is not None:
                if len(rec.fields) == len(columns):
                    fields = {
                        c: v.encode("utf-8", "replace").decode()
                        for c, v in zip(columns, rec.fields, strict=True)
                    }
                else:
                    error = f"{len(rec.fields)} fields, expected {len(columns)}"
            records.append({"record_no": no, "fields": fields, "error": error})
        return {"columns": columns, "records": records, "more": more}
    finally:
        lines.close()


@router.get(
    "/raw",
    response_model=RawPage,
    summary="Raw CSV records of a run's object, streamed from S3 (analyst)",
    description="Without `run_id`, the latest run that has raw objects; without `key`, its first object.",
)
async def get_raw(
    stores: StoresDep,
    _: Analyst,
    run_id: Annotated[
        str | None,
        Query(
            pattern=RUN_ID,
            description="a run id (default: the latest run)",
            examples=["20201013T120000Z-1a2b3c4d"],
        ),
    ] = None,
    key: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=1024,
            description="one of the run's objects (default: its first)",
            examples=["runs/20201013T120000Z-1a2b3c4d/Bigtech - 12-07-2020 till 19-09-2020.csv"],
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="records to skip", examples=[0])] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="records to return", examples=[10])] = 10,
) -> Any:
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        if run_id is None:
            await cur.execute(
                "SELECT run_id, raw_objects FROM runs WHERE raw_objects IS NOT NULL"
                " ORDER BY requested_at DESC LIMIT 1"
            )
        else:
            await cur.execute("SELECT run_id, raw_objects FROM runs WHERE run_id = %s", (run_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "no such run" if run_id else "no run has raw objects yet"
        )
    objects: list[str] = json.loads(row[1]) if row[1] else []
    if not objects:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {row[0]} has no raw objects (yet)")
    if key is None:
        key = objects[0]
    elif key not in objects:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{key} is not a raw object of run {row[0]}")
    bucket = stores.settings.s3.raw_bucket
    try:
        page = await asyncio.to_thread(read_records, stores.s3_sync, bucket, key, offset, limit)
    except InvalidRawFile as exc:
        raise HTTPException(422, str(exc)) from exc
    return {
        "run_id": row[0],
        "objects": objects,
        "key": key,
        "columns": page["columns"],
        "offset": offset,
        "limit": limit,
        "records": page["records"],
        "next_offset": offset + limit if page["more"] else None,
    }
