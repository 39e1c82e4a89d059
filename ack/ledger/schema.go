package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations upgrade the schema in order; migration i brings it to version
// i+1. They are SQLite's; every other ledger has its own.
var migrations = []string{
	`CREATE TABLE messages (
		task_id       TEXT PRIMARY KEY,
		identity      TEXT NOT NULL UNIQUE,
		bundle_id     TEXT NOT NULL DEFAULT '',
		header_id     TEXT NOT NULL DEFAULT '',
		fhir_version  TEXT NOT NULL,
		event         TEXT NOT NULL,
		fillers       TEXT NOT NULL,
		body          BLOB NOT NULL,
		response_url  TEXT NOT NULL DEFAULT '',
		status        TEXT NOT NULL,
		answer_status INTEGER NOT NULL,
		answer_type   TEXT NOT NULL DEFAULT '',
		answer_body   BLOB NOT NULL,
		received_at   INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL,
		routed_at     INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX messages_bundle_id ON messages (bundle_id) WHERE bundle_id <> '';
	CREATE INDEX messages_received_at ON messages (received_at);
	CREATE TABLE outbox (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		task_id    TEXT NOT NULL REFERENCES messages (task_id),
		filler     TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX outbox_task_id ON outbox (task_id);
	CREATE TABLE responses (
		bundle_id   TEXT PRIMARY KEY,
		identity    TEXT NOT NULL UNIQUE,
		task_id     TEXT NOT NULL,
		code        TEXT NOT NULL,
		body        BLOB NOT NULL,
		received_at INTEGER NOT NULL
	);
	CREATE INDEX responses_task_id ON responses (task_id, received_at);`,
	`ALTER TABLE messages ADD COLUMN business_status TEXT NOT NULL DEFAULT '';`,
	`CREATE TABLE callbacks (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		task_id    TEXT NOT NULL,
		bundle_id  TEXT NOT NULL,
		url        TEXT NOT NULL,
		attempts   INTEGER NOT NULL DEFAULT 0,
		next_at    INTEGER NOT NULL,
		last_error TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX callbacks_task_id ON callbacks (task_id, seq);`,
	`CREATE TABLE focus_keys (
		key     TEXT NOT NULL,
		task_id TEXT NOT NULL
	);
	CREATE INDEX focus_keys_key ON focus_keys (key);
	CREATE INDEX focus_keys_task_id ON focus_keys (task_id);`,
	`ALTER TABLE messages ADD COLUMN ack_due INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX messages_ack_due ON messages (ack_due) WHERE ack_due > 0;`,
	// An R4 Bundle.id belongs to one message: the index itself rejects reuse.
	`DROP INDEX messages_bundle_id;
	CREATE UNIQUE INDEX messages_r4_bundle_id ON messages (bundle_id) WHERE bundle_id <> '' AND fhir_version = '4.0';`,
	// The exchange core: placers, Task versions and the change log. An
	// identity is taken only within the duplicate window and per sender,
	// and an R4 Bundle.id only per placer, so messages and responses are
	// rebuilt without their unique constraints (foreign keys are off while
	// migrations run). deliveries holds each filler's delivery of an
	// exchange: its place in the route, its Task in a fan-out, and when a
	// worker claimed it (in the transaction that checks for a cancellation).
	`CREATE TABLE messages_v7 (
		task_id         TEXT PRIMARY KEY,
		identity        TEXT NOT NULL,
		placer          TEXT NOT NULL DEFAULT '',
		bundle_id       TEXT NOT NULL DEFAULT '',
		header_id       TEXT NOT NULL DEFAULT '',
		fhir_version    TEXT NOT NULL,
		event           TEXT NOT NULL,
		fillers         TEXT NOT NULL,
		body            BLOB NOT NULL,
		response_url    TEXT NOT NULL DEFAULT '',
		status          TEXT NOT NULL,
		business_status TEXT NOT NULL DEFAULT '',
		answer_status   INTEGER NOT NULL,
		answer_type     TEXT NOT NULL DEFAULT '',
		answer_body     BLOB NOT NULL,
		received_at     INTEGER NOT NULL,
		routed_at       INTEGER NOT NULL DEFAULT 0,
		ack_due         INTEGER NOT NULL DEFAULT 0,
		version         INTEGER NOT NULL DEFAULT 1,
		changed_at      INTEGER NOT NULL,
		outputs         INTEGER NOT NULL DEFAULT 0
	);
	INSERT INTO messages_v7 (task_id, identity, bundle_id, header_id, fhir_version, event, fillers, body, response_url, status,
		business_status, answer_status, answer_type, answer_body, received_at, routed_at, ack_due, changed_at, outputs)
		SELECT task_id, identity, bundle_id, header_id, fhir_version, event, fillers, body, response_url, status,
		business_status, answer_status, answer_type, answer_body, received_at, routed_at, ack_due, updated_at * 1000 + (rowid % 1000),
		(SELECT count(*) FROM responses r WHERE r.task_id = messages.task_id) FROM messages;
	DROP TABLE messages;
	ALTER TABLE messages_v7 RENAME TO messages;
	CREATE INDEX messages_identity ON messages (identity, received_at);
	CREATE INDEX messages_bundle_id ON messages (bundle_id, placer);
	CREATE INDEX messages_changed_at ON messages (changed_at);
	CREATE INDEX messages_ack_due ON messages (ack_due) WHERE ack_due > 0;
	CREATE TABLE deliveries (
		exchange_id     TEXT NOT NULL,
		filler          TEXT NOT NULL,
		position        INTEGER NOT NULL,
		task_id         TEXT NOT NULL DEFAULT '',
		started_at      INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (exchange_id, filler)
	) WITHOUT ROWID;
	INSERT INTO deliveries (exchange_id, filler, position) SELECT m.task_id, f.value, f.key FROM messages m,
		json_each('["' || replace(m.fillers, ',', '","') || '"]') f WHERE m.fillers <> '';
	CREATE TABLE responses_v7 (
		bundle_id   TEXT PRIMARY KEY,
		identity    TEXT NOT NULL,
		task_id     TEXT NOT NULL,
		sender      TEXT NOT NULL DEFAULT '',
		code        TEXT NOT NULL,
		body        BLOB NOT NULL,
		received_at INTEGER NOT NULL
	);
	INSERT INTO responses_v7 (bundle_id, identity, task_id, code, body, received_at)
		SELECT bundle_id, identity, task_id, code, body, received_at FROM responses ORDER BY rowid;
	DROP TABLE responses;
	ALTER TABLE responses_v7 RENAME TO responses;
	CREATE INDEX responses_task_id ON responses (task_id, received_at);
	CREATE INDEX responses_identity ON responses (identity, sender);
	CREATE TABLE changes (
		seq             INTEGER PRIMARY KEY AUTOINCREMENT,
		task_id         TEXT NOT NULL,
		exchange_id     TEXT NOT NULL,
		version         INTEGER NOT NULL,
		kind            TEXT NOT NULL,
		partner         TEXT NOT NULL DEFAULT '',
		detail          TEXT NOT NULL DEFAULT '',
		status          TEXT NOT NULL,
		business_status TEXT NOT NULL DEFAULT '',
		outputs         INTEGER NOT NULL DEFAULT 0,
		at              INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX changes_task_version ON changes (task_id, version);
	INSERT INTO changes (task_id, exchange_id, version, kind, status, business_status, outputs, at)
		SELECT task_id, task_id, 1, 'accepted', status, business_status, outputs, changed_at FROM messages;`,
	// A callback that can no longer be pushed is parked (parked_at > 0, with
	// its reason) and blocks its task's later callbacks. A callback's age
	// is its response's received_at (written in the same transaction).
	// callbacks_pending walks the callbacks not parked in seq order with
	// next_at and task_id at hand; each one's task head is then one probe of
	// callbacks_task_id. callbacks_parked lists the parked ones.
	`ALTER TABLE callbacks ADD COLUMN parked_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE callbacks ADD COLUMN park_reason TEXT NOT NULL DEFAULT '';
	CREATE INDEX callbacks_pending ON callbacks (seq, next_at, task_id) WHERE parked_at = 0;
	CREATE INDEX callbacks_parked ON callbacks (parked_at, seq) WHERE parked_at > 0;`,
	// Fan-out: each filler's delivery is a Task of its own, part of the
	// exchange's; a cancellation routed to a filler names the order it
	// cancels.
	`ALTER TABLE messages ADD COLUMN part_of TEXT NOT NULL DEFAULT '';
	ALTER TABLE messages ADD COLUMN cancels TEXT NOT NULL DEFAULT '';
	CREATE INDEX messages_part_of ON messages (part_of) WHERE part_of <> '';`,
}

// migrate brings the schema to the latest version in one transaction, with
// foreign keys off (a migration may rebuild a table others refer to).
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	defer func() { _, _ = db.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`) }()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case err == sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("ledger: migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("ledger: the database is at schema version %d, newer than this fhirgw (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("ledger: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = $1`, len(migrations)); err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	return tx.Commit()
}
