package ledger

import (
	"context"
	"encoding/json"
	"fmt"
)

// Pending returns up to limit outbox entries after seq, oldest first, with
// what publishing them needs.
func (l *SQLite) Pending(ctx context.Context, after int64, limit int) ([]OutboxEntry, error) {
	rows, err := l.read.QueryContext(ctx, `SELECT o.seq, o.task_id, o.filler, m.identity, m.event, m.fhir_version, m.body
		FROM outbox o JOIN messages m ON m.task_id = o.task_id WHERE o.seq > $1 ORDER BY o.seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxEntry
	for rows.Next() {
		var e OutboxEntry
		if err := rows.Scan(&e.Seq, &e.TaskID, &e.Filler, &e.Identity, &e.Event, &e.FHIRVersion, &e.Body); err != nil {
			return nil, fmt.Errorf("ledger: read outbox: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Published removes confirmed publishes from the outbox and marks a task
// routed once none of its publishes is left.
func (l *SQLite) Published(ctx context.Context, entries ...OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	seqs := make([]int64, len(entries))
	tasks := make([]string, len(entries))
	for i, e := range entries {
		seqs[i], tasks[i] = e.Seq, e.TaskID
	}
	seqJSON, _ := json.Marshal(seqs)
	taskJSON, _ := json.Marshal(tasks)
	var removed int64
	return l.doUnisolated(ctx, func(tx *wtx) error {
		// One statement each for the whole batch, whatever its size.
		res, err := tx.exec(`DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each($1))`, string(seqJSON))
		if err != nil {
			return fmt.Errorf("ledger: delete outbox: %w", err)
		}
		removed, _ = res.RowsAffected()
		if _, err := tx.exec(`UPDATE messages SET routed_at = $1, updated_at = $1 WHERE task_id IN (SELECT value FROM json_each($2))
			AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.task_id = messages.task_id)`, l.ms(l.now()), string(taskJSON)); err != nil {
			return fmt.Errorf("ledger: mark routed: %w", err)
		}
		return nil
	}, func() { l.backlog.Add(-removed) })
}
