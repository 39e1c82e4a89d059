// Package ledger is the gateway's durable record: every exchange taken into
// custody, the answer it was given (replayed to duplicates), the outbox of
// publishes still owed to the broker, the responses that came back, the
// callbacks owed to placers, and the change log: one numbered row for every
// change of an exchange, written in the transaction of the change itself.
//
// Ledger is the contract every implementation meets (the conformance suite
// in testing/ledgertest checks it); SQLite is the embedded one.
package ledger

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors.
var (
	// ErrDuplicate: a message with this identity is already in custody from
	// the same placer within the duplicate window; see DuplicateError.
	ErrDuplicate = errors.New("ledger: duplicate message")
	// ErrIdentityTaken: another placer's message holds this identity within
	// the duplicate window; nothing was stored.
	ErrIdentityTaken = errors.New("ledger: message identity held by another placer")
	// ErrBundleIDReused: an R4 Bundle.id the same placer used within the
	// duplicate window arrives with another message identity (FHIR:
	// "Bundle.id values should never be reused").
	ErrBundleIDReused = errors.New("ledger: Bundle.id reused by another message")
	// ErrNotFound: no such task, version or bundle (in the scope asked).
	ErrNotFound = errors.New("ledger: not found")
	// ErrClosed: the ledger is closing or closed.
	ErrClosed = errors.New("ledger: closed")
)

// DuplicateError carries the message already in custody under the identity.
type DuplicateError struct{ Prior *Message }

func (e *DuplicateError) Error() string { return ErrDuplicate.Error() + ": task " + e.Prior.TaskID }

// Unwrap makes errors.Is(err, ErrDuplicate) hold.
func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// Ledger is what the exchange core needs of durable storage. Every method
// that writes commits before it returns: nothing is reported durable before
// it is. Every change of an exchange's Task (accept, publish, delivery,
// answer, status move, purge) writes one change-log row in the same
// transaction, which gives the Task its next version and a lastUpdated
// instant that is unique in the ledger and later than every instant
// already committed, so a poller asking for changes after the greatest
// instant it has read never misses one.
type Ledger interface {
	// Accept takes m into custody: the exchange, its answer, its focus keys,
	// one delivery and one outbox entry per filler, and change 1. It sets
	// m.ReceivedAt, m.UpdatedAt, m.Version and m.OutboxSeqs. Within the
	// duplicate window (Options.DuplicateWindow) a message whose identity
	// the same placer sent returns a *DuplicateError with the original; one
	// whose identity another placer sent returns ErrIdentityTaken; an R4
	// Bundle.id the same placer used with another identity returns
	// ErrBundleIDReused. Nothing is stored then.
	Accept(ctx context.Context, m *Message) error
	// SetAnswer replaces the answer replayed to duplicates of a task (a
	// synchronous exchange learns its final answer after custody began). It
	// is not a change of the Task.
	SetAnswer(ctx context.Context, taskID string, a Answer) error
	// Apply records a change of a task: move decides, from the status the
	// task has inside the writing transaction, its next status and business
	// status (empty: unchanged). When both are empty nothing is written and
	// Applied.Changed is false. ErrNotFound when there is no such task. On an
	// exchange routed to several fillers the move applies to c.Filler's Task
	// (every filler's, when c.Filler is empty), and the exchange's status
	// follows Derive, forward only.
	Apply(ctx context.Context, taskID string, c Change, move Move) (Applied, error)
	// StartDelivery claims an exchange's delivery to filler, in one
	// transaction with the check that the exchange is not cancelled: false
	// means it was, and nothing is to be delivered.
	StartDelivery(ctx context.Context, taskID, filler string) (bool, error)
	// CancelUndelivered cancels an exchange (and its fillers' Tasks) that is
	// still requested and whose delivery no filler has started, in one
	// transaction; Applied.Changed is false when it was too late.
	CancelUndelivered(ctx context.Context, taskID string, c Change, business string) (Applied, error)
	// AddResponse records a response or progress message for a task, moves
	// the task as move decides (nil: no status change) and queues the
	// response for the task's ResponseURL after its earlier ones; one change.
	// A response whose identity the same sender already recorded returns
	// ErrDuplicate with
	// r.BundleID set to the recorded one, and changes nothing.
	AddResponse(ctx context.Context, r *Response, move Move) error
	// AddUnmatched records a response that quotes no exchange in the
	// sender's scope, so that it is not lost; the same response twice from
	// the same sender
	// returns ErrDuplicate with r.BundleID set to the first one's.
	AddUnmatched(ctx context.Context, r *Response) error

	// Task returns a task at its current version, if scope may see it.
	Task(ctx context.Context, taskID string, scope Scope) (*Message, error)
	// TaskVersion returns a task as it was at version (Outputs: how many
	// responses it listed then).
	TaskVersion(ctx context.Context, taskID string, version int, scope Scope) (*Message, error)
	// History returns every version of a task, newest first.
	History(ctx context.Context, taskID string, scope Scope) ([]*Message, error)
	// ByIdentity returns the newest exchange held under an identity key
	// within scope.
	ByIdentity(ctx context.Context, identity string, scope Scope) (*Message, error)
	// ByFocusKey returns, per placer, the newest exchange within scope whose
	// focus one of keys names, newest first (several placers: ambiguous).
	ByFocusKey(ctx context.Context, keys []string, scope Scope) ([]*Message, error)
	// SearchTasks returns the tasks q selects, in q's order, and (when
	// q.Total) how many match in all.
	SearchTasks(ctx context.Context, q TaskQuery) (tasks []*Message, total int, err error)
	// Overdue returns up to limit tasks whose acknowledgement deadline
	// passed before now while they were still requested or received.
	Overdue(ctx context.Context, now time.Time, limit int) ([]*Message, error)
	// Outputs returns the responses of tasks, each task's in the order they
	// arrived, without their bodies.
	Outputs(ctx context.Context, taskIDs ...string) (map[string][]Response, error)
	// Bundle returns a stored response by its bundle id, if scope may see
	// it (the scope of its task; an unmatched one: its sender).
	Bundle(ctx context.Context, bundleID string, scope Scope) (*Response, error)
	// Changes returns up to limit change-log rows after seq, in order.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)

	// Purge removes, in one batch of at most limit exchanges, the closed
	// exchanges (terminal status, nothing owed to the broker or a placer)
	// whose last change is before closedBefore, and the unmatched responses
	// received before then. An open exchange is never purged. It returns
	// how many exchanges it removed.
	Purge(ctx context.Context, closedBefore time.Time, limit int) (int, error)

	// Pending returns up to limit outbox entries after seq, oldest first.
	Pending(ctx context.Context, after int64, limit int) ([]OutboxEntry, error)
	// Published removes confirmed publishes from the outbox; a task none of
	// whose publishes is left is marked routed (a change).
	Published(ctx context.Context, entries ...OutboxEntry) error
	// Backlog is how many publishes the outbox holds.
	Backlog() int

	// DueCallbacks returns, in seq order and for up to limit tasks, the
	// head callback (the oldest still owed) of each task whose seq is above
	// after, when it is due by now and not parked: a task's later callbacks
	// wait behind its head, parked or not. Bodies are not read.
	DueCallbacks(ctx context.Context, now time.Time, after int64, limit int) ([]Callback, error)
	// CallbackBody returns the message a callback carries.
	CallbackBody(ctx context.Context, seq int64) ([]byte, error)
	// CallbackDone forgets a callback the placer took.
	CallbackDone(ctx context.Context, seq int64) error
	// CallbackFailed records a failed attempt and when to try again.
	CallbackFailed(ctx context.Context, seq int64, next time.Time, lastError string) error
	// CallbackParked parks a callback for good, with the reason; its task's
	// later callbacks wait behind it, and the Task says so (a change).
	CallbackParked(ctx context.Context, seq int64, reason string) error
	// ParkedCallbacks returns up to limit parked callbacks, oldest first.
	ParkedCallbacks(ctx context.Context, limit int) ([]Callback, error)
	// Callbacks is how many callbacks are owed, parked ones included.
	Callbacks(ctx context.Context) (int, error)

	// Run writes until ctx ends or Close is called; Close stops it once what
	// was handed to it has committed, and releases the storage.
	Run(ctx context.Context) error
	Close(ctx context.Context) error
}

// Options tune a ledger.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DuplicateWindow is how long a message identity stays taken
	// (reliableCacheMinutes; default 24h).
	DuplicateWindow time.Duration
	// MaxBatch bounds how many operations share one transaction (default 256).
	MaxBatch int
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 24 * time.Hour
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	return o
}

// Scope is what a party may see or match. The zero Scope is the anonymous
// scope: the exchanges with no placer (authentication off).
type Scope struct {
	// All sees every exchange (operators).
	All bool
	// Placer selects the exchanges it placed, unless NotPlacer.
	Placer    string
	NotPlacer bool
	// Fillers selects the exchanges routed to one of them.
	Fillers []string
}

// Anyone is the scope that sees every exchange.
var Anyone = Scope{All: true}

// PlacerScope is what party placed.
func PlacerScope(party string) Scope { return Scope{Placer: party} }

// FillerScope is what was routed to one of fillers.
func FillerScope(fillers []string) Scope { return Scope{NotPlacer: true, Fillers: fillers} }

// Message is one message in custody and its exchange.
type Message struct {
	// TaskID names the exchange (GET [base]/Task/{id}).
	TaskID string
	// Identity is the message identity's key (envelope.Identity.Key).
	Identity string
	// Placer is the partner that sent it ("" when authentication is off).
	Placer string
	// BundleID and HeaderID are Bundle.id and MessageHeader.id as sent.
	BundleID string
	HeaderID string
	// FHIRVersion is "4.0" or "5.0".
	FHIRVersion string
	// Event is the routing key of the event (envelope.Event.Key).
	Event string
	// Fillers are the fillers the message is routed to.
	Fillers []string
	// FillerTasks, for a message routed to several fillers, name each
	// filler's Task (in the order of Fillers): a Task of its own, part of
	// the exchange's, with the filler as owner. Accept names them
	// <TaskID>-1, -2, ... unless given. Empty for one filler.
	FillerTasks []string
	// PartOf, for a filler's Task, is its exchange's Task.
	PartOf string
	// Cancels, for a cancellation routed to a filler, is the order's Task;
	// the filler's answer to it decides the order.
	Cancels string
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
	Status         Status
	BusinessStatus string
	// Answer is what the placer was told; duplicates get it again.
	Answer Answer
	// AckDue is when the filler must have acknowledged the message (zero:
	// no deadline).
	AckDue time.Time
	// Version is the Task's version (its change count); UpdatedAt the
	// instant of its last change, unique in the ledger at microseconds.
	Version   int
	UpdatedAt time.Time
	// Outputs is how many responses the Task lists at this version.
	Outputs int
	// ReceivedAt is when custody began; RoutedAt when the broker confirmed
	// the last publish (zero before).
	ReceivedAt time.Time
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
	Identity string
	TaskID   string
	// Sender is the partner that sent it ("" for the gateway itself or
	// with authentication off).
	Sender string
	// Filler is the filler it answers for: in an exchange routed to several
	// fillers, the one whose Task it moves.
	Filler     string
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

// ChangeKind says what a change-log row records.
type ChangeKind string

// The kinds of change.
const (
	ChangeAccepted  ChangeKind = "accepted"
	ChangePublished ChangeKind = "published"
	ChangeDelivered ChangeKind = "delivered"
	ChangeParked    ChangeKind = "parked"
	ChangeResponse  ChangeKind = "response"
	ChangeProgress  ChangeKind = "progress"
	ChangeDeadline  ChangeKind = "deadline"
	ChangeCancelled ChangeKind = "cancelled"
	ChangeStatus    ChangeKind = "status"
	ChangePurged    ChangeKind = "purged"
	// ChangeCallbackParked: an answer could not be delivered to the placer.
	ChangeCallbackParked ChangeKind = "callback-parked"
)

// Change is one row of the change log.
type Change struct {
	// Seq orders the log (set by the ledger).
	Seq int64
	// Filler, when set on a change of an exchange routed to several
	// fillers, is the filler whose Task the change moves (the exchange then
	// follows Derive); unset, the move applies to every filler's Task.
	Filler string
	// TaskID is the Task that changed; ExchangeID the exchange it belongs
	// to (the same for an exchange's own Task).
	TaskID     string
	ExchangeID string
	Kind       ChangeKind
	// Partner caused the change ("" for the gateway itself).
	Partner string
	// Detail says more: the filler, the bundle id of a response.
	Detail string
	// Version, Status, BusinessStatus and At are the Task's version, state
	// and lastUpdated after the change (set by the ledger).
	Version        int
	Status         Status
	BusinessStatus string
	At             time.Time
}

// Applied is what Apply did.
type Applied struct {
	Changed bool
	Status  Status
	Version int
}

// Move decides a task's new status and business status from its current
// status, inside the transaction that records the change, so that two
// changes at once cannot move the task from a stale status. Empty results
// leave a field unchanged.
type Move func(current Status) (status Status, business string)

// To is the Move to status and business whatever the current status.
func To(status Status, business string) Move {
	return func(Status) (Status, string) { return status, business }
}

// From is the Move to status (with business) when the current status is one
// of from; otherwise nothing changes.
func From(status Status, business string, from ...Status) Move {
	return func(current Status) (Status, string) {
		for _, f := range from {
			if current == f {
				return status, business
			}
		}
		return "", ""
	}
}
