-- V3: case-colliding game ids and reused idempotency references (issue 13).
-- Runs like V1 and V2: as the schema owner, with search_path set to RTM's
-- schema, so no object below is schema-qualified.

-- Docker's embedded DNS compares names case-insensitively, so two live
-- games whose ids differ only in case would share `rtm-<game_id>`. A start
-- checks, under the per-game lock (keyed by the lower-cased id), for
-- another live record with the same lower-cased id; this index serves it.
CREATE INDEX runtime_records_lower_game_idx
    ON runtime_records (lower(game_id));

-- What a row's idempotency reference was used for: the operation, game
-- and parameters in one canonical text (e.g.
-- `stop game=g1 image= stop_timeout_ms=10000 force=false`). A reference
-- replays only the same request; reused for a different one it is
-- refused. '' for rows without a reference and rows written before V3
-- (their game, kind and image_ref are compared instead). Additive: the
-- seed's columns keep their meaning.
ALTER TABLE operation_log
    ADD COLUMN request text NOT NULL DEFAULT '';

-- A reference names one request per source, across games (V2's index is
-- per game). Rows before V3 have request = '' and are not constrained, so
-- the migration cannot fail on existing data.
CREATE UNIQUE INDEX operation_log_source_ref_request_uidx
    ON operation_log (op_source, source_ref)
    WHERE source_ref <> '' AND request <> '';

-- Looking a reference up by source alone (any game): V2's index leads
-- with game_id and cannot serve it.
CREATE INDEX operation_log_source_ref_idx
    ON operation_log (op_source, source_ref)
    WHERE source_ref <> '';
