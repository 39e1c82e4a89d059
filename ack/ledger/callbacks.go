package ledger

import (
	"context"
	"fmt"
	"time"
)

// DueCallbacks returns, for up to limit tasks, the oldest callback still owed
// if it is due by now: a task's later callbacks wait for its earlier ones.
func (l *SQLite) DueCallbacks(ctx context.Context, now time.Time, limit int) ([]Callback, error) {
	rows, err := l.read.QueryContext(ctx, `SELECT c.seq, c.task_id, c.bundle_id, c.url, c.attempts, r.body, m.fhir_version
		FROM callbacks c JOIN responses r ON r.bundle_id = c.bundle_id JOIN messages m ON m.task_id = c.task_id
		WHERE c.seq IN (SELECT min(seq) FROM callbacks GROUP BY task_id) AND c.next_at <= $1
		ORDER BY c.seq LIMIT $2`, l.ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: read callbacks: %w", err)
	}
	defer rows.Close()
	var out []Callback
	for rows.Next() {
		var c Callback
		if err := rows.Scan(&c.Seq, &c.TaskID, &c.BundleID, &c.URL, &c.Attempts, &c.Body, &c.FHIRVersion); err != nil {
			return nil, fmt.Errorf("ledger: read callbacks: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CallbackDone forgets a callback the placer took (or that can never be
// delivered).
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

// Callbacks is how many callbacks are owed.
func (l *SQLite) Callbacks(ctx context.Context) (int, error) {
	var n int
	err := l.read.QueryRowContext(ctx, `SELECT count(*) FROM callbacks`).Scan(&n)
	return n, err
}
