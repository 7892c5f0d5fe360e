-- Company-filtered pages (GET /staging?company=…, sorted by creation time) read the tweet-company
-- links in index order instead of checking every tweet of the date range for a link (≈ 5x less
-- MariaDB CPU per page, docs/benchmarks.md). A tweet's created_at and sentiment never change (the
-- first ingestion wins), so the link carries copies of them; the stager writes them with the link.
ALTER TABLE tweet_companies
    ADD COLUMN created_at DATETIME   NULL,
    ADD COLUMN sentiment  VARCHAR(8) NULL,
    ADD KEY ix_tc_company_created (company, created_at, twitter_id),
    ADD KEY ix_tc_company_sentiment_created (company, sentiment, created_at, twitter_id);

-- Links staged before this migration: copied once from their tweets.
UPDATE tweet_companies tc JOIN tweets t ON t.twitter_id = tc.twitter_id
SET tc.created_at = t.created_at, tc.sentiment = t.sentiment
WHERE tc.created_at IS NULL;
