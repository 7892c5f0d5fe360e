-- The raw.ready event of each raw chunk, as the ingestor published it (layer 'raw' only): a replay
-- from stage (POST /runs/{id}/replay {"from": "stage"}) publishes exactly these chunks again, with
-- no need to split the raw objects anew. NULL for chunks ingested before this migration.
ALTER TABLE chunk_progress ADD COLUMN event MEDIUMBLOB NULL;
