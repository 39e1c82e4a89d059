// Package ack brings answers back to placers: the durable ledger (package
// ledger) records responses and the callbacks owed, and the Pusher POSTs
// them to the placers' endpoints, per exchange in the order they arrived,
// retrying with backoff until the placer takes them.
package ack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"go.uber.org/zap"
)

// CallbackStore holds the callbacks owed to placers.
type CallbackStore interface {
	// DueCallbacks returns, per task, the oldest callback owed if it is due
	// and not parked, with a seq above after, without its body.
	DueCallbacks(ctx context.Context, now time.Time, after int64, limit int) ([]ledger.Callback, error)
	// CallbackBody reads the response a callback carries.
	CallbackBody(ctx context.Context, seq int64) ([]byte, error)
	// CallbackDone forgets a callback.
	CallbackDone(ctx context.Context, seq int64) error
	// CallbackFailed records a failed attempt and the time of the next.
	CallbackFailed(ctx context.Context, seq int64, next time.Time, lastError string) error
}

// PusherConfig configures a Pusher.
type PusherConfig struct {
	Store  CallbackStore
	Client *http.Client
	// Replier publishes the answers owed to AMQP placers (callbacks made
	// by ReplyURL).
	Replier Replier
	Log     *zap.Logger
	Now     func() time.Time
	// Poll is how often due retries are looked for without a Notify
	// (default 500ms).
	Poll time.Duration
	// Initial and Max bound the backoff between attempts (defaults 1s, 5m).
	Initial, Max time.Duration
	// Concurrency is how many placers are called at once (default 8); the
	// callbacks of one exchange always go one at a time, in order.
	Concurrency int
}

// Pusher POSTs responses to placers: `POST [url]?async=true` with the
// response message. 200, 202 and 204 deliver it; 408, 429 (honouring
// Retry-After), 5xx and connection errors are retried with backoff, and
// the exchange's later responses wait; other 4xx are given up (logged; the
// placer can still poll the Task).
type Pusher struct {
	cfg  PusherConfig
	wake chan struct{}
}

// NewPusher returns a Pusher; Run starts it.
func NewPusher(cfg PusherConfig) *Pusher {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Initial <= 0 {
		cfg.Initial = time.Second
	}
	if cfg.Max <= 0 {
		cfg.Max = 5 * time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	return &Pusher{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Notify says a callback was queued. It never blocks.
func (p *Pusher) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run pushes until ctx ends.
func (p *Pusher) Run(ctx context.Context) error {
	poll := time.NewTicker(p.cfg.Poll)
	defer poll.Stop()
	for {
		due, err := p.cfg.Store.DueCallbacks(ctx, p.cfg.Now(), 0, 8*p.cfg.Concurrency)
		if err != nil && ctx.Err() == nil {
			p.cfg.Log.Warn("reading the callbacks owed failed", zap.Error(err))
		}
		if len(due) > 0 {
			p.pushAll(ctx, due)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-poll.C:
		}
	}
}

// pushAll pushes one callback per task, a few tasks at a time.
func (p *Pusher) pushAll(ctx context.Context, due []ledger.Callback) {
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, c := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.push(ctx, c)
		}()
	}
	wg.Wait()
}

func (p *Pusher) push(ctx context.Context, c ledger.Callback) {
	log := p.cfg.Log.With(zap.String("taskId", c.TaskID), zap.String("bundleId", c.BundleID), zap.Int("attempt", c.Attempts+1))
	body, err := p.cfg.Store.CallbackBody(ctx, c.Seq)
	if err != nil {
		log.Warn("reading a callback failed", zap.Error(err))
		return
	}
	c.Body = body
	status, wait, err := p.send(ctx, c)
	switch {
	case err == nil && (status == http.StatusOK || status == http.StatusAccepted || status == http.StatusNoContent):
		if err := p.cfg.Store.CallbackDone(ctx, c.Seq); err != nil {
			log.Warn("recording a delivered callback failed", zap.Error(err))
		}
		log.Debug("answer delivered to the placer", zap.Int("status", status))
		return
	case err == nil && status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		log.Error("the placer refused an answer; not retried (it can poll the Task)", zap.Int("status", status))
		if err := p.cfg.Store.CallbackDone(ctx, c.Seq); err != nil {
			log.Warn("recording a refused callback failed", zap.Error(err))
		}
		return
	}
	reason := fmt.Sprintf("status %d", status)
	if err != nil {
		reason = err.Error()
	}
	wait = max(wait, p.backoff(c.Attempts+1))
	log.Info("pushing an answer to the placer failed; will retry", zap.String("reason", reason), zap.Duration("wait", wait))
	if err := p.cfg.Store.CallbackFailed(ctx, c.Seq, p.cfg.Now().Add(wait), reason); err != nil {
		log.Warn("recording a failed callback failed", zap.Error(err))
	}
}

// send delivers the callback, to a reply queue or by HTTP POST, and
// returns the (HTTP-equivalent) status and any Retry-After.
func (p *Pusher) send(ctx context.Context, c ledger.Callback) (int, time.Duration, error) {
	queue, correlationID, ok := ParseReplyURL(c.URL)
	if !ok {
		return p.post(ctx, c)
	}
	if p.cfg.Replier == nil {
		return 0, 0, fmt.Errorf("no AMQP replier is configured for reply queue %s", queue)
	}
	err := p.cfg.Replier.Reply(ctx, Reply{Queue: queue, CorrelationID: correlationID, TaskID: c.TaskID,
		BundleID: c.BundleID, FHIRVersion: c.FHIRVersion, Body: c.Body})
	if err != nil {
		return 0, 0, err
	}
	return http.StatusOK, 0, nil
}

// post sends the callback and returns the status and any Retry-After.
func (p *Pusher) post(ctx context.Context, c ledger.Callback) (int, time.Duration, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return 0, 0, err
	}
	q := u.Query()
	q.Set("async", "true")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(c.Body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json; fhirVersion="+c.FHIRVersion)
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	var wait time.Duration
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		wait = time.Duration(n) * time.Second
	}
	return resp.StatusCode, wait, nil
}

// backoff is the wait after the attempt-th failure: exponential, capped,
// with jitter.
func (p *Pusher) backoff(attempt int) time.Duration {
	d := p.cfg.Initial
	for i := 1; i < attempt && d < p.cfg.Max; i++ {
		d *= 2
	}
	d = min(d, p.cfg.Max)
	return d/2 + rand.N(d/2+1)
}
