package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

// Published removes confirmed publishes from the outbox; a task none of
// whose publishes is left is marked routed, which is a change of its Task
// ("queued for" becomes "routed to").
func (l *SQLite) Published(ctx context.Context, entries ...OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	seqs := make([]int64, len(entries))
	var tasks []string
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		seqs[i] = e.Seq
		if !seen[e.TaskID] {
			seen[e.TaskID] = true
			tasks = append(tasks, e.TaskID)
		}
	}
	seqJSON, _ := json.Marshal(seqs)
	var removed int64
	return l.doUnisolated(ctx, func(tx *wtx) error {
		// One statement for the whole batch, whatever its size.
		res, err := tx.exec(`DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each($1))`, string(seqJSON))
		if err != nil {
			return fmt.Errorf("ledger: delete outbox: %w", err)
		}
		removed, _ = res.RowsAffected()
		// One statement marks every task none of whose publishes is left
		// routed and makes its new version, each at an instant of its own;
		// then each change is logged.
		taskJSON, _ := json.Marshal(tasks)
		base := tx.stamps(len(tasks))
		rows, err := tx.query(`UPDATE messages SET routed_at = $1, version = version + 1,
			changed_at = $2 + (SELECT j.key FROM json_each($3) j WHERE j.value = messages.task_id),
			business_status = CASE WHEN business_status LIKE 'queued for %' THEN 'routed to ' || substr(business_status, 12) ELSE business_status END
			WHERE task_id IN (SELECT value FROM json_each($3)) AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.task_id = messages.task_id)
			RETURNING task_id, status, business_status, version, outputs, fillers, changed_at`, l.ms(l.now()), base, string(taskJSON))
		if err != nil {
			return fmt.Errorf("ledger: mark routed: %w", err)
		}
		type routedTask struct {
			c        Change
			outputs  int
			fillers  string
			at       int64
			statusOf string
		}
		var done []routedTask
		for rows.Next() {
			var r routedTask
			if err := rows.Scan(&r.c.TaskID, &r.statusOf, &r.c.BusinessStatus, &r.c.Version, &r.outputs, &r.fillers, &r.at); err != nil {
				rows.Close()
				return fmt.Errorf("ledger: mark routed: %w", err)
			}
			r.c.ExchangeID, r.c.Kind, r.c.Status = r.c.TaskID, ChangePublished, Status(r.statusOf)
			done = append(done, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger: mark routed: %w", err)
		}
		for _, r := range done {
			if err := tx.logChange(r.c, r.outputs, r.at); err != nil {
				return err
			}
			if !strings.Contains(r.fillers, ",") {
				continue
			}
			subs, err := tx.fillerTasks(r.c.TaskID)
			if err != nil {
				return err
			}
			for _, f := range subs {
				if _, err := tx.apply(f.id, Change{Kind: ChangePublished, ExchangeID: r.c.TaskID, Filler: f.filler}, routed, 0, false); err != nil {
					return err
				}
			}
		}
		return nil
	}, func() { l.backlog.Add(-removed) })
}

// routed turns a filler's "queued for" business status into "routed to".
func routed(_ Status, business string) (Status, string) {
	if rest, ok := strings.CutPrefix(business, "queued for "); ok {
		return "", "routed to " + rest
	}
	return "", ""
}
