package ledger

// Status is a Task status (FHIR task-status). An exchange's Task walks
// requested -> received -> accepted -> in-progress -> completed, or ends
// rejected, failed or cancelled; the table below is the only place that
// says which moves exist.
type Status string

// The statuses an exchange's Task takes.
const (
	StatusRequested  Status = "requested"
	StatusReceived   Status = "received"
	StatusAccepted   Status = "accepted"
	StatusReady      Status = "ready"
	StatusInProgress Status = "in-progress"
	StatusOnHold     Status = "on-hold"
	StatusCompleted  Status = "completed"
	StatusRejected   Status = "rejected"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
)

// statusRule is one status's row of the table: where it may move.
type statusRule struct {
	// rank orders the open statuses (how far along); ends ranks the
	// terminal ones for Derive (higher wins).
	rank, ends int
	// next are the statuses a change may move it to (forward only).
	next []Status
	// resend: an operator's resend may take it back to requested.
	resend bool
}

// statusTable is the one table of Task statuses and their moves. A
// terminal status has no next.
var statusTable = map[Status]statusRule{
	StatusRequested:  {rank: 0, next: []Status{StatusReceived, StatusAccepted, StatusReady, StatusInProgress, StatusOnHold, StatusCompleted, StatusRejected, StatusFailed, StatusCancelled}},
	StatusReceived:   {rank: 1, next: []Status{StatusAccepted, StatusReady, StatusInProgress, StatusOnHold, StatusCompleted, StatusRejected, StatusFailed, StatusCancelled}},
	StatusAccepted:   {rank: 2, next: []Status{StatusReady, StatusInProgress, StatusOnHold, StatusCompleted, StatusRejected, StatusFailed, StatusCancelled}},
	StatusReady:      {rank: 2, next: []Status{StatusInProgress, StatusOnHold, StatusCompleted, StatusRejected, StatusFailed, StatusCancelled}},
	StatusInProgress: {rank: 3, next: []Status{StatusOnHold, StatusCompleted, StatusFailed, StatusCancelled}},
	StatusOnHold:     {rank: 3, next: []Status{StatusInProgress, StatusCompleted, StatusFailed, StatusCancelled}},
	StatusCompleted:  {ends: 4},
	StatusRejected:   {ends: 3, resend: true},
	StatusFailed:     {ends: 2, resend: true},
	StatusCancelled:  {ends: 1},
}

// Known reports whether s is a status of the table.
func (s Status) Known() bool { _, ok := statusTable[s]; return ok }

// Terminal reports whether s is final: nothing moves a Task out of it but
// an operator's resend.
func (s Status) Terminal() bool {
	r, ok := statusTable[s]
	return ok && len(r.next) == 0
}

// CanMoveTo reports whether a change may move a Task from s to next.
func (s Status) CanMoveTo(next Status) bool {
	for _, n := range statusTable[s].next {
		if n == next {
			return true
		}
	}
	return false
}

// Resendable reports whether an operator's resend may take a Task at s
// back to requested.
func (s Status) Resendable() bool { return statusTable[s].resend }

// Advance returns the status a Task at current takes when proposed is
// reported, and whether it changes: only the table's moves, forward.
func Advance(current, proposed Status) (Status, bool) {
	if current.CanMoveTo(proposed) {
		return proposed, true
	}
	return current, false
}

// Derive is the status of an exchange routed to several fillers, from the
// statuses of its fillers' Tasks: while any is open, the most advanced open
// one (the exchange then moves to it only forward, see Advance); once all
// have ended, completed if any completed, else rejected if any was
// rejected, else failed if any failed, else cancelled. So one filler's
// failure never undoes another filler's result.
func Derive(fillers []Status) Status {
	var open, ended Status
	for _, s := range fillers {
		r := statusTable[s]
		switch {
		case !s.Terminal():
			if open == "" || r.rank > statusTable[open].rank {
				open = s
			}
		case ended == "" || r.ends > statusTable[ended].ends:
			ended = s
		}
	}
	if open != "" {
		return open
	}
	return ended
}
