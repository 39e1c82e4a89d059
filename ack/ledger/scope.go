package ledger

import (
	"slices"
	"strconv"
	"strings"
)

// Sees reports whether scope may see m: m's placer's scope, or one of the
// fillers m was routed to.
func (s Scope) Sees(m *Message) bool {
	if s.All || (!s.NotPlacer && m.Placer == s.Placer) {
		return true
	}
	for _, f := range m.Fillers {
		if slices.Contains(s.Fillers, f) {
			return true
		}
	}
	return false
}

// query builds a SQL statement with numbered ($n) arguments.
type query struct{ args []any }

// arg adds v and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// scope is the condition on messages m that s selects.
func (q *query) scope(s Scope) string {
	if s.All {
		return "1 = 1"
	}
	var parts []string
	if !s.NotPlacer {
		parts = append(parts, "m.placer = "+q.arg(s.Placer))
	}
	if len(s.Fillers) > 0 {
		// An exchange: routed to one of the fillers; a filler's Task: its
		// filler is one of them.
		parts = append(parts, "EXISTS (SELECT 1 FROM deliveries d WHERE d.exchange_id = (CASE WHEN m.part_of = '' THEN m.task_id ELSE m.part_of END)"+
			" AND (m.part_of = '' OR d.task_id = m.task_id) AND d.filler IN (SELECT value FROM json_each("+q.arg(jsonList(s.Fillers))+")))")
	}
	if len(parts) == 0 {
		return "1 = 0"
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}
