-- Three staging indexes no query reads any more (issue 13: every secondary index is written for
-- every staged row). Company pages walk tweet_companies (migration 004), so tweets'
-- (company, created_at) is unused; (company, created_at, twitter_id) serves every company walk,
-- so (company, twitter_id) is unused; (hashtag, created_at, twitter_id) serves every hashtag walk
-- (migration 005), so (hashtag, twitter_id) is unused. docs/api.md lists which index serves each
-- query; tests/integration/test_stores.py checks the plans of the list queries.
ALTER TABLE tweets DROP INDEX ix_tweets_company_created;
ALTER TABLE tweet_companies DROP INDEX ix_tc_company;
ALTER TABLE tweet_hashtags DROP INDEX ix_th_hashtag;
