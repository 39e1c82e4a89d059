package ack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// Ledger is what the core needs of the durable ledger (ledger.Ledger holds
// the contract of each method).
type Ledger interface {
	Accept(ctx context.Context, m *ledger.Message) error
	SetAnswer(ctx context.Context, taskID string, a ledger.Answer) error
	Apply(ctx context.Context, taskID string, c ledger.Change, move ledger.Move) (ledger.Applied, error)
	StartDelivery(ctx context.Context, taskID, filler string) (bool, error)
	CancelUndelivered(ctx context.Context, taskID string, c ledger.Change, business string) (ledger.Applied, error)
	AddResponse(ctx context.Context, r *ledger.Response, move ledger.Move) error
	AddUnmatched(ctx context.Context, r *ledger.Response) error
	Task(ctx context.Context, taskID string, scope ledger.Scope) (*ledger.Message, error)
	TaskVersion(ctx context.Context, taskID string, version int, scope ledger.Scope) (*ledger.Message, error)
	History(ctx context.Context, taskID string, scope ledger.Scope) ([]*ledger.Message, error)
	ByIdentity(ctx context.Context, identity string, scope ledger.Scope) (*ledger.Message, error)
	ByFocusKey(ctx context.Context, keys []string, scope ledger.Scope) ([]*ledger.Message, error)
	SearchTasks(ctx context.Context, q ledger.TaskQuery) ([]*ledger.Message, int, error)
	Overdue(ctx context.Context, now time.Time, limit int) ([]*ledger.Message, error)
	Outputs(ctx context.Context, taskIDs ...string) (map[string][]ledger.Response, error)
	Bundle(ctx context.Context, bundleID string, scope ledger.Scope) (*ledger.Response, error)
	Purge(ctx context.Context, closedBefore time.Time, limit int) (int, error)
	Backlog() int
}

// Offerer takes deliveries just committed to the outbox (the relay); Offer
// never blocks.
type Offerer interface{ Offer(ds ...router.Delivery) }

// CoreConfig are a Core's parts and rules.
type CoreConfig struct {
	Ledger Ledger
	Routes *router.Table
	Relay  Offerer
	// Pusher, when set, is told when an answer is queued for a placer.
	Pusher interface{ Notify() }
	// Driven reports whether the gateway delivers a filler's messages
	// itself (and so can still hold one back); see adapters.Kind.
	Driven func(filler string) bool
	// CallbackAllowed reports whether answers may be pushed to a URL
	// (callbacks.allow); nil allows none.
	CallbackAllowed func(url string) bool
	// Sender names the gateway in the messages it emits.
	Sender envelope.Sender
	// DefaultVersion is the FHIR version of answers to messages that could
	// not be read; MaxBytes the largest message.
	DefaultVersion envelope.Version
	MaxBytes       int
	// MaxBacklog bounds the publishes the broker has not confirmed; past
	// it, new messages are refused with ErrBusy.
	MaxBacklog int
	// Retention is how long a closed exchange is kept (default 720h).
	Retention time.Duration
	// SweepEvery and PurgeEvery pace Run's deadline sweeps (default 1s) and
	// purges (default 1m).
	SweepEvery, PurgeEvery time.Duration
	Log                    *zap.Logger
	Now                    func() time.Time
	// NewID names Tasks and Bundles (default: time-ordered UUIDs, version 7,
	// so that the ledger's indexes on them grow at one end instead of
	// touching a random page per message).
	NewID func() string
}

// newTimeOrderedID is a UUID of version 7 (a random one if the clock
// cannot give one).
func newTimeOrderedID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// Core owns every exchange from custody to its end: acceptance and
// duplicates, the routing decision, delivery outcomes per filler,
// correlation of responses and progress, Task moves, cancellation,
// acknowledgement deadlines, parking and retention. Every change goes
// through the ledger, which logs it. The HTTP and AMQP edges only
// translate their transport into Submit and the reads, and the Outcome or
// *Rejection back.
type Core struct {
	cfg       CoreConfig
	ledger    Ledger
	parser    *envelope.Parser
	responder envelope.Responder
	waiters   *waiters
	log       *zap.Logger
	now       func() time.Time
	newID     func() string
}

// NewCore checks cfg and returns a Core; Run starts its housekeeping.
func NewCore(cfg CoreConfig) (*Core, error) {
	if cfg.Ledger == nil || cfg.Routes == nil || cfg.Relay == nil {
		return nil, errors.New("ack: Ledger, Routes and Relay are required")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = newTimeOrderedID
	}
	if cfg.Driven == nil {
		cfg.Driven = func(string) bool { return false }
	}
	if cfg.CallbackAllowed == nil {
		cfg.CallbackAllowed = func(string) bool { return false }
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 720 * time.Hour
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = time.Second
	}
	if cfg.PurgeEvery <= 0 {
		cfg.PurgeEvery = time.Minute
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = 10000
	}
	c := &Core{
		cfg: cfg, ledger: cfg.Ledger, waiters: newWaiters(), log: cfg.Log, now: cfg.Now, newID: cfg.NewID,
		parser: envelope.NewParser(envelope.Options{DefaultVersion: cfg.DefaultVersion, Limits: envelope.Limits{MaxBytes: cfg.MaxBytes}}),
	}
	c.responder = envelope.Responder{Sender: cfg.Sender, Now: c.now, NewID: c.newID}
	return c, nil
}

// Run sweeps acknowledgement deadlines and purges closed exchanges past the
// retention until ctx ends; it returns nil then.
func (c *Core) Run(ctx context.Context) error {
	purge := time.NewTicker(c.cfg.PurgeEvery)
	defer purge.Stop()
	sweep := time.NewTicker(c.cfg.SweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-purge.C:
			c.purgeClosed(ctx)
		case <-sweep.C:
			c.sweepOverdue(ctx)
		}
	}
}

// purgeBatch bounds one purge transaction, so that purging never stalls
// intake for long.
const purgeBatch = 500

// purgeClosed removes the closed exchanges past the retention, a batch at a
// time, yielding to intake between batches.
func (c *Core) purgeClosed(ctx context.Context) {
	cutoff := c.now().Add(-c.cfg.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := c.ledger.Purge(ctx, cutoff, purgeBatch)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("purging closed exchanges failed", zap.Error(err))
			}
			return
		}
		total += n
		if n < purgeBatch {
			break
		}
	}
	if total > 0 {
		c.log.Info("purged closed exchanges past the retention", zap.Int("exchanges", total))
	}
}

// sweepOverdue fails the Tasks whose acknowledgement deadline passed and
// tells their placers with a transient-error response.
func (c *Core) sweepOverdue(ctx context.Context) {
	overdue, err := c.ledger.Overdue(ctx, c.now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("checking acknowledgement deadlines failed", zap.Error(err))
		}
		return
	}
	for _, m := range overdue {
		why := fmt.Sprintf("no acknowledgement from %s within the deadline (%s)", joinFillers(m.Fillers),
			m.AckDue.Sub(m.ReceivedAt).Round(time.Second))
		a, err := c.ledger.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeDeadline},
			ledger.From(ledger.StatusFailed, "acknowledgement overdue: "+why, ledger.StatusRequested, ledger.StatusReceived))
		if err != nil || !a.Changed {
			continue
		}
		c.log.Warn("acknowledgement overdue", zap.String("taskId", m.TaskID), zap.Strings("fillers", m.Fillers))
		if err := c.answerPlacer(ctx, m, "", envelope.ResponseTransientError, why); err != nil {
			c.log.Warn("telling the placer about an overdue acknowledgement failed", zap.String("taskId", m.TaskID), zap.Error(err))
		}
	}
}

// Backlog is how many publishes the broker has not confirmed yet.
func (c *Core) Backlog() int { return c.ledger.Backlog() }
