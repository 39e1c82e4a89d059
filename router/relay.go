package router

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// Delivery is one publish owed to the broker: a message for one filler.
type Delivery struct {
	Seq         int64
	TaskID      string
	Filler      string
	Identity    string
	Event       string
	FHIRVersion string
	Body        []byte
}

// Outbox is where accepted messages wait for the broker. Pending returns the
// oldest deliveries still owed (at most limit); Published forgets deliveries
// the broker has confirmed. Both are safe for concurrent use.
type Outbox interface {
	Pending(ctx context.Context, limit int) ([]Delivery, error)
	Published(ctx context.Context, ds ...Delivery) error
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	URL      string
	Outbox   Outbox
	Topology Topology
	Log      *zap.Logger
	// Window is how many publishes may await confirmation at once (default 256).
	Window int
	// Poll is how often the outbox is read without a Notify (default 1s).
	Poll time.Duration
	// ConfirmTimeout bounds the wait for a confirm (default 30s).
	ConfirmTimeout time.Duration
}

// Relay moves deliveries from the outbox to the broker: it publishes a
// window of them with publisher confirms, forgets the confirmed ones, and
// keeps the rest for the next round. It owns its connection, reconnects
// with backoff, and redeclares the topology on every connection. A delivery
// leaves the outbox only after the broker confirmed it, so a broker outage
// or a crash delays messages and never loses them (at-least-once).
//
// Deliveries reach it two ways: handed over in memory by Offer right after
// they are committed (the fast path), and read back from the outbox (after a
// start, an outage, an offer dropped because the hand-over queue was full,
// and every Poll). Both paths can carry the same delivery; the relay skips
// the ones it recently recorded as published.
type Relay struct {
	cfg    RelayConfig
	wake   chan struct{}
	offers chan Delivery
	ready  atomic.Bool
	done   *recentSet // seqs recorded as published; only the Run goroutine uses it
}

// NewRelay returns a Relay; Run starts it.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Relay{cfg: cfg, wake: make(chan struct{}, 1), offers: make(chan Delivery, 4*cfg.Window), done: newRecentSet(64 * cfg.Window)}
}

// Notify tells the relay the outbox has new deliveries. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Offer hands committed deliveries to the relay so that it need not read
// them back from the outbox. It never blocks: what does not fit is left to
// the outbox read.
func (r *Relay) Offer(ds ...Delivery) {
	for _, d := range ds {
		select {
		case r.offers <- d:
		default:
		}
	}
	r.Notify()
}

// Ready reports whether the relay holds a connection with the topology
// declared.
func (r *Relay) Ready() bool { return r.ready.Load() }

// Run relays until ctx ends. Publishes in flight when ctx ends are still
// confirmed (within ConfirmTimeout) and recorded before Run returns.
func (r *Relay) Run(ctx context.Context) error {
	KeepConnected(ctx, r.cfg.Log, func(ctx context.Context) error {
		defer r.ready.Store(false)
		return r.session(ctx)
	})
	return nil
}

// session runs one connection's life.
func (r *Relay) session(ctx context.Context) error {
	conn, ch, err := openDeclared(r.cfg.URL, "fhirgw relay", r.cfg.Topology)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("confirm mode: %w", err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	r.ready.Store(true)
	r.cfg.Log.Info("broker connected; relaying the outbox")
	poll := time.NewTicker(r.cfg.Poll)
	defer poll.Stop()
	fromOutbox := true // read the outbox first: it holds what an earlier run or session left
	for {
		for {
			n, err := r.round(ctx, ch, fromOutbox)
			if err != nil {
				return err
			}
			fromOutbox = false
			if n < r.cfg.Window || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-closed:
			return fmt.Errorf("connection closed: %v", err)
		case err := <-chClosed:
			return fmt.Errorf("channel closed: %v", err)
		case ret := <-returns:
			// With the alternate exchange in place a return means the
			// topology is broken; the delivery is kept in the outbox only if
			// it was nacked, so say so loudly.
			r.cfg.Log.Error("broker returned a publish as unroutable", zap.String("messageId", ret.MessageId),
				zap.String("routingKey", ret.RoutingKey), zap.Uint16("replyCode", ret.ReplyCode))
		case <-r.wake:
		case <-poll.C:
			fromOutbox = true
		}
	}
}

// round publishes one window of deliveries, from the offers or, when there
// are none or fromOutbox is set, from the outbox, and records the confirmed
// ones. It returns how many it took.
func (r *Relay) round(ctx context.Context, ch *amqp.Channel, fromOutbox bool) (int, error) {
	pending := r.takeOffers()
	if len(pending) == 0 || fromOutbox {
		stored, err := r.cfg.Outbox.Pending(ctx, r.cfg.Window)
		if err != nil {
			return 0, err
		}
		pending = r.fresh(append(pending, stored...))
	}
	if len(pending) == 0 {
		return 0, nil
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(pending))
	var publishErr error
	exchange := r.cfg.Topology.RouteExchange()
	for _, d := range pending {
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, r.cfg.Topology.FillerKey(d.Filler), true, false, publishing(d))
		if err != nil {
			publishErr = fmt.Errorf("publish: %w", err)
			break
		}
		confirms = append(confirms, c)
	}
	// Confirms are awaited even when ctx has ended: shutdown drains them.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ConfirmTimeout)
	defer cancel()
	var done []Delivery
	for i, c := range confirms {
		acked, err := c.WaitContext(wctx)
		if err != nil {
			publishErr = errors.Join(publishErr, fmt.Errorf("confirm: %w", err))
			break
		}
		if acked {
			done = append(done, pending[i])
		} else {
			r.cfg.Log.Warn("broker nacked a publish; it stays in the outbox", zap.String("taskId", pending[i].TaskID), zap.String("filler", pending[i].Filler))
		}
	}
	if len(done) > 0 {
		if err := r.cfg.Outbox.Published(wctx, done...); err != nil {
			// Confirmed but not recorded: they will be published again
			// (at-least-once); consumers deduplicate by message_id.
			return len(pending), errors.Join(publishErr, fmt.Errorf("record published: %w", err))
		}
		for _, d := range done {
			r.done.add(d.Seq)
			r.cfg.Log.Debug("message routed", zap.String("taskId", d.TaskID), zap.String("filler", d.Filler), zap.String("event", d.Event))
		}
	}
	return len(pending), publishErr
}

// takeOffers takes up to a window of offered deliveries without waiting.
func (r *Relay) takeOffers() []Delivery {
	var ds []Delivery
	for len(ds) < r.cfg.Window {
		select {
		case d := <-r.offers:
			ds = append(ds, d)
		default:
			return r.fresh(ds)
		}
	}
	return r.fresh(ds)
}

// fresh drops deliveries already published and repeats within ds.
func (r *Relay) fresh(ds []Delivery) []Delivery {
	seen := make(map[int64]bool, len(ds))
	out := ds[:0]
	for _, d := range ds {
		if seen[d.Seq] || r.done.has(d.Seq) {
			continue
		}
		seen[d.Seq] = true
		out = append(out, d)
	}
	return out
}

// publishing is the AMQP message for a delivery: the original bytes and the
// properties of the AMQP contract.
func publishing(d Delivery) amqp.Publishing {
	return amqp.Publishing{
		ContentType:   "application/fhir+json; fhirVersion=" + d.FHIRVersion,
		DeliveryMode:  amqp.Persistent,
		MessageId:     d.Identity,
		CorrelationId: d.Identity,
		Type:          d.Event,
		Timestamp:     time.Now().UTC(),
		AppId:         "fhirgw",
		Headers: amqp.Table{
			HeaderEvent:       d.Event,
			HeaderFHIRVersion: d.FHIRVersion,
			HeaderTaskID:      d.TaskID,
			HeaderFiller:      d.Filler,
		},
		Body: d.Body,
	}
}

// Headers of the messages on filler queues.
const (
	HeaderEvent       = "fhirgw-event"
	HeaderFHIRVersion = "fhirgw-fhir-version"
	HeaderTaskID      = "fhirgw-task-id"
	HeaderFiller      = "fhirgw-filler"
)
