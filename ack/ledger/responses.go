package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Move decides a task's new status and business status from its current
// status, inside the transaction that records a response, so that two
// answers recorded at once cannot move the task from a stale status. Empty
// results leave a field unchanged.
type Move func(current string) (status, business string)

// To is the Move to status and business whatever the current status.
func To(status, business string) Move {
	return func(string) (string, string) { return status, business }
}

// AddResponse records a response or progress message for a task and moves
// the task as move decides (nil: no change). When the task has a
// ResponseURL, the response is also queued for pushing there, after the
// task's earlier ones. A response whose identity is already recorded
// returns ErrDuplicate, with r.BundleID set to the recorded one, and
// changes nothing.
func (l *SQLite) AddResponse(ctx context.Context, r *Response, move Move) error {
	r.ReceivedAt = l.now()
	return l.do(ctx, func(tx *wtx) error {
		var seen string
		err := tx.queryRow(`SELECT bundle_id FROM responses WHERE identity = $1`, r.Identity).Scan(&seen)
		if err == nil {
			r.BundleID = seen
			return fmt.Errorf("%w: response already recorded as Bundle/%s", ErrDuplicate, seen)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var current string
		if err := tx.queryRow(`SELECT status FROM messages WHERE task_id = $1`, r.TaskID).Scan(&current); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		status, business := "", ""
		if move != nil {
			status, business = move(current)
		}
		if _, err := tx.exec(`INSERT INTO responses (bundle_id, identity, task_id, code, body, received_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.BundleID, r.Identity, r.TaskID, r.Code, nonNil(r.Body), l.ms(r.ReceivedAt)); err != nil {
			return fmt.Errorf("ledger: insert response: %w", err)
		}
		if _, err := tx.exec(`INSERT INTO callbacks (task_id, bundle_id, url, next_at)
			SELECT task_id, $1, response_url, $2 FROM messages WHERE task_id = $3 AND response_url <> ''`,
			r.BundleID, l.ms(r.ReceivedAt), r.TaskID); err != nil {
			return fmt.Errorf("ledger: queue callback: %w", err)
		}
		_, err = tx.exec(`UPDATE messages SET updated_at = $1,
			status = CASE WHEN $3 = '' THEN status ELSE $3 END,
			business_status = CASE WHEN $4 = '' THEN business_status ELSE $4 END
			WHERE task_id = $2`, l.ms(r.ReceivedAt), r.TaskID, status, business)
		return err
	}, nil)
}

// AddUnmatched records a response that quotes no message in custody, so
// that it is not lost: it is readable as a Bundle and purged with the
// duplicate window. The same response twice returns ErrDuplicate with the
// first one's BundleID set in r.
func (l *SQLite) AddUnmatched(ctx context.Context, r *Response) error {
	r.ReceivedAt, r.TaskID = l.now(), ""
	return l.doUnisolated(ctx, func(tx *wtx) error {
		var seen string
		err := tx.queryRow(`SELECT bundle_id FROM responses WHERE identity = $1`, r.Identity).Scan(&seen)
		if err == nil {
			r.BundleID = seen
			return unwritten(ErrDuplicate)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.exec(`INSERT INTO responses (bundle_id, identity, task_id, code, body, received_at) VALUES ($1, $2, '', $3, $4, $5)`,
			r.BundleID, r.Identity, r.Code, nonNil(r.Body), l.ms(r.ReceivedAt))
		return err
	}, nil)
}

// Responses returns a task's responses in the order they arrived.
func (l *SQLite) Responses(ctx context.Context, taskID string) ([]Response, error) {
	rows, err := l.read.QueryContext(ctx, `SELECT bundle_id, identity, task_id, code, body, received_at FROM responses WHERE task_id = $1 ORDER BY received_at, rowid`, taskID)
	if err != nil {
		return nil, fmt.Errorf("ledger: read responses: %w", err)
	}
	defer rows.Close()
	var out []Response
	for rows.Next() {
		var r Response
		var at int64
		if err := rows.Scan(&r.BundleID, &r.Identity, &r.TaskID, &r.Code, &r.Body, &at); err != nil {
			return nil, fmt.Errorf("ledger: read responses: %w", err)
		}
		r.ReceivedAt = fromMS(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Outputs returns the responses of several tasks, each task's in the order
// they arrived, without their bodies: what a Task lists as its outputs, read
// in one query.
func (l *SQLite) Outputs(ctx context.Context, taskIDs ...string) (map[string][]Response, error) {
	ids, err := json.Marshal(taskIDs)
	if err != nil {
		return nil, err
	}
	rows, err := l.read.QueryContext(ctx, `SELECT bundle_id, identity, task_id, code, received_at FROM responses
		WHERE task_id IN (SELECT value FROM json_each($1)) ORDER BY received_at, rowid`, string(ids))
	if err != nil {
		return nil, fmt.Errorf("ledger: read outputs: %w", err)
	}
	defer rows.Close()
	out := make(map[string][]Response, len(taskIDs))
	for rows.Next() {
		var r Response
		var at int64
		if err := rows.Scan(&r.BundleID, &r.Identity, &r.TaskID, &r.Code, &at); err != nil {
			return nil, fmt.Errorf("ledger: read outputs: %w", err)
		}
		r.ReceivedAt = fromMS(at)
		out[r.TaskID] = append(out[r.TaskID], r)
	}
	return out, rows.Err()
}

// Bundle returns a stored response by its bundle id.
func (l *SQLite) Bundle(ctx context.Context, bundleID string) (*Response, error) {
	var r Response
	var at int64
	err := l.read.QueryRowContext(ctx, `SELECT bundle_id, identity, task_id, code, body, received_at FROM responses WHERE bundle_id = $1`, bundleID).
		Scan(&r.BundleID, &r.Identity, &r.TaskID, &r.Code, &r.Body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read bundle: %w", err)
	}
	r.ReceivedAt = fromMS(at)
	return &r, nil
}
