package adapters

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Adapter hands one routed message to a filler.
//
// Deliver returns a nil error once the filler has taken the message; the
// Result carries the response messages the filler answered with in the same
// exchange, if any. An error wrapping ErrPermanent means retrying the same
// message cannot help (it is parked at once). Any other error is transient:
// the caller retries with backoff, waiting at least RetryAfter when the
// error carries one (see RetryAfter). Deliver must honour ctx and be safe for
// concurrent use.
type Adapter interface {
	Deliver(ctx context.Context, m Message) (Result, error)
}

// Message is a routed message as an adapter sees it.
type Message struct {
	TaskID      string
	Filler      string
	Identity    string
	Event       string
	FHIRVersion string
	// Body is the placer's message, byte for byte.
	Body []byte
}

// Result is what a filler answered in the delivery exchange itself.
type Result struct {
	// Status is the filler's HTTP status (0 for transports without one).
	Status int
	// Responses are message Bundles the filler returned (a synchronous
	// response); the caller validates and correlates them.
	Responses [][]byte
}

// ErrPermanent marks a delivery failure that retrying cannot cure.
var ErrPermanent = errors.New("permanent delivery failure")

// ErrRefused marks the filler's own permanent refusal of a message (for
// instance a 4xx answer other than 408 and 429); it is an ErrPermanent.
var ErrRefused error = refusedError{}

type refusedError struct{}

func (refusedError) Error() string { return "the filler refused the message" }

// Is makes errors.Is(ErrRefused, ErrPermanent) hold.
func (refusedError) Is(target error) bool { return target == ErrPermanent }

// Parking says why a delivery was given up.
type Parking struct {
	// Reason says why, for people.
	Reason string
	// Refused: the filler refused the message (ErrRefused), as opposed to
	// retries running out or a message that cannot be delivered as built.
	Refused bool
}

// retryAfterError asks the caller to wait before the next attempt.
type retryAfterError struct {
	after time.Duration
	err   error
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.err, e.after)
}

func (e *retryAfterError) Unwrap() error { return e.err }

// withRetryAfter wraps a transient err with a minimum wait.
func withRetryAfter(err error, after time.Duration) error {
	if after <= 0 {
		return err
	}
	return &retryAfterError{after: after, err: err}
}

// RetryAfter is the minimum wait a transient error asks for (0: none).
func RetryAfter(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.after
	}
	return 0
}
