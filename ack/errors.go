package ack

import (
	"errors"
	"fmt"

	"github.com/fhirgw/fhirgw/envelope"
)

// The core's decisions against a message or a read, for errors.Is; the
// edges map each to its status (see gateway's table). An invalid message
// is an *envelope.Error instead.
var (
	// ErrNoRoute: a valid message no route accepts.
	ErrNoRoute = errors.New("no route")
	// ErrIdentityTaken: another partner's message holds the identity within
	// the duplicate window.
	ErrIdentityTaken = errors.New("message identity held by another sender")
	// ErrBundleIDReused: an R4 Bundle.id the sender used for another message.
	ErrBundleIDReused = errors.New("Bundle.id reused")
	// ErrUnmatched: a response quoting no message in the sender's scope (it
	// was kept; Rejection.BundleID names it).
	ErrUnmatched = errors.New("response matches no message")
	// ErrNoSuchOrder: a cancellation matching no order of its sender.
	ErrNoSuchOrder = errors.New("cancellation matches no order of the sender")
	// ErrAmbiguous: progress pointing at requests of several placers.
	ErrAmbiguous = errors.New("message matches exchanges of several placers")
	// ErrForbidden: the sender may not send this event.
	ErrForbidden = errors.New("not allowed for this partner")
	// ErrCallback: a response-url outside the allowed callback prefixes.
	ErrCallback = errors.New("response-url not allowed")
	// ErrBusy: the outbox is full; retry later.
	ErrBusy = errors.New("the broker has not taken enough of what was accepted")
	// ErrUnavailable: the ledger could not record; retry later.
	ErrUnavailable = errors.New("cannot take custody")
	// ErrNotFound: no such Task or Bundle, or none the asker may see.
	ErrNotFound = errors.New("not found")
)

// Rejection is a decision of the core against a message or a read: the rule
// (Err, one of the sentinels above), the issue to tell the sender, and
// what the sender may follow up.
type Rejection struct {
	Err   error
	Issue envelope.Issue
	// BundleID names the message kept for an unmatched response.
	BundleID string
	// Duplicate: the same message was rejected the same way before.
	Duplicate bool
	// Cause is the failure behind ErrUnavailable, for logs; never sent.
	Cause error
}

func (r *Rejection) Error() string {
	msg := r.Err.Error() + ": " + r.Issue.Diagnostics
	if r.Cause != nil {
		msg += ": " + r.Cause.Error()
	}
	return msg
}

// Unwrap makes errors.Is hold for the rule and the cause.
func (r *Rejection) Unwrap() []error {
	if r.Cause != nil {
		return []error{r.Err, r.Cause}
	}
	return []error{r.Err}
}

// reject builds a Rejection with one error issue.
func reject(rule error, code envelope.IssueType, expr, format string, args ...any) *Rejection {
	return &Rejection{Err: rule, Issue: envelope.Issue{Severity: envelope.SeverityError, Code: code, Expression: expr,
		Diagnostics: fmt.Sprintf(format, args...)}}
}

// unavailable is the refusal of a message the core cannot take or record now.
func unavailable(cause error, format string, args ...any) *Rejection {
	r := reject(ErrUnavailable, envelope.IssueType("transient"), "", format, args...)
	r.Issue.Severity, r.Cause = envelope.SeverityFatal, cause
	return r
}
