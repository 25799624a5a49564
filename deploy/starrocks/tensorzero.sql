-- StarRocks tables mirroring TensorZero's ClickHouse tables that sluice dual-writes
-- (the starrocks sink's `include` list). Needs StarRocks >= 3.1 (generated columns,
-- ORDER BY on Primary Key tables). Run: mysql -h FE -P 9030 -u root < tensorzero.sql
--
-- Table model: PRIMARY KEY on the row's id. sluice delivers at least once; a Stream Load
-- label makes a retry idempotent only while StarRocks remembers the label
-- (label_keep_max_second, 3 days). A Primary Key table upserts, so a row replayed later
-- still (backfill, `sluice dlq replay`, a WAL restored from a snapshot, two
-- sidecars with different log ids sending the same row) replaces itself instead of doubling.
-- Duplicate Key tables would double such rows; Aggregate/Unique models add nothing here.
-- The ClickHouse ORDER BY becomes the sort key (ORDER BY), which serves the same queries.
--
-- Types (PROTOCOLS.md §B): UUID -> VARCHAR(36); LowCardinality(String) -> VARCHAR(255);
-- String holding JSON (input, output, tool_params, inference_params, ...) -> JSON;
-- raw provider text (raw_request, raw_response) -> VARCHAR(1048576), the largest VARCHAR (a
-- longer value is filtered by the load and lands in sluice's DLQ);
-- Map(String,String) -> JSON; Array(String) of JSON items -> JSON; Nullable(X) -> X NULL;
-- UInt32 -> BIGINT (INT is signed 32-bit); UInt64 -> LARGEINT; UInt256 (sent as a decimal
-- string) -> VARCHAR(78); Bool -> BOOLEAN; Float32 -> FLOAT; Enum8 (sent as its name) ->
-- VARCHAR(32); FixedString(64) -> VARCHAR(64); DateTime -> DATETIME.
-- `timestamp` is MATERIALIZED UUIDv7ToDateTime(id) in ClickHouse, so the gateway never
-- sends it: here it is a generated column computed from the UUIDv7's 48-bit millisecond
-- prefix, in the FE's session time zone (set it to UTC).

CREATE DATABASE IF NOT EXISTS tensorzero;
USE tensorzero;

CREATE TABLE IF NOT EXISTS ChatInference (
    id                     VARCHAR(36)  NOT NULL,
    function_name          VARCHAR(255) NOT NULL,
    variant_name           VARCHAR(255) NOT NULL,
    episode_id             VARCHAR(36)  NOT NULL,
    input                  JSON         NULL,
    output                 JSON         NULL,
    tool_params            JSON         NULL,
    inference_params       JSON         NULL,
    processing_time_ms     BIGINT       NULL,
    tags                   JSON         NULL,
    extra_body             JSON         NULL,
    ttft_ms                BIGINT       NULL,
    dynamic_tools          JSON         NULL,
    dynamic_provider_tools JSON         NULL,
    allowed_tools          JSON         NULL,
    tool_choice            JSON         NULL,
    parallel_tool_calls    BOOLEAN      NULL,
    snapshot_hash          VARCHAR(78)  NULL,
    `timestamp`            DATETIME     NULL AS CAST(from_unixtime(CAST(conv(substr(replace(id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (id)
DISTRIBUTED BY HASH(id)
ORDER BY (function_name, variant_name, episode_id);

CREATE TABLE IF NOT EXISTS JsonInference (
    id                 VARCHAR(36)  NOT NULL,
    function_name      VARCHAR(255) NOT NULL,
    variant_name       VARCHAR(255) NOT NULL,
    episode_id         VARCHAR(36)  NOT NULL,
    input              JSON         NULL,
    output             JSON         NULL,
    output_schema      JSON         NULL,
    inference_params   JSON         NULL,
    processing_time_ms BIGINT       NULL,
    tags               JSON         NULL,
    extra_body         JSON         NULL,
    auxiliary_content  JSON         NULL,
    ttft_ms            BIGINT       NULL,
    snapshot_hash      VARCHAR(78)  NULL,
    `timestamp`        DATETIME     NULL AS CAST(from_unixtime(CAST(conv(substr(replace(id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (id)
DISTRIBUTED BY HASH(id)
ORDER BY (function_name, variant_name, episode_id);

CREATE TABLE IF NOT EXISTS ModelInference (
    id                  VARCHAR(36)      NOT NULL,
    inference_id        VARCHAR(36)      NOT NULL,
    raw_request         VARCHAR(1048576) NULL,
    raw_response        VARCHAR(1048576) NULL,
    model_name          VARCHAR(255)     NOT NULL,
    model_provider_name VARCHAR(255)     NOT NULL,
    input_tokens        BIGINT           NULL,
    output_tokens       BIGINT           NULL,
    response_time_ms    BIGINT           NULL,
    ttft_ms             BIGINT           NULL,
    `system`            VARCHAR(1048576) NULL,
    input_messages      JSON             NULL,
    output              JSON             NULL,
    cached              BOOLEAN          NULL DEFAULT "false",
    finish_reason       VARCHAR(32)      NULL,
    snapshot_hash       VARCHAR(78)      NULL,
    `timestamp`         DATETIME         NULL AS CAST(from_unixtime(CAST(conv(substr(replace(id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (id)
DISTRIBUTED BY HASH(id)
ORDER BY (inference_id);

-- ReplacingMergeTree(timestamp, is_deleted) in ClickHouse: a Primary Key table on the
-- ClickHouse sort key gives the same "last write wins" without waiting for merges.
-- is_deleted stays a column (readers filter on it), as the gateway writes it as data.
CREATE TABLE IF NOT EXISTS ModelInferenceCache (
    short_cache_key LARGEINT         NOT NULL,
    long_cache_key  VARCHAR(64)      NOT NULL,
    `timestamp`     DATETIME         NULL DEFAULT CURRENT_TIMESTAMP,
    output          JSON             NULL,
    raw_request     VARCHAR(1048576) NULL,
    raw_response    VARCHAR(1048576) NULL,
    is_deleted      BOOLEAN          NULL DEFAULT "false",
    input_tokens    BIGINT           NULL,
    output_tokens   BIGINT           NULL,
    finish_reason   VARCHAR(32)      NULL
) PRIMARY KEY (short_cache_key, long_cache_key)
DISTRIBUTED BY HASH(short_cache_key);

CREATE TABLE IF NOT EXISTS BooleanMetricFeedback (
    id            VARCHAR(36)  NOT NULL,
    target_id     VARCHAR(36)  NOT NULL,
    metric_name   VARCHAR(255) NOT NULL,
    value         BOOLEAN      NULL,
    tags          JSON         NULL,
    snapshot_hash VARCHAR(78)  NULL,
    `timestamp`   DATETIME     NULL AS CAST(from_unixtime(CAST(conv(substr(replace(id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (id)
DISTRIBUTED BY HASH(id)
ORDER BY (metric_name, target_id);

CREATE TABLE IF NOT EXISTS FloatMetricFeedback (
    id            VARCHAR(36)  NOT NULL,
    target_id     VARCHAR(36)  NOT NULL,
    metric_name   VARCHAR(255) NOT NULL,
    value         FLOAT        NULL,
    tags          JSON         NULL,
    snapshot_hash VARCHAR(78)  NULL,
    `timestamp`   DATETIME     NULL AS CAST(from_unixtime(CAST(conv(substr(replace(id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (id)
DISTRIBUTED BY HASH(id)
ORDER BY (metric_name, target_id);

CREATE TABLE IF NOT EXISTS CommentFeedback (
    id            VARCHAR(36)      NOT NULL,
    target_id     VARCHAR(36)      NOT NULL,
    target_type   VARCHAR(32)      NOT NULL,   -- Enum8('inference', 'episode')
    value         VARCHAR(1048576) NULL,
    tags          JSON             NULL,
    snapshot_hash VARCHAR(78)      NULL,
    `timestamp`   DATETIME         NULL AS CAST(from_unixtime(CAST(conv(substr(replace(id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (id)
DISTRIBUTED BY HASH(id)
ORDER BY (target_id);

CREATE TABLE IF NOT EXISTS DemonstrationFeedback (
    id            VARCHAR(36) NOT NULL,
    inference_id  VARCHAR(36) NOT NULL,
    value         JSON        NULL,
    tags          JSON        NULL,
    snapshot_hash VARCHAR(78) NULL,
    `timestamp`   DATETIME    NULL AS CAST(from_unixtime(CAST(conv(substr(replace(id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (id)
DISTRIBUTED BY HASH(id)
ORDER BY (inference_id);

-- Keyed by feedback_id: the ClickHouse table has no id column.
CREATE TABLE IF NOT EXISTS StaticEvaluationHumanFeedback (
    feedback_id            VARCHAR(36)      NOT NULL,
    metric_name            VARCHAR(255)     NOT NULL,
    datapoint_id           VARCHAR(36)      NOT NULL,
    output                 JSON             NULL,
    value                  JSON             NULL,
    evaluator_inference_id VARCHAR(36)      NULL,
    `timestamp`            DATETIME         NULL AS CAST(from_unixtime(CAST(conv(substr(replace(feedback_id, '-', ''), 1, 12), 16, 10) AS BIGINT) DIV 1000) AS DATETIME)
) PRIMARY KEY (feedback_id)
DISTRIBUTED BY HASH(feedback_id)
ORDER BY (metric_name, datapoint_id);
