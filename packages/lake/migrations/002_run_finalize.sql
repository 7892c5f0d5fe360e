-- Run finalisation (curator): the compacted curated Parquet objects of a run, recorded before the
-- per-chunk parts are deleted, so a finalisation cut short resumes instead of compacting again.
ALTER TABLE runs ADD COLUMN curated_objects MEDIUMTEXT NULL;

-- Company links added by a run, found without scanning the whole link table.
ALTER TABLE tweet_companies ADD KEY ix_tc_lineage (run_id, chunk_id);
