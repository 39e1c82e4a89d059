package gateway

import (
	"errors"
	"fmt"
	"github.com/fhirgw/fhirgw/ack"
	"net/http"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
)

// Error is a failure at the HTTP edge: its status and the OperationOutcome
// issues that explain it. Every error the gateway answers with is one.
type Error struct {
	Status int
	Issues []envelope.Issue
	// RetryAfter, when set, is sent as Retry-After (with 503).
	RetryAfter time.Duration
	// Err is the cause, for errors.Is and logs; never sent to the client.
	Err error
	// BundleID names a message the gateway kept although it refused it
	// (Content-Location); Duplicate marks a refusal given before.
	BundleID  string
	Duplicate bool
}

func (e *Error) Error() string {
	msg := http.StatusText(e.Status)
	if len(e.Issues) > 0 {
		msg += ": " + e.Issues[0].Diagnostics
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Outcome renders the error as an OperationOutcome.
func (e *Error) Outcome() envelope.OperationOutcome { return envelope.NewOutcome(e.Issues...) }

// Sentinel causes of edge errors, for errors.Is in tests and metrics. The
// core's decisions (ack.ErrNoRoute, ...) map to statuses by rejectionStatus.
var (
	ErrMethod       = errors.New("method not allowed")
	ErrMediaType    = errors.New("unsupported media type")
	ErrTooLarge     = errors.New("body too large")
	ErrNotFound     = ack.ErrNotFound
	ErrUnauthorized = errors.New("no or bad credentials")
	ErrForbidden    = ack.ErrForbidden
	ErrSearch       = errors.New("search parameter not understood")
)

// rejectionStatus is the HTTP status (and AMQP fhirgw-status) of each of
// the core's decisions: the one table of them.
var rejectionStatus = []struct {
	rule   error
	status int
}{
	{ack.ErrBundleIDReused, http.StatusBadRequest},
	{ack.ErrForbidden, http.StatusForbidden},
	{ack.ErrCallback, http.StatusForbidden},
	{ack.ErrNotFound, http.StatusNotFound},
	{ack.ErrIdentityTaken, http.StatusConflict},
	{ack.ErrNoRoute, http.StatusUnprocessableEntity},
	{ack.ErrUnmatched, http.StatusUnprocessableEntity},
	{ack.ErrNoSuchOrder, http.StatusUnprocessableEntity},
	{ack.ErrAmbiguous, http.StatusUnprocessableEntity},
	{ack.ErrBusy, http.StatusServiceUnavailable},
	{ack.ErrUnavailable, http.StatusServiceUnavailable},
}

// statusOf is the status of a core decision (500 for one not in the table).
func statusOf(rule error) int {
	for _, r := range rejectionStatus {
		if errors.Is(rule, r.rule) {
			return r.status
		}
	}
	return http.StatusInternalServerError
}

// edgeError builds an Error with one issue.
func edgeError(status int, cause error, code envelope.IssueType, expr, format string, args ...any) *Error {
	sev := envelope.SeverityError
	if status >= 500 {
		sev = envelope.SeverityFatal
	}
	return &Error{Status: status, Err: cause, Issues: []envelope.Issue{{
		Severity: sev, Code: code, Expression: expr, Diagnostics: fmt.Sprintf(format, args...),
	}}}
}

// tooLarge is the error for a body over limit bytes.
func tooLarge(limit int) *Error {
	return edgeError(http.StatusRequestEntityTooLarge, ErrTooLarge, envelope.IssueTooLong, "", "the body is over the limit of %d bytes", limit)
}

// asEdgeError maps any error to the edge: envelope rejections are 400 with
// their issues, an *Error passes through, anything else is a 500 whose
// details stay in the logs.
func asEdgeError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var rej *ack.Rejection
	if errors.As(err, &rej) {
		return &Error{Status: statusOf(rej.Err), Issues: []envelope.Issue{rej.Issue}, Err: err, BundleID: rej.BundleID, Duplicate: rej.Duplicate}
	}
	var inv *envelope.Error
	if errors.As(err, &inv) {
		return &Error{Status: http.StatusBadRequest, Issues: inv.Issues, Err: err}
	}
	return edgeError(http.StatusInternalServerError, err, envelope.IssueType("exception"), "",
		"the gateway failed to process the request; it has been logged")
}
