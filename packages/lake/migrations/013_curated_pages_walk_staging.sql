-- The catalogue's time-ordered indexes (issue 13: every secondary index is written for every
-- curated tweet). Curated pages by time and by sentiment walk the staging indexes (tweets'
-- (created_at) and (sentiment, created_at)) and keep the catalogued tweets, as company and hashtag
-- pages walk the staging links since migration 012 (services/gateway/tweet_pages.py). The walk is
-- read from the staging index alone and each kept entry's list item by primary key: with the items
-- read by the walk itself, (sentiment, created_at, twitter_id) no longer covered it, and MariaDB
-- read a sentiment's entries from the newest one down to a page's end date or cursor.
ALTER TABLE curated_tweets DROP INDEX ix_ct_created, DROP INDEX ix_ct_sentiment_created;
