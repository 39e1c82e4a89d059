package router

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Sentinel fates of a confirmed publish.
var (
	// ErrReturned: the broker could not route a mandatory publish (no queue
	// by that name, or no binding).
	ErrReturned = errors.New("router: the broker returned the publish as unroutable")
	// ErrNacked: the broker refused to take the publish.
	ErrNacked = errors.New("router: the broker refused the publish")
)

// Confirmer publishes on one channel in confirm mode, mandatory, one
// publish at a time, and tells each publish's fate: nil once the broker
// has taken it (a queue holds it), ErrReturned, ErrNacked, or the channel's
// error. It is safe for concurrent use; publishes are serialized.
type Confirmer struct {
	mu      sync.Mutex
	ch      *amqp.Channel
	returns chan amqp.Return
}

// NewConfirmer opens a confirm-mode channel on conn.
func NewConfirmer(conn *amqp.Connection) (*Confirmer, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("router: open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("router: confirm mode: %w", err)
	}
	// The broker sends a publish's basic.return before its basic.ack, and
	// the client hands the return over before it reads the ack; with one
	// publish in flight, a return seen after the ack is that publish's.
	return &Confirmer{ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1))}, nil
}

// Publish publishes msg to exchange with routing key and waits for the
// broker's verdict.
func (c *Confirmer) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dc, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		return fmt.Errorf("router: publish: %w", err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// A late return could be taken for the next publish's: the channel
		// is done with.
		c.ch.Close()
		return fmt.Errorf("router: awaiting the confirm: %w", err)
	}
	select {
	case r, ok := <-c.returns:
		if ok {
			return fmt.Errorf("%w: %d %s (routing key %q)", ErrReturned, r.ReplyCode, r.ReplyText, key)
		}
		return fmt.Errorf("router: the channel closed: %w", amqp.ErrClosed)
	default:
	}
	if !acked {
		if c.ch.IsClosed() {
			// Closing a channel resolves its pending confirms as nacks.
			return fmt.Errorf("router: the channel closed: %w", amqp.ErrClosed)
		}
		return ErrNacked
	}
	return nil
}

// Close closes the channel.
func (c *Confirmer) Close() error { return c.ch.Close() }
