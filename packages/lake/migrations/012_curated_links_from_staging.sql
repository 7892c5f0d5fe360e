-- Issue 13: the catalogue's two link tables cost MariaDB ≈ 35 µs of CPU per curated tweet (their
-- rows and index entries: docs/benchmarks.md), and they repeat what staging already indexes.
-- Company and hashtag pages of /curated now walk the staging links' indexes (tweet_companies'
-- (company[, sentiment], created_at, twitter_id), tweet_hashtags' (hashtag, created_at, twitter_id))
-- and keep an entry only when curated_tweets lists its tweet (services/gateway/tweet_pages.py):
--   * hashtags are a function of the text, and the curated document is built from the staged row
--     whose links these are: the hashtag links of a catalogued tweet are its document's;
--   * a company link can be staged before the document holds it (a later run's link, copied at that
--     run's finalisation), so the catalogue keeps each document's companies as a JSON array beside
--     its list item, written with it under the same revision, and a company entry is kept only when
--     the array holds it: a curated company page still never lists a document without its company.
ALTER TABLE curated_tweets ADD COLUMN companies JSON NULL;

UPDATE curated_tweets ct
JOIN (SELECT twitter_id, JSON_ARRAYAGG(company) AS companies FROM curated_companies GROUP BY twitter_id) cc
  ON cc.twitter_id = ct.twitter_id
SET ct.companies = cc.companies;

DROP TABLE curated_companies;
DROP TABLE curated_hashtags;
