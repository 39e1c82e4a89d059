package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Accept takes m into custody (see Ledger.Accept).
func (l *SQLite) Accept(ctx context.Context, m *Message) error {
	now := l.now()
	m.ReceivedAt = now
	if m.Status == "" {
		m.Status = StatusRequested
	}
	if m.BusinessStatus == "" && len(m.Fillers) > 0 {
		m.BusinessStatus = queuedFor(m.Fillers)
	}
	cutoff := l.ms(now.Add(-l.window))
	return l.doUnisolated(ctx, func(tx *wtx) error {
		prior, err := scanMessage(tx.queryRow(selectMessage+` WHERE identity = $1 AND received_at >= $2 AND part_of = '' ORDER BY received_at DESC LIMIT 1`,
			m.Identity, cutoff))
		switch {
		case err == nil && prior.Placer == m.Placer:
			return unwritten(&DuplicateError{Prior: prior})
		case err == nil:
			return unwritten(ErrIdentityTaken)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if m.FHIRVersion == "4.0" && m.BundleID != "" {
			var other string
			err := tx.queryRow(`SELECT identity FROM messages WHERE bundle_id = $1 AND placer = $2 AND fhir_version = '4.0'
				AND received_at >= $3 AND identity <> $4 AND part_of = '' LIMIT 1`, m.BundleID, m.Placer, cutoff, m.Identity).Scan(&other)
			if err == nil {
				return unwritten(ErrBundleIDReused)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		at := tx.stamp()
		m.Version, m.UpdatedAt, m.Outputs = 1, fromMicros(at), 0
		if _, err := tx.exec(insertMessage, m.TaskID, m.Identity, m.Placer, m.BundleID, m.HeaderID, m.FHIRVersion, m.Event,
			strings.Join(m.Fillers, ","), m.Body, m.ResponseURL, string(m.Status), m.BusinessStatus, m.Answer.Status, m.Answer.ContentType,
			nonNil(m.Answer.Body), l.ms(now), msOrZero(m.AckDue), at, "", m.Cancels); err != nil {
			return fmt.Errorf("ledger: insert message: %w", err)
		}
		if len(m.FocusKeys) > 0 {
			keys, _ := json.Marshal(m.FocusKeys)
			if _, err := tx.exec(`INSERT INTO focus_keys (key, task_id) SELECT value, $2 FROM json_each($1)`, string(keys), m.TaskID); err != nil {
				return fmt.Errorf("ledger: insert focus keys: %w", err)
			}
		}
		if len(m.Fillers) > 1 && len(m.FillerTasks) != len(m.Fillers) {
			m.FillerTasks = make([]string, len(m.Fillers))
			for i := range m.Fillers {
				m.FillerTasks[i] = m.TaskID + "-" + strconv.Itoa(i+1)
			}
		}
		m.OutboxSeqs = m.OutboxSeqs[:0]
		for i, f := range m.Fillers {
			sub := ""
			if len(m.Fillers) > 1 {
				sub = m.FillerTasks[i]
				subAt := tx.stamp()
				business := queuedFor([]string{f})
				if _, err := tx.exec(insertMessage, sub, m.Identity, m.Placer, "", "", m.FHIRVersion, m.Event, f, []byte{}, "",
					string(m.Status), business, 0, "", []byte{}, l.ms(now), 0, subAt, m.TaskID, ""); err != nil {
					return fmt.Errorf("ledger: insert a filler's Task: %w", err)
				}
				if err := tx.logChange(Change{TaskID: sub, ExchangeID: m.TaskID, Kind: ChangeAccepted, Partner: m.Placer, Version: 1,
					Status: m.Status, BusinessStatus: business}, 0, subAt); err != nil {
					return err
				}
			}
			if _, err := tx.exec(`INSERT INTO deliveries (exchange_id, filler, position, task_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				m.TaskID, f, i, sub); err != nil {
				return fmt.Errorf("ledger: insert delivery: %w", err)
			}
			var seq int64
			if err := tx.queryRow(`INSERT INTO outbox (task_id, filler, created_at) VALUES ($1, $2, $3) RETURNING seq`, m.TaskID, f, l.ms(now)).Scan(&seq); err != nil {
				return fmt.Errorf("ledger: insert outbox: %w", err)
			}
			m.OutboxSeqs = append(m.OutboxSeqs, seq)
		}
		return tx.logChange(Change{TaskID: m.TaskID, ExchangeID: m.TaskID, Kind: ChangeAccepted, Partner: m.Placer,
			Version: 1, Status: m.Status, BusinessStatus: m.BusinessStatus}, 0, at)
	}, func() { l.backlog.Add(int64(len(m.Fillers))) })
}

// insertMessage writes an exchange's Task, or a filler's Task of one.
const insertMessage = `INSERT INTO messages (task_id, identity, placer, bundle_id, header_id, fhir_version, event, fillers, body,
	response_url, status, business_status, answer_status, answer_type, answer_body, received_at, ack_due, version, changed_at, part_of, cancels)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, $18, $19, $20)`

// queuedFor is the business status of an exchange not yet routed.
func queuedFor(fillers []string) string { return "queued for " + strings.Join(fillers, ", ") }

// SetAnswer replaces the answer replayed to duplicates of a task.
func (l *SQLite) SetAnswer(ctx context.Context, taskID string, a Answer) error {
	return l.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE messages SET answer_status = $1, answer_type = $2, answer_body = $3 WHERE task_id = $4`,
			a.Status, a.ContentType, nonNil(a.Body), taskID)
		return affected(res, err)
	}, nil)
}

// Task returns a task at its current version, if scope may see it.
func (l *SQLite) Task(ctx context.Context, taskID string, scope Scope) (*Message, error) {
	m, err := scanMessage(l.read.QueryRowContext(ctx, selectMessage+` WHERE task_id = $1`, taskID))
	if err != nil {
		return nil, err
	}
	if !scope.Sees(m) {
		return nil, ErrNotFound
	}
	return m, nil
}

// ByIdentity returns the newest exchange held under an identity key within
// scope.
func (l *SQLite) ByIdentity(ctx context.Context, identity string, scope Scope) (*Message, error) {
	q := &query{}
	sqlText := selectMessage + ` m WHERE m.identity = ` + q.arg(identity) + ` AND m.part_of = '' AND ` + q.scope(scope) + ` ORDER BY m.received_at DESC LIMIT 1`
	return scanMessage(l.read.QueryRowContext(ctx, sqlText, q.args...))
}

// ByFocusKey returns, per placer, the newest exchange within scope whose
// focus one of keys names, newest first.
func (l *SQLite) ByFocusKey(ctx context.Context, keys []string, scope Scope) ([]*Message, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	q := &query{}
	sqlText := selectMessage + ` m WHERE m.task_id IN (SELECT task_id FROM focus_keys WHERE key IN (SELECT value FROM json_each(` +
		q.arg(jsonList(keys)) + `))) AND ` + q.scope(scope) + ` ORDER BY m.received_at DESC, m.changed_at DESC LIMIT 100`
	all, err := l.messages(ctx, sqlText, q.args...)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*Message
	for _, m := range all {
		if !seen[m.Placer] {
			seen[m.Placer] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// Overdue returns up to limit tasks whose acknowledgement deadline passed
// before now while they were still requested or received.
func (l *SQLite) Overdue(ctx context.Context, now time.Time, limit int) ([]*Message, error) {
	return l.messages(ctx, selectMessage+` WHERE ack_due > 0 AND ack_due < $1 AND status IN ('requested', 'received') AND part_of = ''
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

// Purge removes up to limit closed exchanges whose last change is before
// closedBefore (see Ledger.Purge); each leaves one "purged" change.
func (l *SQLite) Purge(ctx context.Context, closedBefore time.Time, limit int) (int, error) {
	cutoff := closedBefore.UnixMicro()
	var n int
	err := l.do(ctx, func(tx *wtx) error {
		rows, err := tx.query(`SELECT task_id, version, status, business_status FROM messages m
			WHERE changed_at < $1 AND status IN ('completed', 'rejected', 'failed', 'cancelled') AND part_of = ''
			AND NOT EXISTS (SELECT 1 FROM messages s WHERE s.part_of = m.task_id AND s.status NOT IN ('completed', 'rejected', 'failed', 'cancelled'))
			AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.task_id = m.task_id)
			AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.task_id = m.task_id)
			ORDER BY changed_at LIMIT $2`, cutoff, limit)
		if err != nil {
			return err
		}
		var gone []Change
		for rows.Next() {
			c := Change{Kind: ChangePurged}
			var status string
			if err := rows.Scan(&c.TaskID, &c.Version, &status, &c.BusinessStatus); err != nil {
				rows.Close()
				return err
			}
			c.ExchangeID, c.Version, c.Status = c.TaskID, c.Version+1, Status(status)
			gone = append(gone, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range gone {
			for _, del := range []string{
				`DELETE FROM responses WHERE task_id = $1`, `DELETE FROM focus_keys WHERE task_id = $1`,
				`DELETE FROM deliveries WHERE exchange_id = $1`, `DELETE FROM changes WHERE exchange_id = $1`,
				`DELETE FROM messages WHERE task_id = $1 OR part_of = $1`,
			} {
				if _, err := tx.exec(del, c.TaskID); err != nil {
					return err
				}
			}
			if err := tx.logChange(c, 0, tx.stamp()); err != nil {
				return err
			}
		}
		n = len(gone)
		_, err = tx.exec(`DELETE FROM responses WHERE task_id = '' AND received_at < $1`, l.ms(closedBefore))
		return err
	}, nil)
	return n, err
}

// selectMessage reads the columns scanMessage scans.
const selectMessage = `SELECT task_id, identity, placer, bundle_id, header_id, fhir_version, event, fillers, body, response_url, status,
	business_status, answer_status, answer_type, answer_body, received_at, routed_at, ack_due, version, changed_at, outputs, part_of, cancels FROM messages`

type rowScanner interface{ Scan(dest ...any) error }

func scanMessage(row rowScanner) (*Message, error) {
	var m Message
	var fillers, status string
	var received, routed, ackDue, changed int64
	err := row.Scan(&m.TaskID, &m.Identity, &m.Placer, &m.BundleID, &m.HeaderID, &m.FHIRVersion, &m.Event, &fillers, &m.Body, &m.ResponseURL,
		&status, &m.BusinessStatus, &m.Answer.Status, &m.Answer.ContentType, &m.Answer.Body, &received, &routed, &ackDue,
		&m.Version, &changed, &m.Outputs, &m.PartOf, &m.Cancels)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read message: %w", err)
	}
	m.Status = Status(status)
	if fillers != "" {
		m.Fillers = strings.Split(fillers, ",")
	}
	m.ReceivedAt, m.RoutedAt, m.AckDue, m.UpdatedAt = fromMS(received), fromMS(routed), fromMS(ackDue), fromMicros(changed)
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

// jsonList is a string list as a JSON array, for json_each.
func jsonList(list []string) string {
	b, _ := json.Marshal(list)
	return string(b)
}
