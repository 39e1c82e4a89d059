package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// KeepConnected runs session until ctx ends, starting it again after each
// failure with a jittered backoff (100ms doubling to 10s, reset by a
// session that lasted a minute).
func KeepConnected(ctx context.Context, log *zap.Logger, session func(context.Context) error) {
	backoff := 100 * time.Millisecond
	for {
		began := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		log.Warn("broker session ended; reconnecting", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-time.After(backoff + rand.N(backoff/2)):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// Dial opens a connection that names itself in the broker's management.
func Dial(url, name string) (*amqp.Connection, error) {
	return amqp.DialConfig(url, amqp.Config{
		Heartbeat:  10 * time.Second,
		Dial:       amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": name},
	})
}

// openDeclared dials, opens a channel and declares the topology on it: the
// start of every session. The caller closes the connection.
func openDeclared(url, name string, topo Topology) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := Dial(url, name)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("channel: %w", err)
	}
	if err := topo.Declare(ch); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}
