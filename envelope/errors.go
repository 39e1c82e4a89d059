package envelope

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors: every *Error wraps exactly one. All of them mean "the
// client sent something that is not an acceptable message" (HTTP 400).
var (
	// ErrMalformed: the input is not one well-formed JSON object (syntax,
	// UTF-8, duplicate keys, trailing data, empty input).
	ErrMalformed = errors.New("malformed JSON")
	// ErrLimit: the input exceeds a Limits bound.
	ErrLimit = errors.New("input exceeds a limit")
	// ErrNotMessage: well-formed JSON, but not a Bundle of type message.
	ErrNotMessage = errors.New("not a FHIR message Bundle")
	// ErrInvalid: a message Bundle that breaks a messaging rule.
	ErrInvalid = errors.New("invalid FHIR message")
)

// Error is a rejected input: the sentinel kind plus every issue found
// (errors first, then warnings). It converts to an OperationOutcome with
// Outcome.
type Error struct {
	Kind   error
	Issues []Issue
}

// Error returns the kind and the first error issue's diagnostics.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if r := e.Reason(); r != "" {
		b.WriteString(": ")
		b.WriteString(r)
	}
	return b.String()
}

// Reason is a one-line explanation: the first error's diagnostics, and how
// many more errors there are.
func (e *Error) Reason() string {
	var first string
	n := 0
	for _, is := range e.Issues {
		if !is.IsError() {
			continue
		}
		if n == 0 {
			first = is.Diagnostics
		}
		n++
	}
	switch {
	case n == 0:
		return ""
	case n == 1:
		return first
	}
	return first + " (and " + strconv.Itoa(n-1) + " more)"
}

// Unwrap returns the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

// Outcome renders the error as an OperationOutcome.
func (e *Error) Outcome() OperationOutcome { return NewOutcome(e.Issues...) }
