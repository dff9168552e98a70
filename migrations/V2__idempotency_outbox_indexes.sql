-- V2: what the seed schema lacks for RTM's guarantees (SPEC §5, §7, §10).
-- Runs like V1: as the schema owner, with search_path set to RTM's schema,
-- so no object below is schema-qualified.

-- Idempotency under races. RTM checks `source_ref` before acting, but two
-- replicas (or a redelivered Lobby entry racing its first delivery) can
-- both pass that check; this index makes the second INSERT of the same
-- (game, source, reference) fail with SQLSTATE 23505, which the store
-- reports as AlreadyExists and the service answers with the first row.
-- Rows without a reference ('' is the seed's default) are not constrained.
CREATE UNIQUE INDEX operation_log_source_ref_uidx
    ON operation_log (game_id, op_source, source_ref)
    WHERE source_ref <> '';

-- The admin audit query lists every game's operations newest first
-- (ORDER BY started_at DESC, id DESC, keyset on id); the seed only
-- indexes per game.
CREATE INDEX operation_log_started_id_idx
    ON operation_log (started_at DESC, id DESC);

-- `GET /admin/v1/health?status=` pages snapshots of one status by game_id.
CREATE INDEX health_snapshots_status_game_idx
    ON health_snapshots (status, game_id);

-- health_outbox: health changes waiting to be published on
-- `runtime:health_events`. A row is inserted in the same transaction as
-- the snapshot it describes, so a change is never lost while Redis is
-- down; the publisher reads rows in id order and DELETES them once Redis
-- has accepted them (every row present is pending; the stream itself is
-- the history). `id` is published as `event_id` so consumers can drop the
-- rare duplicate after a crash between XADD and DELETE.
CREATE TABLE health_outbox (
    id bigserial PRIMARY KEY,
    game_id text NOT NULL,
    container_id text NOT NULL DEFAULT '',
    event_type text NOT NULL,
    source text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    observed_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT health_outbox_event_type_chk
        CHECK (event_type IN (
            'healthy', 'probe_failed', 'exited', 'oom',
            'inspect_unhealthy', 'container_disappeared'
        )),
    CONSTRAINT health_outbox_source_chk
        CHECK (source IN ('docker_event', 'inspect', 'probe'))
);
