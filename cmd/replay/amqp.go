package replay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/fhirgw/fhirgw/router"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpTarget publishes to the gateway's ingress exchange as a partner does
// and reads the answers on a reply queue, by correlation_id.
type amqpTarget struct {
	conn     *amqp.Connection
	out      *router.Confirmer
	exchange string
	replyTo  string
	userID   string
	timeout  time.Duration

	mu      sync.Mutex
	waiting map[string]chan Answer // correlation_id -> its answers
	closed  chan struct{}
}

func dialAMQPTarget(ctx context.Context, target string, opts TargetOptions) (*amqpTarget, error) {
	u, _ := url.Parse(target)
	t := &amqpTarget{exchange: firstSet(opts.Exchange, "fhirgw.ingress"), replyTo: opts.ReplyTo,
		userID: firstSet(opts.UserID, u.User.Username(), "guest"), timeout: firstSet(opts.Timeout, time.Minute),
		waiting: map[string]chan Answer{}, closed: make(chan struct{})}
	conn, err := amqp.DialConfig(target, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "fhirgw replay"}})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.Redacted(), err)
	}
	t.conn = conn
	if err := t.setup(); err != nil {
		conn.Close()
		return nil, err
	}
	return t, nil
}

// setup opens the publisher and consumes the reply queue.
func (t *amqpTarget) setup() error {
	var err error
	if t.out, err = router.NewConfirmer(t.conn); err != nil {
		return err
	}
	ch, err := t.conn.Channel()
	if err != nil {
		return err
	}
	if t.replyTo == "" {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			return fmt.Errorf("declare a reply queue (name one with --reply-to when the user may not): %w", err)
		}
		t.replyTo = q.Name
	}
	replies, err := ch.Consume(t.replyTo, "", true, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume reply queue %s: %w", t.replyTo, err)
	}
	go t.dispatch(replies)
	return nil
}

// dispatch hands each reply to the message with its correlation_id.
func (t *amqpTarget) dispatch(replies <-chan amqp.Delivery) {
	defer close(t.closed)
	for d := range replies {
		t.mu.Lock()
		ch := t.waiting[d.CorrelationId]
		t.mu.Unlock()
		if ch == nil {
			continue // an answer for someone else's run, or a run before
		}
		location, _ := d.Headers[router.HeaderLocation].(string)
		dup, _ := d.Headers[router.HeaderDuplicate].(bool)
		select {
		case ch <- Answer{Status: router.StatusOf(d.Headers), Body: d.Body, Location: location, Duplicate: dup}:
		default: // nobody reads this many answers
		}
	}
}

// Send publishes the message and waits for its first answer.
func (t *amqpTarget) Send(ctx context.Context, m Outgoing) (Exchange, error) {
	cid := uuid.NewString()
	answers := make(chan Answer, 64)
	t.mu.Lock()
	t.waiting[cid] = answers
	t.mu.Unlock()
	err := t.out.Publish(ctx, t.exchange, "", amqp.Publishing{ContentType: contentType(m.FHIRVersion), DeliveryMode: amqp.Persistent,
		UserId: t.userID, ReplyTo: t.replyTo, CorrelationId: cid, MessageId: uuid.NewString(), Body: m.Body})
	if err != nil {
		return Exchange{}, fmt.Errorf("publish to %s: %w", t.exchange, err)
	}
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case a := <-answers:
		return Exchange{Answer: a, Later: answers}, nil
	case <-timer.C:
		return Exchange{}, fmt.Errorf("no answer on %s within %v", t.replyTo, t.timeout)
	case <-t.closed:
		return Exchange{}, errors.New("the reply queue's consumer closed")
	case <-ctx.Done():
		return Exchange{}, ctx.Err()
	}
}

// Close closes the connection.
func (t *amqpTarget) Close() error { return t.conn.Close() }
