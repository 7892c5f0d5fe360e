-- A curated document's revision, bumped each time the curator rewrites the document (a replayed
-- chunk) or changes its `companies` (a later run's link), always after the document store holds
-- the new content. The gateway caches rendered documents by (twitter_id, revision)
-- (services/gateway/doc_cache.py, docs/api.md): a document read under an older revision is
-- never served once the catalogue names a newer one.
ALTER TABLE curated_tweets ADD COLUMN revision INT UNSIGNED NOT NULL DEFAULT 0;
