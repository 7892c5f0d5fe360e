-- The list projection: each curated document's list form (the API's JSON item, without tokens),
-- rendered by the curator from the document it wrote and kept beside the document's catalogue row,
-- under the same revision. GET /curated pages and their items come from MySQL alone; the document
-- store (MongoDB / FerretDB) serves whole documents: /curated/{id}, and pages with tokens.
-- FerretDB 1.24 spends ~0.2 ms of CPU per document it reads (docs/decisions.md), so a 50-item page
-- read from it costs ten times a staging page. Rows catalogued before this migration keep NULL:
-- their items are read from the document store until their chunk is curated again.
ALTER TABLE curated_tweets ADD COLUMN item MEDIUMBLOB NULL;
