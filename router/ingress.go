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

// Headers on what the ingress publishes: answers on reply queues and parked
// messages.
const (
	// HeaderStatus carries the HTTP-equivalent status of an answer.
	HeaderStatus = "fhirgw-status"
	// HeaderLocation names the Task or Bundle an answer concerns.
	HeaderLocation = "fhirgw-location"
	// HeaderDuplicate is true on the answer replayed for a message the
	// gateway had already taken (a duplicate).
	HeaderDuplicate = "fhirgw-duplicate"
	// HeaderParkReason says why an ingress message was parked.
	HeaderParkReason = "fhirgw-park-reason"
	// HeaderUserID keeps a parked message's user_id (the gateway cannot
	// publish under its publisher's user).
	HeaderUserID = "fhirgw-user-id"
)

// StatusOf is an answer's HTTP-equivalent status (HeaderStatus), 0 when
// it has none.
func StatusOf(headers amqp.Table) int { return IntHeader(headers, HeaderStatus) }

// IntHeader reads an integer header, whichever integer type the AMQP table
// carries it as; 0 when it is absent.
func IntHeader(headers amqp.Table, name string) int {
	switch v := headers[name].(type) {
	case int32:
		return int(v)
	case int64:
		return int(v)
	case int16:
		return int(v)
	case int:
		return v
	}
	return 0
}

// Inbound is a message published to the ingress exchange.
type Inbound struct {
	Body        []byte
	ContentType string
	// UserID is the AMQP user_id property. RabbitMQ refuses a publish whose
	// user_id differs from the publishing connection's user, so a set
	// UserID is verified; it is empty when the publisher set none.
	UserID        string
	ReplyTo       string
	CorrelationID string
	MessageID     string
}

// Answer is what becomes of an inbound message.
type Answer struct {
	// Reply is published to the message's reply_to with its correlation_id.
	Reply amqp.Publishing
	// Park, when set, parks the message in the ingress dead queue with this
	// reason, and nothing is replied (there is nowhere safe to reply to).
	Park string
	// RetryAfter, when set, has the message handled again after this wait
	// (the gateway could not take custody of it); it stays unacknowledged
	// meanwhile, and its conversation waits behind it.
	RetryAfter time.Duration
}

// IngressHandler decides what becomes of inbound messages. Handle is called
// concurrently and must not keep m.Body.
type IngressHandler interface {
	Handle(ctx context.Context, m Inbound) Answer
}

// IngressConfig configures an Ingress.
type IngressConfig struct {
	URL      string
	Topology Topology
	Handler  IngressHandler
	// Concurrency is how many messages are handled at once (default 16).
	Concurrency int
	// Grace bounds how long messages taken may finish at shutdown
	// (default 30s).
	Grace time.Duration
	Log   *zap.Logger
}

// Ingress consumes the ingress queue: each message goes to the handler, its
// answer is published to reply_to (or the message parked), and only then is
// the message acknowledged. A crash or broker outage before that leaves the
// message in the queue; handled again, it is a duplicate and gets the
// original answer, so nothing is lost or routed twice. A message whose
// handling keeps breaking the session is dead-lettered by the queue's
// delivery limit.
type Ingress struct {
	cfg   IngressConfig
	ready atomic.Bool
}

// NewIngress returns an Ingress; Run starts it.
func NewIngress(cfg IngressConfig) *Ingress {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Ingress{cfg: cfg}
}

// Ready reports whether the ingress is consuming.
func (in *Ingress) Ready() bool { return in.ready.Load() }

// Run consumes until ctx ends; messages being handled then are finished
// and acknowledged before it returns.
func (in *Ingress) Run(ctx context.Context) error {
	KeepConnected(ctx, in.cfg.Log, func(ctx context.Context) error {
		defer in.ready.Store(false)
		return in.session(ctx)
	})
	return nil
}

func (in *Ingress) session(ctx context.Context) error {
	conn, ch, err := openDeclared(in.cfg.URL, "fhirgw ingress", in.cfg.Topology)
	if err != nil {
		return err
	}
	defer conn.Close()
	outs := make([]*Confirmer, in.cfg.Concurrency)
	for i := range outs {
		if outs[i], err = NewConfirmer(conn); err != nil {
			return err
		}
	}
	if err := ch.Qos(in.cfg.Concurrency, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(context.WithoutCancel(ctx), in.cfg.Topology.IngressQueue(), "fhirgw-ingress", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	in.ready.Store(true)
	in.cfg.Log.Info("consuming the ingress queue", zap.String("queue", in.cfg.Topology.IngressQueue()))

	// Handling outlives ctx: a message taken is finished and acknowledged.
	work, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	// Each worker has a lane; a message's correlation_id picks the lane, so
	// the messages of one conversation (a filler's response, then its
	// progress) are handled in the order they were published. Lanes hold
	// the whole prefetch, so the dispatcher never waits on a busy lane.
	lanes := make([]chan amqp.Delivery, in.cfg.Concurrency)
	errs := make(chan error, in.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan amqp.Delivery, in.cfg.Concurrency)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer outs[i].Close()
			for d := range lanes[i] {
				if err := in.handle(work, ctx.Done(), outs[i], d); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	consumerClosed := make(chan struct{})
	go func() {
		defer func() {
			for _, l := range lanes {
				close(l)
			}
			close(consumerClosed)
		}()
		for d := range deliveries {
			select {
			case lanes[lane(d, len(lanes))] <- d:
			case <-work.Done():
				return // the session is over; unacknowledged, d comes back
			}
		}
	}()
	var result error
	select {
	case <-ctx.Done():
		_ = ch.Cancel("fhirgw-ingress", false) // deliveries closes once the broker stops sending
		// Messages taken are finished within the grace; past it their
		// publishes are abandoned and they come back on the next start.
		defer time.AfterFunc(in.cfg.Grace, stop).Stop()
	case <-consumerClosed:
		result = errors.New("the broker closed the consumer")
		stop()
	case result = <-errs:
		stop()
		ch.Close()
	}
	wg.Wait()
	return result
}

// lane picks the worker of a delivery's conversation: by its correlation_id
// (FNV-1a), else its message_id, else its delivery tag.
func lane(d amqp.Delivery, n int) int {
	key := d.CorrelationId
	if key == "" {
		key = d.MessageId
	}
	if key == "" {
		return int(d.DeliveryTag % uint64(n))
	}
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % uint32(n))
}

// handle takes one delivery through the handler and settles it. An error
// means the session is broken; the delivery stays unacknowledged and comes
// back. A message the handler asks to retry is retried in place until the
// session stops.
func (in *Ingress) handle(ctx context.Context, stopping <-chan struct{}, out *Confirmer, d amqp.Delivery) error {
	m := Inbound{Body: d.Body, ContentType: d.ContentType, UserID: d.UserId, ReplyTo: d.ReplyTo,
		CorrelationID: d.CorrelationId, MessageID: d.MessageId}
	a := in.cfg.Handler.Handle(ctx, m)
	log := in.cfg.Log.With(zap.String("messageId", d.MessageId), zap.String("userId", d.UserId))
	for a.RetryAfter > 0 {
		// The message waits here, not back in the queue: a requeue would
		// count towards the queue's delivery limit and let the next message
		// of its conversation overtake it.
		select {
		case <-time.After(a.RetryAfter):
		case <-stopping:
			return d.Nack(false, true)
		}
		a = in.cfg.Handler.Handle(ctx, m)
	}
	if a.Park == "" && d.ReplyTo != "" {
		a.Reply.CorrelationId = d.CorrelationId
		a.Reply.DeliveryMode = amqp.Persistent
		err := out.Publish(ctx, "", d.ReplyTo, a.Reply)
		switch {
		case errors.Is(err, ErrReturned):
			a.Park = fmt.Sprintf("the reply queue %q does not exist", d.ReplyTo)
		case err != nil:
			return fmt.Errorf("reply: %w", err)
		}
	}
	if a.Park != "" {
		if err := in.park(ctx, out, d, a); err != nil {
			return err
		}
		log.Warn("ingress message parked", zap.String("reason", a.Park))
	}
	return d.Ack(false)
}

// park keeps the message, with why and the answer's status, in the ingress
// dead queue.
func (in *Ingress) park(ctx context.Context, out *Confirmer, d amqp.Delivery, a Answer) error {
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	// The gateway's headers last: a sender cannot set them.
	headers[HeaderParkReason], headers[HeaderUserID] = a.Park, d.UserId
	delete(headers, HeaderStatus)
	if s, ok := a.Reply.Headers[HeaderStatus]; ok {
		headers[HeaderStatus] = s
	}
	err := out.Publish(ctx, "", in.cfg.Topology.IngressDeadQueue(), amqp.Publishing{
		ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Timestamp: d.Timestamp, Headers: headers, Body: d.Body,
	})
	if err != nil {
		return fmt.Errorf("park: %w", err)
	}
	return nil
}
