-- Staging layer, run bookkeeping and API keys. Works on MariaDB 10.11 and MySQL 8
-- (utf8mb4_unicode_ci exists on both; utf8mb4_0900_ai_ci does not exist on MariaDB).

CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR(64)  NOT NULL PRIMARY KEY,
    source        TEXT         NOT NULL,
    requested_by  VARCHAR(64)  NOT NULL,
    status        VARCHAR(16)  NOT NULL DEFAULT 'running',
    error         TEXT         NULL,
    total_chunks  INT          NULL,
    raw_objects   TEXT         NULL,
    requested_at  DATETIME(3)  NOT NULL,
    started_at    DATETIME(3)  NULL,
    finished_at   DATETIME(3)  NULL,
    KEY ix_runs_requested (requested_at)
);

-- One row per run, layer and chunk; replaced (not added to) when a chunk is processed again,
-- so run totals are exact under at-least-once delivery.
CREATE TABLE IF NOT EXISTS chunk_progress (
    run_id          VARCHAR(64)   NOT NULL,
    layer           VARCHAR(16)   NOT NULL,
    chunk_id        INT           NOT NULL,
    raw_key         VARCHAR(1024) NOT NULL,
    raw_rows        INT           NOT NULL DEFAULT 0,
    rejected_rows   INT           NOT NULL DEFAULT 0,
    duplicate_rows  INT           NOT NULL DEFAULT 0,
    staged_rows     INT           NOT NULL DEFAULT 0,
    curated_docs    INT           NOT NULL DEFAULT 0,
    started_at      DATETIME(3)   NOT NULL,
    finished_at     DATETIME(3)   NOT NULL,
    PRIMARY KEY (run_id, layer, chunk_id)
);

-- Maintained counts of staged rows per chunk by company and by sentiment: /stats sums this
-- small table instead of scanning the tweets.
CREATE TABLE IF NOT EXISTS chunk_facets (
    run_id    VARCHAR(64) NOT NULL,
    chunk_id  INT         NOT NULL,
    facet     VARCHAR(16) NOT NULL,
    value     VARCHAR(64) NOT NULL,
    n         INT         NOT NULL,
    PRIMARY KEY (run_id, chunk_id, facet, value)
);

CREATE TABLE IF NOT EXISTS tweets (
    twitter_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    created_at     DATETIME        NOT NULL,
    company        VARCHAR(64)     NOT NULL,
    screenname     VARCHAR(255)    NOT NULL,
    username       VARCHAR(255)    NOT NULL,
    location       VARCHAR(255)    NULL,
    followers      INT UNSIGNED    NOT NULL,
    friends        INT UNSIGNED    NOT NULL,
    retweet_count  INT UNSIGNED    NOT NULL,
    search_query   VARCHAR(255)    NOT NULL,
    text           TEXT            NOT NULL,
    clean_text     TEXT            NOT NULL,
    polarity       DECIMAL(5,4)    NOT NULL,
    sentiment      VARCHAR(8)      NOT NULL,
    run_id         VARCHAR(64)     NOT NULL,
    chunk_id       INT             NOT NULL,
    raw_key        VARCHAR(1024)   NOT NULL,
    record_no      INT             NOT NULL,
    staged_at      DATETIME(3)     NOT NULL,
    KEY ix_tweets_created (created_at),
    KEY ix_tweets_sentiment_created (sentiment, created_at),
    KEY ix_tweets_company_created (company, created_at),
    KEY ix_tweets_lineage (run_id, chunk_id)
);

-- One tweet, several companies: the same tweet caught by two companies' search queries.
CREATE TABLE IF NOT EXISTS tweet_companies (
    twitter_id  BIGINT UNSIGNED NOT NULL,
    company     VARCHAR(64)     NOT NULL,
    run_id      VARCHAR(64)     NOT NULL,
    chunk_id    INT             NOT NULL,
    record_no   INT             NOT NULL,
    PRIMARY KEY (twitter_id, company),
    KEY ix_tc_company (company, twitter_id)
);

CREATE TABLE IF NOT EXISTS tweet_hashtags (
    twitter_id  BIGINT UNSIGNED NOT NULL,
    hashtag     VARCHAR(191)    NOT NULL,
    PRIMARY KEY (twitter_id, hashtag),
    KEY ix_th_hashtag (hashtag, twitter_id)
);

CREATE TABLE IF NOT EXISTS rejected_rows (
    run_id       VARCHAR(64)   NOT NULL,
    chunk_id     INT           NOT NULL,
    record_no    INT           NOT NULL,
    raw_key      VARCHAR(1024) NOT NULL,
    reason       VARCHAR(64)   NOT NULL,
    column_name  VARCHAR(64)   NULL,
    value        TEXT          NULL,
    rejected_at  DATETIME(3)   NOT NULL,
    PRIMARY KEY (run_id, chunk_id, record_no),
    KEY ix_rejected_reason (run_id, reason)
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id        VARCHAR(16)  NOT NULL PRIMARY KEY,
    key_hash      CHAR(64)     NOT NULL,
    name          VARCHAR(128) NOT NULL,
    role          VARCHAR(16)  NOT NULL,
    created_at    DATETIME(3)  NOT NULL,
    revoked_at    DATETIME(3)  NULL,
    UNIQUE KEY ux_api_keys_hash (key_hash)
);
