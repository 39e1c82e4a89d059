package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Accept takes m into custody: the message, its answer and one outbox entry
// per filler, in one transaction. m.ReceivedAt and m.UpdatedAt are set from
// the clock. A message whose identity is already held returns a
// *DuplicateError with the original; an R4 Bundle.id already held under
// another identity returns ErrBundleIDReused. Nothing is stored then.
func (l *SQLite) Accept(ctx context.Context, m *Message) error {
	now := l.now()
	m.ReceivedAt, m.UpdatedAt = now, now
	return l.doUnisolated(ctx, func(tx *wtx) error {
		// The unique identity decides: no row inserted means a duplicate; the
		// unique R4 Bundle.id catches a Bundle.id reused by another message.
		res, err := tx.exec(`INSERT INTO messages (task_id, identity, bundle_id, header_id, fhir_version, event, fillers, body,
			response_url, status, business_status, answer_status, answer_type, answer_body, received_at, updated_at, ack_due)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (identity) DO NOTHING`,
			m.TaskID, m.Identity, m.BundleID, m.HeaderID, m.FHIRVersion, m.Event, strings.Join(m.Fillers, ","), m.Body,
			m.ResponseURL, m.Status, m.BusinessStatus, m.Answer.Status, m.Answer.ContentType, nonNil(m.Answer.Body), l.ms(now), l.ms(now), msOrZero(m.AckDue))
		if err != nil && strings.Contains(err.Error(), "messages.bundle_id") {
			// The R4 Bundle.id is taken: by this very message (a duplicate),
			// or by another one (reuse). The failed statement wrote nothing.
			if prior, perr := scanMessage(tx.queryRow(selectMessage+` WHERE identity = $1`, m.Identity)); perr == nil {
				return unwritten(&DuplicateError{Prior: prior})
			}
			return unwritten(ErrBundleIDReused)
		}
		if err != nil {
			return fmt.Errorf("ledger: insert message: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			prior, perr := scanMessage(tx.queryRow(selectMessage+` WHERE identity = $1`, m.Identity))
			if perr != nil {
				return errors.Join(err, perr)
			}
			return unwritten(&DuplicateError{Prior: prior})
		}
		if len(m.FocusKeys) > 0 {
			keys, _ := json.Marshal(m.FocusKeys)
			if _, err := tx.exec(`INSERT INTO focus_keys (key, task_id) SELECT value, $2 FROM json_each($1)`, string(keys), m.TaskID); err != nil {
				return fmt.Errorf("ledger: insert focus keys: %w", err)
			}
		}
		m.OutboxSeqs = m.OutboxSeqs[:0]
		for _, f := range m.Fillers {
			var seq int64
			if err := tx.queryRow(`INSERT INTO outbox (task_id, filler, created_at) VALUES ($1, $2, $3) RETURNING seq`, m.TaskID, f, l.ms(now)).Scan(&seq); err != nil {
				return fmt.Errorf("ledger: insert outbox: %w", err)
			}
			m.OutboxSeqs = append(m.OutboxSeqs, seq)
		}
		return nil
	}, func() { l.backlog.Add(int64(len(m.Fillers))) })
}

// SetAnswer replaces the answer replayed to duplicates of a task (a
// synchronous exchange learns its final answer after custody began).
func (l *SQLite) SetAnswer(ctx context.Context, taskID string, a Answer) error {
	return l.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE messages SET answer_status = $1, answer_type = $2, answer_body = $3, updated_at = $4 WHERE task_id = $5`,
			a.Status, a.ContentType, nonNil(a.Body), l.ms(l.now()), taskID)
		return affected(res, err)
	}, nil)
}

// Transition moves a task to status when its status is one of from (any
// status when from is empty), and sets its business status when business is
// not empty. It reports whether the task moved.
func (l *SQLite) Transition(ctx context.Context, taskID, status string, from []string, business string) (bool, error) {
	fromJSON := []byte("[]")
	if len(from) > 0 {
		fromJSON, _ = json.Marshal(from)
	}
	var moved bool
	err := l.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE messages SET status = $1, updated_at = $2,
			business_status = CASE WHEN $3 = '' THEN business_status ELSE $3 END
			WHERE task_id = $4 AND ($5 = '[]' OR status IN (SELECT value FROM json_each($5)))`,
			status, l.ms(l.now()), business, taskID, string(fromJSON))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		moved = n > 0
		return err
	}, nil)
	return moved, err
}

// Task returns the message of a task.
func (l *SQLite) Task(ctx context.Context, taskID string) (*Message, error) {
	return scanMessage(l.read.QueryRowContext(ctx, selectMessage+` WHERE task_id = $1`, taskID))
}

// ByFocusKey returns the most recent message whose focus is named by one of
// keys.
func (l *SQLite) ByFocusKey(ctx context.Context, keys []string) (*Message, error) {
	if len(keys) == 0 {
		return nil, ErrNotFound
	}
	keyJSON, _ := json.Marshal(keys)
	return scanMessage(l.read.QueryRowContext(ctx, selectMessage+` WHERE task_id IN
		(SELECT task_id FROM focus_keys WHERE key IN (SELECT value FROM json_each($1))) ORDER BY received_at DESC LIMIT 1`, string(keyJSON)))
}

// TaskQuery selects tasks; zero fields select everything.
type TaskQuery struct {
	Identity     string
	UpdatedAfter time.Time // strictly after
	Statuses     []string
	Limit        int
}

// SearchTasks returns the tasks q selects, most recently updated first.
func (l *SQLite) SearchTasks(ctx context.Context, q TaskQuery) ([]*Message, error) {
	statuses := []byte("[]")
	if len(q.Statuses) > 0 {
		statuses, _ = json.Marshal(q.Statuses)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	after := int64(-1)
	if !q.UpdatedAfter.IsZero() {
		after = l.ms(q.UpdatedAfter)
	}
	return l.messages(ctx, selectMessage+` WHERE ($1 = '' OR identity = $1) AND updated_at > $2
		AND ($3 = '[]' OR status IN (SELECT value FROM json_each($3))) ORDER BY updated_at DESC LIMIT $4`,
		q.Identity, after, string(statuses), limit)
}

// Overdue returns up to limit tasks whose acknowledgement deadline passed
// before now while they were still requested or received.
func (l *SQLite) Overdue(ctx context.Context, now time.Time, limit int) ([]*Message, error) {
	return l.messages(ctx, selectMessage+` WHERE ack_due > 0 AND ack_due < $1 AND status IN ('requested', 'received')
		ORDER BY ack_due LIMIT $2`, l.ms(now), limit)
}

// messages runs a query of selectMessage rows on the read pool.
func (l *SQLite) messages(ctx context.Context, query string, args ...any) ([]*Message, error) {
	rows, err := l.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: read messages: %w", err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// ByIdentity returns the message held under an identity key.
func (l *SQLite) ByIdentity(ctx context.Context, identity string) (*Message, error) {
	return scanMessage(l.read.QueryRowContext(ctx, selectMessage+` WHERE identity = $1`, identity))
}

// Purge forgets messages received before cutoff whose publishes are all done,
// with their responses, and returns how many it removed.
func (l *SQLite) Purge(ctx context.Context, before time.Time) (int, error) {
	cutoff := l.ms(before)
	var n int64
	err := l.do(ctx, func(tx *wtx) error {
		const old = `SELECT task_id FROM messages WHERE received_at < $1
			AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.task_id = messages.task_id)
			AND NOT EXISTS (SELECT 1 FROM callbacks WHERE callbacks.task_id = messages.task_id)`
		if _, err := tx.exec(`DELETE FROM responses WHERE task_id IN (`+old+`)`, cutoff); err != nil {
			return err
		}
		if _, err := tx.exec(`DELETE FROM focus_keys WHERE task_id IN (`+old+`)`, cutoff); err != nil {
			return err
		}
		if _, err := tx.exec(`DELETE FROM responses WHERE task_id = '' AND received_at < $1`, cutoff); err != nil {
			return err // unmatched responses
		}
		res, err := tx.exec(`DELETE FROM messages WHERE task_id IN (`+old+`)`, cutoff)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	}, nil)
	return int(n), err
}

const selectMessage = `SELECT task_id, identity, bundle_id, header_id, fhir_version, event, fillers, body, response_url, status,
	business_status, answer_status, answer_type, answer_body, received_at, updated_at, routed_at, ack_due FROM messages`

type rowScanner interface{ Scan(dest ...any) error }

func scanMessage(row rowScanner) (*Message, error) {
	var m Message
	var fillers string
	var received, updated, routed, ackDue int64
	err := row.Scan(&m.TaskID, &m.Identity, &m.BundleID, &m.HeaderID, &m.FHIRVersion, &m.Event, &fillers, &m.Body, &m.ResponseURL,
		&m.Status, &m.BusinessStatus, &m.Answer.Status, &m.Answer.ContentType, &m.Answer.Body, &received, &updated, &routed, &ackDue)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read message: %w", err)
	}
	if fillers != "" {
		m.Fillers = strings.Split(fillers, ",")
	}
	m.ReceivedAt, m.UpdatedAt, m.RoutedAt, m.AckDue = fromMS(received), fromMS(updated), fromMS(routed), fromMS(ackDue)
	return &m, nil
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// nonNil keeps NOT NULL blob columns from receiving NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
