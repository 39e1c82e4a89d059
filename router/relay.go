package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// Parked is told about a delivery the relay parked because it cannot
	// be published as the AMQP contract wants it (see Relay); the gateway
	// fails its Task with reason. Nil: it is only logged.
	Parked func(ctx context.Context, d Delivery, reason string) error
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
//
// A delivery that cannot be published as the AMQP contract wants it never
// holds up the others: one whose identity does not fit an AMQP message_id
// (255 bytes; intake refuses longer ones) is parked at once, like a filler's
// dead letter, in the filler's dead-letter queue with its reason in
// HeaderParkReason, recorded as published and reported to Parked. The type
// property, the event key, is left out when it does not fit (255 bytes;
// an eventCanonical's version can make it longer): the event travels in
// HeaderEvent. Other values go as they are: the broker takes control
// characters (NUL, line breaks) and any bytes in message_id and headers.
//
// A clean stop ends with Drain: once intake has stopped, it has the relay
// publish the outbox window after window until it is empty, so that what was
// accepted reaches the broker before the process exits.
type Relay struct {
	cfg    RelayConfig
	wake   chan struct{}
	offers chan Delivery
	ready  atomic.Bool
	done   *recentSet // seqs recorded as published; only the Run goroutine uses it

	drainMu  sync.Mutex
	drainSeq uint64    // Drain calls so far
	drainers []drainer // Drain calls waiting for the outbox to be seen empty

	stopped  chan struct{} // closed when Run returns
	stopOnce sync.Once
}

// drainer is one waiting Drain call: seq orders it among the others, done
// is closed once a read of the outbox begun after it found nothing.
type drainer struct {
	seq  uint64
	done chan struct{}
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
	return &Relay{cfg: cfg, wake: make(chan struct{}, 1), offers: make(chan Delivery, 4*cfg.Window), done: newRecentSet(64 * cfg.Window),
		stopped: make(chan struct{})}
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
// confirmed (within ConfirmTimeout) and recorded before Run returns; what
// the outbox still holds then stays there for the next start. To publish all
// of it first, call Drain before ending ctx.
func (r *Relay) Run(ctx context.Context) error {
	defer r.stopOnce.Do(func() { close(r.stopped) })
	KeepConnected(ctx, r.cfg.Log, func(ctx context.Context) error {
		defer r.ready.Store(false)
		return r.session(ctx)
	})
	return nil
}

// Drain publishes everything the outbox holds and returns nil once the
// relay, reading the outbox after Drain was called, found it empty: every
// delivery it held then was confirmed by the broker and recorded as
// published. Meanwhile the relay reads the outbox window after window rather
// than at its Poll. It is the last step of a clean stop, after intake has
// stopped and before Run's context ends, so that accepted messages do not
// wait in the outbox for a restart (while intake goes on, the outbox may be
// filled again as soon as it is seen empty).
//
// Drain needs Run to be running, and the broker: it returns ctx's error
// (wrapped) when ctx ends first, e.g. while the broker is away, and an error
// when Run returns first. What is left stays in the outbox for the next
// start. Drain does not stop the relay.
func (r *Relay) Drain(ctx context.Context) error {
	done := make(chan struct{})
	r.drainMu.Lock()
	r.drainSeq++
	r.drainers = append(r.drainers, drainer{seq: r.drainSeq, done: done})
	r.drainMu.Unlock()
	defer r.forgetDrainer(done)
	r.Notify()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("router: draining the outbox: %w", ctx.Err())
	case <-r.stopped:
		return errors.New("router: draining the outbox: the relay stopped first")
	}
}

// drainWanted is the seq of the latest waiting Drain call (0: none).
func (r *Relay) drainWanted() uint64 {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	if len(r.drainers) == 0 {
		return 0
	}
	return r.drainSeq
}

// drained releases the Drain calls up to seq: a read of the outbox begun
// after them found it empty.
func (r *Relay) drained(seq uint64) {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	kept := r.drainers[:0]
	for _, d := range r.drainers {
		if d.seq <= seq {
			close(d.done)
		} else {
			kept = append(kept, d)
		}
	}
	r.drainers = kept
}

// forgetDrainer drops a Drain call that returned.
func (r *Relay) forgetDrainer(done chan struct{}) {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	for i, d := range r.drainers {
		if d.done == done {
			r.drainers = append(r.drainers[:i], r.drainers[i+1:]...)
			return
		}
	}
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
			// While a Drain waits, every round reads the outbox, until one
			// finds nothing left.
			drain := r.drainWanted()
			taken, progressed, err := r.round(ctx, ch, fromOutbox || drain > 0)
			if err != nil {
				return err
			}
			fromOutbox = false
			if drain > 0 && taken == 0 {
				r.drained(drain)
				continue
			}
			if ctx.Err() != nil {
				break
			}
			if (drain > 0 && progressed) || (drain == 0 && taken == r.cfg.Window) {
				continue // more may wait (a round that only got nacks waits for the poll)
			}
			break
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
// ones. It returns how many it took and whether any left the outbox.
func (r *Relay) round(ctx context.Context, ch *amqp.Channel, fromOutbox bool) (taken int, progressed bool, err error) {
	pending := r.takeOffers()
	if len(pending) == 0 || fromOutbox {
		stored, err := r.cfg.Outbox.Pending(ctx, r.cfg.Window)
		if err != nil {
			return 0, false, err
		}
		pending = r.fresh(append(pending, stored...))
	}
	if len(pending) == 0 {
		return 0, false, nil
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(pending))
	parks := make([]string, 0, len(pending)) // why each publish is a park ("": it is not)
	var publishErr error
	exchange := r.cfg.Topology.RouteExchange()
	for _, d := range pending {
		msg, err := publishing(d)
		x, key, reason := exchange, r.cfg.Topology.FillerKey(d.Filler), ""
		if err != nil {
			// Publishing it would fail the same way every time (and end
			// the connection): park it instead.
			x, key, reason = r.cfg.Topology.DeadExchange(), d.Filler, fmt.Sprintf("the relay cannot publish it: %v", err)
			msg = parking(d, reason)
		}
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, x, key, true, false, msg)
		if err != nil {
			publishErr = fmt.Errorf("publish: %w", err)
			break
		}
		confirms = append(confirms, c)
		parks = append(parks, reason)
	}
	// Confirms are awaited even when ctx has ended: shutdown drains them.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ConfirmTimeout)
	defer cancel()
	var done []Delivery
	type park struct {
		d      Delivery
		reason string
	}
	var parked []park
	for i, c := range confirms {
		acked, err := c.WaitContext(wctx)
		if err != nil {
			publishErr = errors.Join(publishErr, fmt.Errorf("confirm: %w", err))
			break
		}
		if acked {
			if parks[i] != "" {
				parked = append(parked, park{pending[i], parks[i]})
			}
			done = append(done, pending[i])
		} else {
			r.cfg.Log.Warn("broker nacked a publish; it stays in the outbox", zap.String("taskId", pending[i].TaskID), zap.String("filler", pending[i].Filler))
		}
	}
	if len(done) > 0 {
		if err := r.cfg.Outbox.Published(wctx, done...); err != nil {
			// Confirmed but not recorded: they will be published again
			// (at-least-once); consumers deduplicate by message_id.
			return len(pending), false, errors.Join(publishErr, fmt.Errorf("record published: %w", err))
		}
		for _, d := range done {
			r.done.add(d.Seq)
			r.cfg.Log.Debug("message routed", zap.String("taskId", d.TaskID), zap.String("filler", d.Filler), zap.String("event", d.Event))
		}
		for _, p := range parked {
			r.parked(wctx, p.d, p.reason)
		}
	}
	return len(pending), len(done) > 0, publishErr
}

// parked logs a delivery the relay parked and reports it.
func (r *Relay) parked(ctx context.Context, d Delivery, reason string) {
	r.cfg.Log.Warn("message parked: it cannot be published", zap.String("taskId", d.TaskID), zap.String("filler", d.Filler),
		zap.String("reason", reason))
	if r.cfg.Parked == nil {
		return
	}
	if err := r.cfg.Parked(ctx, d, reason); err != nil {
		r.cfg.Log.Error("recording a parked message failed", zap.String("taskId", d.TaskID), zap.String("filler", d.Filler), zap.Error(err))
	}
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

// maxShortstr is the longest AMQP 0-9-1 short string, the type of
// message_id, correlation_id, type and the other basic properties: the
// client refuses a longer one by closing the whole connection.
const maxShortstr = 255

// publishing is the AMQP message for a delivery: the original bytes and the
// properties of the AMQP contract. The type property is left out when the
// event key does not fit one (the event is in HeaderEvent); an error says
// which property the contract needs cannot be encoded.
func publishing(d Delivery) (amqp.Publishing, error) {
	p := amqp.Publishing{
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
	if len(p.Type) > maxShortstr {
		p.Type = ""
	}
	for _, f := range []struct{ name, value string }{
		{"message_id (the message identity)", p.MessageId},
		{"content_type (with the FHIR version)", p.ContentType},
	} {
		if len(f.value) > maxShortstr {
			return amqp.Publishing{}, fmt.Errorf("its %s is %d bytes, over the %d of an AMQP short string", f.name, len(f.value), maxShortstr)
		}
	}
	return p, nil
}

// parking is the message that parks a delivery in its filler's dead-letter
// queue: the original bytes, the contract's headers and the reason, and
// only the properties that fit.
func parking(d Delivery, reason string) amqp.Publishing {
	fit := func(s string) string {
		if len(s) > maxShortstr {
			return ""
		}
		return s
	}
	return amqp.Publishing{
		ContentType:   fit("application/fhir+json; fhirVersion=" + d.FHIRVersion),
		DeliveryMode:  amqp.Persistent,
		MessageId:     fit(d.Identity),
		CorrelationId: fit(d.Identity),
		Type:          fit(d.Event),
		Timestamp:     time.Now().UTC(),
		AppId:         "fhirgw",
		Headers: amqp.Table{
			HeaderEvent:       d.Event,
			HeaderFHIRVersion: d.FHIRVersion,
			HeaderTaskID:      d.TaskID,
			HeaderFiller:      d.Filler,
			HeaderParkReason:  reason,
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
