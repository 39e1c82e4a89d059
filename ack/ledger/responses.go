package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// AddResponse records a response or progress message for a task (see
// Ledger.AddResponse).
func (l *SQLite) AddResponse(ctx context.Context, r *Response, move Move) error {
	r.ReceivedAt = l.now()
	kind := ChangeResponse
	if r.Code == "progress" {
		kind = ChangeProgress
	}
	return l.do(ctx, func(tx *wtx) error {
		var seen string
		err := tx.queryRow(`SELECT bundle_id FROM responses WHERE identity = $1 AND sender = $2`, r.Identity, r.Sender).Scan(&seen)
		if err == nil {
			r.BundleID = seen
			return fmt.Errorf("%w: response already recorded as Bundle/%s", ErrDuplicate, seen)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.applyExchange(r.TaskID, Change{Kind: kind, Partner: r.Sender, Detail: r.BundleID, Filler: r.Filler}, byStatus(move), 1, true); err != nil {
			return err
		}
		if _, err := tx.exec(`INSERT INTO responses (bundle_id, identity, task_id, sender, code, body, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.BundleID, r.Identity, r.TaskID, r.Sender, r.Code, nonNil(r.Body), l.ms(r.ReceivedAt)); err != nil {
			return fmt.Errorf("ledger: insert response: %w", err)
		}
		if _, err := tx.exec(`INSERT INTO callbacks (task_id, bundle_id, url, next_at)
			SELECT task_id, $1, response_url, $2 FROM messages WHERE task_id = $3 AND response_url <> ''`,
			r.BundleID, l.ms(r.ReceivedAt), r.TaskID); err != nil {
			return fmt.Errorf("ledger: queue callback: %w", err)
		}
		return nil
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
		err := tx.queryRow(`SELECT bundle_id FROM responses WHERE identity = $1 AND sender = $2`, r.Identity, r.Sender).Scan(&seen)
		if err == nil {
			r.BundleID = seen
			return unwritten(ErrDuplicate)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.exec(`INSERT INTO responses (bundle_id, identity, task_id, sender, code, body, received_at) VALUES ($1, $2, '', $3, $4, $5, $6)`,
			r.BundleID, r.Identity, r.Sender, r.Code, nonNil(r.Body), l.ms(r.ReceivedAt))
		return err
	}, nil)
}

// responses returns a task's responses in the order they arrived.
func (l *SQLite) responses(ctx context.Context, taskID string) ([]Response, error) {
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

// Bundle returns a stored response by its bundle id, if scope may see it:
// the scope of its task, or for an unmatched one its sender.
func (l *SQLite) Bundle(ctx context.Context, bundleID string, scope Scope) (*Response, error) {
	var r Response
	var at int64
	err := l.read.QueryRowContext(ctx, `SELECT bundle_id, identity, task_id, sender, code, body, received_at FROM responses WHERE bundle_id = $1`, bundleID).
		Scan(&r.BundleID, &r.Identity, &r.TaskID, &r.Sender, &r.Code, &r.Body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read bundle: %w", err)
	}
	r.ReceivedAt = fromMS(at)
	if r.TaskID == "" {
		if !scope.All && (scope.NotPlacer || scope.Placer != r.Sender) {
			return nil, ErrNotFound
		}
		return &r, nil
	}
	if _, err := l.Task(ctx, r.TaskID, scope); err != nil {
		return nil, err
	}
	return &r, nil
}
