-- Staged tweets per day, company and sentiment, kept per chunk by the stager in the same transaction
-- as the rows (like chunk_facets): the dashboard's charts and GET /stats/daily read these few rows,
-- never the tweets table.
CREATE TABLE IF NOT EXISTS chunk_daily (
    run_id     VARCHAR(64) NOT NULL,
    chunk_id   INT         NOT NULL,
    day        DATE        NOT NULL,
    company    VARCHAR(64) NOT NULL,
    sentiment  VARCHAR(8)  NOT NULL,
    n          INT         NOT NULL,
    PRIMARY KEY (run_id, chunk_id, day, company, sentiment),
    KEY ix_daily_day (day)
);

-- Chunks staged before this migration: counted once from their rows.
INSERT IGNORE INTO chunk_daily (run_id, chunk_id, day, company, sentiment, n)
SELECT run_id, chunk_id, DATE(created_at), company, sentiment, COUNT(*)
FROM tweets GROUP BY run_id, chunk_id, DATE(created_at), company, sentiment;
