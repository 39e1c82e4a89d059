package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// TaskQuery selects exchange Tasks; zero fields select everything in Scope.
type TaskQuery struct {
	Scope    Scope
	Identity string
	Statuses []Status
	// PartOf selects the fillers' Tasks of one exchange; Owner the Tasks
	// owned by a filler (exchanges routed to it alone, and its Tasks in
	// fan-outs). Without either, only exchange Tasks are selected.
	PartOf, Owner string
	// Bounds on lastUpdated, each optional: after (gt), from (ge), before
	// (lt), until (le).
	UpdatedAfter, UpdatedFrom, UpdatedBefore, UpdatedUntil time.Time
	// Descending sorts the newest change first (default: oldest first).
	Descending bool
	// Cursor continues a paged search: only Tasks whose lastUpdated is past
	// it in the sort order (lastUpdated is unique, so nothing is repeated or
	// skipped when the result does not change).
	Cursor time.Time
	// Limit bounds how many are returned (default 50).
	Limit int
	// Total asks for the number of matches in all (ignoring Cursor and
	// Limit).
	Total bool
}

// SearchTasks returns the tasks q selects, in q's order, and (when q.Total)
// how many match in all.
func (l *SQLite) SearchTasks(ctx context.Context, q TaskQuery) ([]*Message, int, error) {
	b := &query{}
	where := []string{b.scope(q.Scope)}
	if q.Identity != "" {
		where = append(where, "m.identity = "+b.arg(q.Identity))
	}
	switch {
	case q.PartOf != "":
		where = append(where, "m.part_of = "+b.arg(q.PartOf))
	case q.Owner == "":
		where = append(where, "m.part_of = ''")
	}
	if q.Owner != "" {
		where = append(where, "m.fillers = "+b.arg(q.Owner))
	}
	if len(q.Statuses) > 0 {
		ss := make([]string, len(q.Statuses))
		for i, s := range q.Statuses {
			ss[i] = string(s)
		}
		where = append(where, "m.status IN (SELECT value FROM json_each("+b.arg(jsonList(ss))+"))")
	}
	for _, bound := range []struct {
		at time.Time
		op string
	}{{q.UpdatedAfter, ">"}, {q.UpdatedFrom, ">="}, {q.UpdatedBefore, "<"}, {q.UpdatedUntil, "<="}} {
		if !bound.at.IsZero() {
			where = append(where, "m.changed_at "+bound.op+" "+b.arg(bound.at.UnixMicro()))
		}
	}
	total := 0
	if q.Total {
		countSQL := `SELECT count(*) FROM messages m WHERE ` + strings.Join(where, " AND ")
		if err := l.read.QueryRowContext(ctx, countSQL, b.args...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("ledger: count tasks: %w", err)
		}
	}
	order, past := "ASC", ">"
	if q.Descending {
		order, past = "DESC", "<"
	}
	if !q.Cursor.IsZero() {
		where = append(where, "m.changed_at "+past+" "+b.arg(q.Cursor.UnixMicro()))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	sqlText := selectMessage + ` m WHERE ` + strings.Join(where, " AND ") + ` ORDER BY m.changed_at ` + order + ` LIMIT ` + b.arg(limit)
	tasks, err := l.messages(ctx, sqlText, b.args...)
	return tasks, total, err
}
