-- Four page-order indexes that the sentiment-led ones can replace (issue 13: every secondary index
-- is written for every staged or curated tweet, ≈ 6 µs of MariaDB's CPU each). A tweet has exactly
-- one of three sentiments, so a page without a sentiment filter merges the three walks of
-- (…, sentiment, created_at, twitter_id), each reading at most the page's size
-- (services/gateway/tweet_pages.py, Plan.walk); docs/api.md lists which index serves each query.
ALTER TABLE tweets DROP INDEX ix_tweets_created;
ALTER TABLE curated_tweets DROP INDEX ix_ct_created;
ALTER TABLE tweet_companies DROP INDEX ix_tc_company_created;
ALTER TABLE curated_companies DROP INDEX ix_cc_company_created;
