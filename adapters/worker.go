package adapters

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fhirgw/fhirgw/router"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// HeaderAttempts is how many deliveries a worker tried before parking a
// message (beside router.HeaderParkReason).
const HeaderAttempts = "fhirgw-attempts"

// RetryPolicy bounds a worker's retries of one message.
type RetryPolicy struct {
	// MaxAttempts is how many deliveries are tried before parking (default 8).
	// It must stay under the queue's x-delivery-limit.
	MaxAttempts int
	// MaxAge parks a message first routed longer ago than this (default 1h).
	MaxAge time.Duration
	// Initial and Max bound the exponential backoff between attempts
	// (defaults 1s and 1m); each wait is drawn between half and all of it.
	Initial time.Duration
	Max     time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.MaxAge <= 0 {
		p.MaxAge = time.Hour
	}
	if p.Initial <= 0 {
		p.Initial = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	return p
}

// backoff is the wait after the attempt-th failed attempt (attempt ≥ 1):
// Initial·2^(attempt-1) capped at Max, with jitter.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.Initial
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	return d/2 + rand.N(d/2+1)
}

// Sink is told what deliveries produce; the gateway implements it. With a
// worker Concurrency above 1 its methods are called concurrently.
type Sink interface {
	// Deliverable claims m's delivery and reports whether the task still
	// wants it (false once it was cancelled): the claim and the check are
	// one decision, so a cancellation either stops the delivery or finds
	// it started.
	Deliverable(ctx context.Context, m Message) (bool, error)
	// Delivered records that the filler took the message, with what it
	// answered in the exchange.
	Delivered(ctx context.Context, m Message, res Result) error
	// Parked records that delivery gave up, and why.
	Parked(ctx context.Context, m Message, why Parking) error
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	AMQPURL string
	// Queue is the filler's queue; DeadExchange and DeadKey are where
	// parked messages go (the queue's own dead-letter route).
	Queue        string
	DeadExchange string
	DeadKey      string
	Filler       string
	Adapter      Adapter
	Sink         Sink
	Retry        RetryPolicy
	// Concurrency is how many messages are delivered at once (default 1:
	// one at a time, in queue order; more trades order for throughput).
	Concurrency int
	Log         *zap.Logger
	Now         func() time.Time
}

// Worker delivers one filler's queue through its adapter, by default one
// message at a time and in order (see WorkerConfig.Concurrency). A transient failure is retried with backoff (the
// message stays unacknowledged meanwhile and is then rejected for
// redelivery, which the quorum queue counts); a permanent failure, the
// retry limit or the age limit parks it. A slow or failing filler holds up
// only its own queue.
type Worker struct {
	cfg WorkerConfig
}

// NewWorker returns a Worker; Run starts it.
func NewWorker(cfg WorkerConfig) *Worker {
	cfg.Retry = cfg.Retry.withDefaults()
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	cfg.Log = cfg.Log.With(zap.String("filler", cfg.Filler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Worker{cfg: cfg}
}

// Run delivers until ctx ends, reconnecting with backoff.
func (w *Worker) Run(ctx context.Context) error {
	router.KeepConnected(ctx, w.cfg.Log, w.session)
	return nil
}

func (w *Worker) session(ctx context.Context) error {
	conn, err := router.Dial(w.cfg.AMQPURL, "fhirgw filler "+w.cfg.Filler)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	if err := ch.Qos(w.cfg.Concurrency, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("confirm mode: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, w.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.cfg.Queue, err)
	}
	// Each delivery is handled in its own goroutine, at most Concurrency at
	// once; the first handler error ends the session.
	sem := make(chan struct{}, w.cfg.Concurrency)
	failed := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("the broker closed the consumer")
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := w.handle(ctx, ch, d); err != nil {
					select {
					case failed <- err:
					default:
					}
				}
			}()
		}
	}
}

// handle delivers one message and settles it.
func (w *Worker) handle(ctx context.Context, ch *amqp.Channel, d amqp.Delivery) error {
	m := Message{
		TaskID: header(d, router.HeaderTaskID), Filler: w.cfg.Filler, Identity: d.MessageId,
		Event: header(d, router.HeaderEvent), FHIRVersion: header(d, router.HeaderFHIRVersion), Body: d.Body,
	}
	log := w.cfg.Log.With(zap.String("taskId", m.TaskID))
	if ok, err := w.cfg.Sink.Deliverable(ctx, m); err != nil {
		return w.requeue(ctx, d, fmt.Errorf("deliverable: %w", err))
	} else if !ok {
		log.Info("task cancelled before delivery; message dropped")
		return d.Ack(false)
	}
	attempt := deliveryCount(d) + 1
	res, err := w.cfg.Adapter.Deliver(ctx, m)
	if err == nil {
		if serr := w.cfg.Sink.Delivered(ctx, m, res); serr != nil {
			return w.requeue(ctx, d, fmt.Errorf("recording the delivery: %w", serr))
		}
		log.Debug("delivered", zap.Int("attempt", attempt), zap.Int("status", res.Status))
		return d.Ack(false)
	}
	age := time.Duration(0)
	if !d.Timestamp.IsZero() {
		age = w.cfg.Now().Sub(d.Timestamp)
	}
	var reason string
	switch p := w.cfg.Retry; {
	case errors.Is(err, ErrPermanent):
		reason = err.Error()
	case attempt >= p.MaxAttempts:
		reason = fmt.Sprintf("gave up after %d attempts: %v", attempt, err)
	case age > p.MaxAge:
		reason = fmt.Sprintf("gave up after %v: %v", age.Round(time.Second), err)
	}
	if reason != "" {
		return w.park(ctx, ch, d, m, attempt, Parking{Reason: reason, Refused: errors.Is(err, ErrRefused)})
	}
	wait := max(w.cfg.Retry.backoff(attempt), RetryAfter(err))
	log.Info("delivery failed; retrying", zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
	select {
	case <-time.After(wait):
	case <-ctx.Done():
	}
	// Reject (not Nack) so that every RabbitMQ version counts the redelivery.
	return d.Reject(true)
}

// requeue gives a message back after a failure of the gateway's own side.
func (w *Worker) requeue(ctx context.Context, d amqp.Delivery, cause error) error {
	w.cfg.Log.Warn("cannot settle a delivery; requeued", zap.Error(cause))
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	return d.Reject(true)
}

// park moves a message to the filler's dead-letter queue with its reason,
// then records it.
func (w *Worker) park(ctx context.Context, ch *amqp.Channel, d amqp.Delivery, m Message, attempts int, why Parking) error {
	reason := why.Reason
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[router.HeaderParkReason] = reason
	headers[HeaderAttempts] = int32(attempts)
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, w.cfg.DeadExchange, w.cfg.DeadKey, false, false, amqp.Publishing{
		ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId, CorrelationId: d.CorrelationId,
		Type: d.Type, Timestamp: d.Timestamp, AppId: d.AppId, Headers: headers, Body: d.Body,
	})
	if err != nil {
		return fmt.Errorf("park: %w", err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("park not confirmed (ack=%v): %v", ok, err)
	}
	if err := d.Ack(false); err != nil {
		return err
	}
	w.cfg.Log.Warn("message parked", zap.String("taskId", m.TaskID), zap.Int("attempts", attempts), zap.String("reason", reason))
	if err := w.cfg.Sink.Parked(ctx, m, why); err != nil {
		w.cfg.Log.Error("recording a parked message failed", zap.String("taskId", m.TaskID), zap.Error(err))
	}
	return nil
}

// deliveryCount is how often the queue delivered the message before
// (x-delivery-count; absent on the first delivery).
func deliveryCount(d amqp.Delivery) int { return router.IntHeader(d.Headers, "x-delivery-count") }

func header(d amqp.Delivery, name string) string {
	if s, ok := d.Headers[name].(string); ok {
		return s
	}
	return ""
}
