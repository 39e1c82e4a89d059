package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// logChange writes c as the next row of the change log, at instant at (µs),
// with the task's output count at that version.
func (t *wtx) logChange(c Change, outputs int, at int64) error {
	_, err := t.exec(`INSERT INTO changes (task_id, exchange_id, version, kind, partner, detail, status, business_status, outputs, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.TaskID, c.ExchangeID, c.Version, string(c.Kind), c.Partner, c.Detail, string(c.Status), c.BusinessStatus, outputs, at)
	if err != nil {
		return fmt.Errorf("ledger: write the change log: %w", err)
	}
	return nil
}

// decide is what a change does to a task, from its current status and
// business status: the next ones (empty: unchanged).
type decide func(status Status, business string) (Status, string)

// apply is the one place a task changes: it decides the move from the state
// the task has in this transaction, bumps its version, stamps it, adds
// outputs, and writes the change row. Unless always, a change that moves
// nothing writes nothing.
func (t *wtx) apply(taskID string, c Change, d decide, outputs int, always bool) (Applied, error) {
	var status, business string
	err := t.queryRow(`SELECT status, business_status FROM messages WHERE task_id = $1`, taskID).Scan(&status, &business)
	if errors.Is(err, sql.ErrNoRows) {
		return Applied{}, ErrNotFound
	}
	if err != nil {
		return Applied{}, err
	}
	next, nextBusiness := "", ""
	if d != nil {
		var s Status
		s, nextBusiness = d(Status(status), business)
		next = string(s)
	}
	if next == status {
		next = ""
	}
	if nextBusiness == business {
		nextBusiness = ""
	}
	if next == "" && nextBusiness == "" && !always {
		return Applied{Status: Status(status)}, nil
	}
	at := t.stamp()
	var version, total int
	err = t.queryRow(`UPDATE messages SET status = CASE WHEN $1 = '' THEN status ELSE $1 END,
		business_status = CASE WHEN $2 = '' THEN business_status ELSE $2 END,
		outputs = outputs + $3, version = version + 1, changed_at = $4
		WHERE task_id = $5 RETURNING status, business_status, version, outputs`,
		next, nextBusiness, outputs, at, taskID).Scan(&status, &business, &version, &total)
	if err != nil {
		return Applied{}, fmt.Errorf("ledger: change task: %w", err)
	}
	c.TaskID, c.Version, c.Status, c.BusinessStatus = taskID, version, Status(status), business
	if c.ExchangeID == "" {
		c.ExchangeID = taskID
	}
	if err := t.logChange(c, total, at); err != nil {
		return Applied{}, err
	}
	return Applied{Changed: true, Status: Status(status), Version: version}, nil
}

// Apply records a change of a task as move decides (see Ledger.Apply).
func (l *SQLite) Apply(ctx context.Context, taskID string, c Change, move Move) (Applied, error) {
	var a Applied
	err := l.do(ctx, func(tx *wtx) error {
		var err error
		a, err = tx.applyExchange(taskID, c, byStatus(move), 0, false)
		return err
	}, nil)
	return a, err
}

// byStatus is move as a decide that reads only the status.
func byStatus(move Move) decide {
	return func(s Status, _ string) (Status, string) {
		if move == nil {
			return "", ""
		}
		return move(s)
	}
}

// fillerTask is one filler's Task of an exchange routed to several.
type fillerTask struct {
	id, filler, business string
	status               Status
}

// fillerTasks are the fillers' Tasks of an exchange, in route order (none
// when it was routed to one filler).
func (t *wtx) fillerTasks(exchangeID string) ([]fillerTask, error) {
	rows, err := t.query(`SELECT m.task_id, m.fillers, m.status, m.business_status FROM deliveries d JOIN messages m ON m.task_id = d.task_id
		WHERE d.exchange_id = $1 AND d.task_id <> '' ORDER BY d.position`, exchangeID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fillerTask
	for rows.Next() {
		var f fillerTask
		var status string
		if err := rows.Scan(&f.id, &f.filler, &status, &f.business); err != nil {
			return nil, err
		}
		f.status = Status(status)
		out = append(out, f)
	}
	return out, rows.Err()
}

// applyExchange applies a change to an exchange. Routed to one filler, the
// exchange's Task is the filler's: d moves it. Routed to several, d moves
// c.Filler's Task (every filler's when c.Filler is empty), and the
// exchange's Task follows Derive (forward only), its business status
// summing up its fillers'. Unless always, nothing is written when nothing
// moved.
func (t *wtx) applyExchange(exchangeID string, c Change, d decide, outputs int, always bool) (Applied, error) {
	subs, err := t.fillerTasks(exchangeID)
	if err != nil {
		return Applied{}, err
	}
	if len(subs) == 0 {
		return t.apply(exchangeID, c, d, outputs, always)
	}
	moved := false
	for i, f := range subs {
		if c.Filler != "" && f.filler != c.Filler {
			continue
		}
		sc := c
		sc.ExchangeID, sc.Filler = exchangeID, f.filler
		a, err := t.apply(f.id, sc, d, 0, false)
		if err != nil {
			return Applied{}, err
		}
		if a.Changed {
			moved = true
			var business string
			if err := t.queryRow(`SELECT business_status FROM messages WHERE task_id = $1`, f.id).Scan(&business); err != nil {
				return Applied{}, err
			}
			subs[i].status, subs[i].business = a.Status, business
		}
	}
	statuses := make([]Status, len(subs))
	parts := make([]string, len(subs))
	for i, f := range subs {
		statuses[i] = f.status
		parts[i] = f.filler + " " + string(f.status)
		if f.business != "" {
			parts[i] += ": " + f.business
		}
	}
	derived, summary := Derive(statuses), strings.Join(parts, "; ")
	return t.apply(exchangeID, c, func(current Status, _ string) (Status, string) {
		next, _ := Advance(current, derived)
		return next, summary
	}, outputs, always || moved)
}

// StartDelivery claims the delivery of an exchange to filler unless the
// exchange was cancelled (see Ledger.StartDelivery).
func (l *SQLite) StartDelivery(ctx context.Context, taskID, filler string) (bool, error) {
	var ok bool
	err := l.do(ctx, func(tx *wtx) error {
		var status string
		err := tx.queryRow(`SELECT status FROM messages WHERE task_id = $1`, taskID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			ok = true // purged: still owed
			return nil
		}
		if err != nil {
			return err
		}
		if Status(status) == StatusCancelled {
			return nil
		}
		ok = true
		_, err = tx.exec(`UPDATE deliveries SET started_at = $1 WHERE exchange_id = $2 AND filler = $3 AND started_at = 0`,
			max(l.ms(l.now()), 1), taskID, filler)
		return err
	}, nil)
	return ok, err
}

// CancelUndelivered cancels an exchange no filler's delivery has started
// (see Ledger.CancelUndelivered).
func (l *SQLite) CancelUndelivered(ctx context.Context, taskID string, c Change, business string) (Applied, error) {
	var a Applied
	err := l.do(ctx, func(tx *wtx) error {
		var started int
		if err := tx.queryRow(`SELECT count(*) FROM deliveries WHERE exchange_id = $1 AND started_at > 0`, taskID).Scan(&started); err != nil {
			return err
		}
		if started > 0 {
			return nil
		}
		var err error
		a, err = tx.applyExchange(taskID, c, byStatus(From(StatusCancelled, business, StatusRequested)), 0, false)
		return err
	}, nil)
	return a, err
}

// TaskVersion returns a task as it was at version.
func (l *SQLite) TaskVersion(ctx context.Context, taskID string, version int, scope Scope) (*Message, error) {
	m, err := l.Task(ctx, taskID, scope)
	if err != nil {
		return nil, err
	}
	vs, err := l.versions(ctx, m, ` AND version = $2`, version)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, ErrNotFound
	}
	return vs[0], nil
}

// History returns every version of a task, newest first.
func (l *SQLite) History(ctx context.Context, taskID string, scope Scope) ([]*Message, error) {
	m, err := l.Task(ctx, taskID, scope)
	if err != nil {
		return nil, err
	}
	return l.versions(ctx, m, ``)
}

// versions reads m's change rows (newest first) as versions of m.
func (l *SQLite) versions(ctx context.Context, m *Message, cond string, args ...any) ([]*Message, error) {
	rows, err := l.read.QueryContext(ctx, `SELECT version, status, business_status, outputs, at FROM changes
		WHERE task_id = $1`+cond+` ORDER BY version DESC`, append([]any{m.TaskID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("ledger: read history: %w", err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		v := *m
		var status string
		var at int64
		if err := rows.Scan(&v.Version, &status, &v.BusinessStatus, &v.Outputs, &at); err != nil {
			return nil, fmt.Errorf("ledger: read history: %w", err)
		}
		v.Status, v.UpdatedAt = Status(status), fromMicros(at)
		out = append(out, &v)
	}
	return out, rows.Err()
}

// Changes returns up to limit change-log rows after seq, in order.
func (l *SQLite) Changes(ctx context.Context, after int64, limit int) ([]Change, error) {
	rows, err := l.read.QueryContext(ctx, `SELECT seq, task_id, exchange_id, version, kind, partner, detail, status, business_status, at
		FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: read the change log: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var kind, status string
		var at int64
		if err := rows.Scan(&c.Seq, &c.TaskID, &c.ExchangeID, &c.Version, &kind, &c.Partner, &c.Detail, &status, &c.BusinessStatus, &at); err != nil {
			return nil, fmt.Errorf("ledger: read the change log: %w", err)
		}
		c.Kind, c.Status, c.At = ChangeKind(kind), Status(status), fromMicros(at)
		out = append(out, c)
	}
	return out, rows.Err()
}
