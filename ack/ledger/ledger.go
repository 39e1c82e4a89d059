// Package ledger is the gateway's durable record: every message taken into
// custody, the answer it was given (replayed to duplicates), the outbox of
// publishes still owed to the broker, and the responses that came back.
//
// The SQLite implementation writes through one goroutine that groups the
// operations waiting at a time into one transaction, so that one fsync
// covers many messages; each operation runs in its own savepoint, so one
// operation's failure does not undo the others. An operation's caller hears
// back only after the commit: nothing is reported durable before it is.
package ledger

import (
	"errors"
	"time"
)

// Sentinel errors.
var (
	// ErrDuplicate: a message with this identity is already in custody; see
	// DuplicateError for the original.
	ErrDuplicate = errors.New("ledger: duplicate message")
	// ErrBundleIDReused: an R4 Bundle.id already seen arrives with another
	// message identity (FHIR: "Bundle.id values should never be reused").
	ErrBundleIDReused = errors.New("ledger: Bundle.id reused by another message")
	// ErrNotFound: no such task or bundle.
	ErrNotFound = errors.New("ledger: not found")
	// ErrClosed: the ledger is closing or closed.
	ErrClosed = errors.New("ledger: closed")
)

// DuplicateError carries the message already in custody under the identity.
type DuplicateError struct{ Prior *Message }

func (e *DuplicateError) Error() string { return ErrDuplicate.Error() + ": task " + e.Prior.TaskID }

// Unwrap makes errors.Is(err, ErrDuplicate) hold.
func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// Message is one message in custody and its exchange.
type Message struct {
	// TaskID names the exchange (GET [base]/Task/{id}).
	TaskID string
	// Identity is the message identity's key (envelope.Identity.Key).
	Identity string
	// BundleID and HeaderID are Bundle.id and MessageHeader.id as sent.
	BundleID string
	HeaderID string
	// FHIRVersion is "4.0" or "5.0".
	FHIRVersion string
	// Event is the routing key of the event (envelope.Event.Key).
	Event string
	// Fillers are the fillers the message is routed to.
	Fillers []string
	// OutboxSeqs are, after Accept, the outbox entries of the message, one
	// per filler in the order of Fillers.
	OutboxSeqs []int64
	// Body is the message, byte for byte as received.
	Body []byte
	// FocusKeys name what the message is about (its focus resources by
	// reference and business identifier); progress messages that point at
	// one of them belong to this exchange.
	FocusKeys []string
	// ResponseURL is where answers are pushed: the placer's response-url,
	// or its source endpoint's $process-message; empty: the placer polls.
	ResponseURL string
	// Status is the Task status; BusinessStatus says more (e.g. why a
	// delivery failed).
	Status         string
	BusinessStatus string
	// Answer is what the placer was told; duplicates get it again.
	Answer Answer
	// AckDue is when the filler must have acknowledged the message (zero:
	// no deadline).
	AckDue time.Time
	// ReceivedAt is when custody began; UpdatedAt the last change;
	// RoutedAt when the broker confirmed the last publish (zero before).
	ReceivedAt time.Time
	UpdatedAt  time.Time
	RoutedAt   time.Time
}

// Answer is an HTTP answer as given.
type Answer struct {
	Status      int
	ContentType string
	Body        []byte
}

// OutboxEntry is one publish owed to the broker: a message for one filler.
type OutboxEntry struct {
	Seq         int64
	TaskID      string
	Filler      string
	Identity    string
	Event       string
	FHIRVersion string
	Body        []byte
}

// Response is a response or progress message received for a task.
type Response struct {
	// BundleID names it (GET [base]/Bundle/{id}).
	BundleID string
	// Identity is the response message's own identity key: the same
	// response received twice is recorded once.
	Identity   string
	TaskID     string
	Code       string
	Body       []byte
	ReceivedAt time.Time
}

// Callback is a response owed to a placer's endpoint.
type Callback struct {
	// Seq orders the callbacks; a task's are pushed in Seq order.
	Seq      int64
	TaskID   string
	BundleID string
	// URL is where the response goes, as the placer gave it.
	URL string
	// Attempts is how many attempts failed; LastError says why the last did.
	Attempts  int
	LastError string
	// Body is the response message, when read (see CallbackBody).
	Body        []byte
	FHIRVersion string
	// CreatedAt is when the callback was queued: when its response was
	// recorded.
	CreatedAt time.Time
	// ParkedAt is when it was parked (zero: not parked), and ParkReason why.
	ParkedAt   time.Time
	ParkReason string
}
