package router

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Publisher publishes single messages with confirms on a connection of its
// own, dialled on first use and again after it breaks. It is for low-volume
// traffic such as answers pushed to reply queues.
type Publisher struct {
	url  string
	name string

	mu   sync.Mutex
	conn *amqp.Connection
	out  *Confirmer
}

// NewPublisher returns a Publisher whose connection is named name.
func NewPublisher(url, name string) *Publisher { return &Publisher{url: url, name: name} }

// Publish publishes msg and waits for its fate (see Confirmer.Publish).
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	out, err := p.confirmer()
	if err != nil {
		return err
	}
	err = out.Publish(ctx, exchange, key, msg)
	if err != nil && !errors.Is(err, ErrReturned) && !errors.Is(err, ErrNacked) {
		p.reset(out)
	}
	return err
}

func (p *Publisher) confirmer() (*Confirmer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out != nil && !p.conn.IsClosed() {
		return p.out, nil
	}
	p.closeLocked()
	conn, err := Dial(p.url, p.name)
	if err != nil {
		return nil, fmt.Errorf("router: dial: %w", err)
	}
	out, err := NewConfirmer(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p.conn, p.out = conn, out
	return out, nil
}

// reset drops a broken connection so that the next publish dials again.
func (p *Publisher) reset(broken *Confirmer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == broken {
		p.closeLocked()
	}
}

func (p *Publisher) closeLocked() {
	if p.conn != nil {
		p.conn.Close()
	}
	p.conn, p.out = nil, nil
}

// Close closes the connection.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
	return nil
}
