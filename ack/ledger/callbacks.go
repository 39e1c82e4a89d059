package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A task's head callback is the oldest one it still owes (parked or not):
// its later callbacks wait behind it, so a parked head blocks the task.
const isHead = `c.seq = (SELECT min(h.seq) FROM callbacks h WHERE h.task_id = c.task_id)`

// DueCallbacks returns, in seq order and for up to limit tasks, the head
// callback of each task whose seq is above after, that is due by now and
// not parked. A task whose head is parked or not yet due has none. Body is
// not read (see CallbackBody), so that a caller can page through many
// callbacks cheaply.
func (l *SQLite) DueCallbacks(ctx context.Context, now time.Time, after int64, limit int) ([]Callback, error) {
	rows, err := l.read.QueryContext(ctx, `SELECT c.seq, c.task_id, c.bundle_id, c.url, c.attempts, c.last_error, r.received_at, m.fhir_version
		FROM callbacks c JOIN responses r ON r.bundle_id = c.bundle_id JOIN messages m ON m.task_id = c.task_id
		WHERE c.parked_at = 0 AND c.seq > $1 AND c.next_at <= $2 AND `+isHead+`
		ORDER BY c.seq LIMIT $3`, after, l.ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: read callbacks: %w", err)
	}
	defer rows.Close()
	var out []Callback
	for rows.Next() {
		var c Callback
		var created int64
		if err := rows.Scan(&c.Seq, &c.TaskID, &c.BundleID, &c.URL, &c.Attempts, &c.LastError, &created, &c.FHIRVersion); err != nil {
			return nil, fmt.Errorf("ledger: read callbacks: %w", err)
		}
		c.CreatedAt = fromMS(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read callbacks: %w", err)
	}
	return out, nil
}

// CallbackBody returns the response message a callback carries; ErrNotFound
// when the callback is gone.
func (l *SQLite) CallbackBody(ctx context.Context, seq int64) ([]byte, error) {
	var body []byte
	err := l.read.QueryRowContext(ctx, `SELECT r.body FROM callbacks c JOIN responses r ON r.bundle_id = c.bundle_id WHERE c.seq = $1`, seq).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read callback %d: %w", seq, err)
	}
	return body, nil
}

// CallbackDone forgets a callback the placer took.
func (l *SQLite) CallbackDone(ctx context.Context, seq int64) error {
	return l.doUnisolated(ctx, func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM callbacks WHERE seq = $1`, seq)
		return err
	}, nil)
}

// CallbackFailed records a failed attempt and when to try again.
func (l *SQLite) CallbackFailed(ctx context.Context, seq int64, next time.Time, lastError string) error {
	return l.doUnisolated(ctx, func(tx *wtx) error {
		_, err := tx.exec(`UPDATE callbacks SET attempts = attempts + 1, next_at = $1, last_error = $2 WHERE seq = $3`, l.ms(next), lastError, seq)
		return err
	}, nil)
}

// CallbackParked parks a callback that will not be pushed again, with the
// reason: it stays in the ledger (see ParkedCallbacks) with its attempts
// and last error, and its task's later callbacks wait behind it. The Task
// says so in its businessStatus and history (a change). Parking a parked
// callback keeps its first parking time and reason, and changes nothing.
func (l *SQLite) CallbackParked(ctx context.Context, seq int64, reason string) error {
	at := max(l.ms(l.now()), 1) // 0 means not parked
	return l.do(ctx, func(tx *wtx) error {
		var taskID, bundleID string
		err := tx.queryRow(`UPDATE callbacks SET parked_at = $1, park_reason = $2 WHERE seq = $3 AND parked_at = 0 RETURNING task_id, bundle_id`,
			at, reason, seq).Scan(&taskID, &bundleID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // parked before, or gone
		}
		if err != nil {
			return err
		}
		business := "answer Bundle/" + bundleID + " could not be delivered to the placer: " + reason
		_, err = tx.apply(taskID, Change{Kind: ChangeCallbackParked, Detail: bundleID}, func(Status, string) (Status, string) {
			return "", business
		}, 0, true)
		return err
	}, nil)
}

// ParkedCallbacks returns up to limit parked callbacks, oldest parked
// first, without their bodies.
func (l *SQLite) ParkedCallbacks(ctx context.Context, limit int) ([]Callback, error) {
	rows, err := l.read.QueryContext(ctx, `SELECT c.seq, c.task_id, c.bundle_id, c.url, c.attempts, c.last_error, r.received_at, m.fhir_version,
		c.parked_at, c.park_reason
		FROM callbacks c JOIN responses r ON r.bundle_id = c.bundle_id JOIN messages m ON m.task_id = c.task_id
		WHERE c.parked_at > 0 ORDER BY c.parked_at, c.seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: read parked callbacks: %w", err)
	}
	defer rows.Close()
	var out []Callback
	for rows.Next() {
		var c Callback
		var created, parked int64
		if err := rows.Scan(&c.Seq, &c.TaskID, &c.BundleID, &c.URL, &c.Attempts, &c.LastError, &created, &c.FHIRVersion,
			&parked, &c.ParkReason); err != nil {
			return nil, fmt.Errorf("ledger: read parked callbacks: %w", err)
		}
		c.CreatedAt, c.ParkedAt = fromMS(created), fromMS(parked)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read parked callbacks: %w", err)
	}
	return out, nil
}

// Callbacks is how many callbacks are owed, parked ones included.
func (l *SQLite) Callbacks(ctx context.Context) (int, error) {
	var n int
	err := l.read.QueryRowContext(ctx, `SELECT count(*) FROM callbacks`).Scan(&n)
	return n, err
}
