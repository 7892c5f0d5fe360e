-- Dead letters, kept for operators (GET /dead-letters, lake dlq): one row per failed delivery of
-- an event, with the original message byte for byte, so that it can be redriven to its topic
-- after its cause is fixed. The <topic>.dlq Kafka topics keep the same letters as a log.
CREATE TABLE IF NOT EXISTS dead_letters (
    seq               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- "<topic>/<partition>/<offset>" of the delivery that failed: a redelivery of the same message
    -- (a crash before its offset was committed) updates its row instead of adding one
    letter_id         VARCHAR(300)    NOT NULL,
    source_topic      VARCHAR(249)    NOT NULL,
    service           VARCHAR(32)     NOT NULL,
    run_id            VARCHAR(64)     NULL,
    chunk_id          INT             NULL,
    error_type        VARCHAR(128)    NOT NULL,
    error             TEXT            NOT NULL,
    -- every attempt at this event, over its redrives too
    attempts          INT             NOT NULL,
    first_failed_at   DATETIME(3)     NOT NULL,
    last_failed_at    DATETIME(3)     NOT NULL,
    event_key         VARBINARY(1024) NULL,
    event_value       MEDIUMBLOB      NOT NULL,
    -- the dead letter whose redrive this delivery was (NULL: the event's first delivery)
    redrive_of        VARCHAR(300)    NULL,
    -- a redrive claims the letter, publishes it, then confirms: see lake.recovery
    redrive_claimed_at DATETIME(3)    NULL,
    redriven_at       DATETIME(3)     NULL,
    redrive_request   VARCHAR(64)     NULL,
    UNIQUE KEY ux_dl_letter (letter_id),
    KEY ix_dl_run (run_id, seq),
    KEY ix_dl_topic (source_topic, seq)
);

-- What happened to a run besides its counts: failures, redrives, replays (GET /runs/{id}).
CREATE TABLE IF NOT EXISTS run_history (
    run_id  VARCHAR(64)  NOT NULL,
    seq     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    at      DATETIME(3)  NOT NULL,
    event   VARCHAR(16)  NOT NULL,
    detail  TEXT         NULL,
    PRIMARY KEY (seq),
    KEY ix_rh_run (run_id, seq)
);
