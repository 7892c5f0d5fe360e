-- The curated catalogue: which documents the curated store (MongoDB / FerretDB) holds, with the
-- fields its list queries filter and sort on. GET /curated pages tweet ids from these indexes in
-- (created_at, twitter_id) order and then fetches the page's documents by _id: no list query
-- depends on the document store sorting or range-filtering (FerretDB 1.24 does neither in its
-- storage). The curator writes a chunk's rows after its documents exist, and a company link only
-- once the document's `companies` holds it, so the catalogue never lists a missing document.
CREATE TABLE IF NOT EXISTS curated_tweets (
    twitter_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    created_at  DATETIME        NOT NULL,
    sentiment   VARCHAR(8)      NOT NULL,
    run_id      VARCHAR(64)     NOT NULL,
    chunk_id    INT             NOT NULL,
    KEY ix_ct_created (created_at, twitter_id),
    KEY ix_ct_sentiment_created (sentiment, created_at, twitter_id),
    KEY ix_ct_lineage (run_id, chunk_id)
);

CREATE TABLE IF NOT EXISTS curated_companies (
    twitter_id  BIGINT UNSIGNED NOT NULL,
    company     VARCHAR(64)     NOT NULL,
    created_at  DATETIME        NOT NULL,
    sentiment   VARCHAR(8)      NOT NULL,
    PRIMARY KEY (twitter_id, company),
    KEY ix_cc_company_created (company, created_at, twitter_id),
    KEY ix_cc_company_sentiment_created (company, sentiment, created_at, twitter_id)
);

CREATE TABLE IF NOT EXISTS curated_hashtags (
    twitter_id  BIGINT UNSIGNED NOT NULL,
    hashtag     VARCHAR(191)    NOT NULL,
    created_at  DATETIME        NOT NULL,
    sentiment   VARCHAR(8)      NOT NULL,
    PRIMARY KEY (twitter_id, hashtag),
    KEY ix_ch_hashtag_created (hashtag, created_at, twitter_id)
);

-- Hashtag pages in time order on the staging layer too: the links carry copies of the tweet's
-- created_at and sentiment (they never change: the first ingestion wins), like tweet_companies.
ALTER TABLE tweet_hashtags
    ADD COLUMN created_at DATETIME   NULL,
    ADD COLUMN sentiment  VARCHAR(8) NULL,
    ADD KEY ix_th_hashtag_created (hashtag, created_at, twitter_id);

UPDATE tweet_hashtags th JOIN tweets t ON t.twitter_id = th.twitter_id
SET th.created_at = t.created_at, th.sentiment = t.sentiment
WHERE th.created_at IS NULL;

-- min_followers with a high threshold: its few candidates are found by this index (docs/api.md).
ALTER TABLE tweets ADD KEY ix_tweets_followers (followers);

-- Chunks curated before this migration: catalogued once from staging (their runs were finalised,
-- so the documents' companies are the tweets' links).
INSERT IGNORE INTO curated_tweets (twitter_id, created_at, sentiment, run_id, chunk_id)
SELECT t.twitter_id, t.created_at, t.sentiment, t.run_id, t.chunk_id
FROM tweets t JOIN chunk_progress cp
  ON cp.run_id = t.run_id AND cp.chunk_id = t.chunk_id AND cp.layer = 'curated';

INSERT IGNORE INTO curated_companies (twitter_id, company, created_at, sentiment)
SELECT tc.twitter_id, tc.company, ct.created_at, ct.sentiment
FROM curated_tweets ct JOIN tweet_companies tc ON tc.twitter_id = ct.twitter_id;

INSERT IGNORE INTO curated_hashtags (twitter_id, hashtag, created_at, sentiment)
SELECT th.twitter_id, th.hashtag, ct.created_at, ct.sentiment
FROM curated_tweets ct JOIN tweet_hashtags th ON th.twitter_id = ct.twitter_id;
