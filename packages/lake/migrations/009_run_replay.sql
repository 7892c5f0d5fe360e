-- A run replayed from a layer (POST /runs/{id}/replay) is compacted again: the curated Parquet
-- objects it had stay readable until the new ones are written, then those not rewritten are
-- deleted (services/curator/finalize.py).
ALTER TABLE runs ADD COLUMN previous_curated_objects MEDIUMTEXT NULL;
