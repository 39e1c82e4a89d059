package ack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"go.uber.org/zap"
)

// CallbackStore holds the callbacks owed to placers.
type CallbackStore interface {
	// DueCallbacks returns, in seq order and for up to limit tasks, each
	// task's oldest callback (its head) with a seq above after, if it is
	// due by now and not parked; bodies are not read.
	DueCallbacks(ctx context.Context, now time.Time, after int64, limit int) ([]ledger.Callback, error)
	// CallbackBody reads the response a callback carries.
	CallbackBody(ctx context.Context, seq int64) ([]byte, error)
	// CallbackDone forgets a callback the placer took.
	CallbackDone(ctx context.Context, seq int64) error
	// CallbackFailed records a failed attempt and the time of the next.
	CallbackFailed(ctx context.Context, seq int64, next time.Time, lastError string) error
	// CallbackParked parks a callback that is not pushed again; it blocks
	// its task's later callbacks.
	CallbackParked(ctx context.Context, seq int64, reason string) error
}

// RetryPolicy bounds the attempts at one callback. Every callback gets at
// least one attempt; after a failed one it is parked when MaxAttempts
// attempts have failed or when the next attempt would come more than
// MaxAge after the callback was queued.
type RetryPolicy struct {
	// MaxAttempts is how many failed attempts park a callback (default 8).
	MaxAttempts int
	// MaxAge is how long after it was queued a callback is retried
	// (default 1h).
	MaxAge time.Duration
	// Initial and Max bound the exponential backoff between attempts
	// (defaults 1s and 1m); each wait is drawn between half and all of it,
	// and is at least what the placer's Retry-After asks.
	Initial time.Duration
	Max     time.Duration
}

func (r RetryPolicy) withDefaults() RetryPolicy {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 8
	}
	if r.MaxAge <= 0 {
		r.MaxAge = time.Hour
	}
	if r.Initial <= 0 {
		r.Initial = time.Second
	}
	if r.Max <= 0 {
		r.Max = time.Minute
	}
	r.Max = max(r.Max, r.Initial)
	return r
}

// backoff is the wait after the attempt-th failed attempt (attempt ≥ 1):
// Initial·2^(attempt-1) capped at Max, with jitter.
func (r RetryPolicy) backoff(attempt int) time.Duration {
	d := r.Initial
	for i := 1; i < attempt && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	return d/2 + rand.N(d/2+1)
}

// PusherConfig configures a Pusher.
type PusherConfig struct {
	// Store is the ledger of the callbacks owed.
	Store CallbackStore
	// Client makes the HTTP calls (default: 30s timeout). It is copied, and
	// the copy never follows redirects, whatever Client.CheckRedirect says.
	Client *http.Client
	// Replier publishes the answers owed to AMQP placers (callbacks made
	// by ReplyURL).
	Replier Replier
	// Allowed says whether an HTTP callback may be dialled; it is given the
	// exact URL that would be (CallbackURL's, with async=true). Nil allows
	// every URL CallbackURL accepts. A callback not allowed is parked.
	Allowed func(u *url.URL) bool
	// Log gets ids, origins and outcomes, never bodies (default: none).
	Log *zap.Logger
	// Now is the clock of due times and ages (default time.Now).
	Now func() time.Time
	// Poll is how often due retries are looked for without a Notify
	// (default 500ms).
	Poll time.Duration
	// Retry bounds the attempts at one callback.
	Retry RetryPolicy
	// PerOrigin is how many callbacks of one origin (scheme, host, port;
	// all AMQP replies are one origin) are in flight at once (default 8).
	PerOrigin int
	// Concurrency is how many callbacks are in flight in all (default 64).
	// Origins take free places in turn, each at most PerOrigin.
	Concurrency int
}

// Pusher pushes responses to placers: `POST [url]?async=true` with the
// response message, or a publish to the AMQP reply queue of ReplyURL.
//
// Every origin has a lane of its own holding at most PerOrigin calls in
// flight, so a slow or hanging placer delays only its own answers. The
// callbacks of one exchange go one at a time in order: a later one is not
// attempted while an earlier one is in flight, waiting for a retry or
// parked. 200, 202 and 204 deliver a callback. 408, 429, 5xx, redirects
// (never followed) and connection errors are failed attempts, retried with
// backoff and the placer's Retry-After until the RetryPolicy parks the
// callback; other 4xx park it at once, as does a URL that CallbackURL
// refuses or Allowed does not allow. A parked callback stays in the ledger
// with its reason, and the placer can still poll its Task.
type Pusher struct {
	cfg  PusherConfig
	wake chan struct{}
}

// pageSize is how many due callbacks one ledger read returns.
const pageSize = 256

// NewPusher returns a Pusher; Run starts it.
func NewPusher(cfg PusherConfig) *Pusher {
	client := &http.Client{Timeout: 30 * time.Second}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.Client = client
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	cfg.Retry = cfg.Retry.withDefaults()
	if cfg.PerOrigin <= 0 {
		cfg.PerOrigin = 8
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
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

// Run pushes until ctx ends, then waits for the calls in flight to stop
// (they are cancelled with ctx and count as no attempt).
func (p *Pusher) Run(ctx context.Context) error {
	d := &dispatcher{p: p, lanes: map[string]*lane{}, held: map[string]bool{}, results: make(chan result)}
	poll := time.NewTicker(p.cfg.Poll)
	defer poll.Stop()
	scan := true
	for {
		if scan {
			scan = false
			d.scan(ctx)
			d.fill(ctx)
		}
		select {
		case <-ctx.Done():
			d.stop()
			return nil
		case r := <-d.results:
			scan = d.finish(r) || scan
		case <-p.wake:
			scan = true
		case <-poll.C:
			scan, d.full = true, true
		}
		// Take every other result ready now, so that one scan follows them.
		for more := true; more; {
			select {
			case r := <-d.results:
				scan = d.finish(r) || scan
			default:
				more = false
			}
		}
		d.fill(ctx)
	}
}

// dispatcher is the state of one Run, owned by its goroutine: the lanes,
// the tasks whose head callback is in a lane, and the calls in flight.
type dispatcher struct {
	p *Pusher
	// lanes by origin; ring orders them for taking turns, from next.
	lanes map[string]*lane
	ring  []*lane
	next  int
	// held are the tasks with a callback waiting in a lane or in flight:
	// their callbacks are not taken again until it is settled.
	held     map[string]bool
	inflight int
	results  chan result
	wg       sync.WaitGroup
	// scanned is the seq a scan for new callbacks starts after: every due
	// callback up to it was taken when it was read. full asks the next
	// scan to read them all (a lane was full, or a task has more).
	scanned int64
	full    bool
}

// lane is one origin's queue of callbacks and its calls in flight.
type lane struct {
	origin string
	queue  []call
	active int
}

// call is a callback taken into a lane, with the URL it is dialled at
// (nil for an AMQP reply).
type call struct {
	c      ledger.Callback
	target *url.URL
	origin string
}

// result is a finished call; more says the task's next callback may be
// due now.
type result struct {
	call call
	more bool
}

// scan reads the due callbacks page by page and takes those of tasks not
// held into their lanes.
// A scan reads only the callbacks queued since the last one (their seqs
// are higher) unless a full one is due: on the poll (retries that came
// due), after a lane was full, or when a settled task has more.
func (d *dispatcher) scan(ctx context.Context) {
	now := d.p.cfg.Now()
	var after int64
	if !d.full {
		after = d.scanned
	}
	d.full = false
	defer func() {
		if !d.full {
			d.scanned = max(d.scanned, after)
		}
	}()
	for ctx.Err() == nil {
		page, err := d.p.cfg.Store.DueCallbacks(ctx, now, after, pageSize)
		if err != nil {
			if ctx.Err() == nil {
				d.p.cfg.Log.Warn("reading the callbacks owed failed", zap.Error(err))
			}
			return
		}
		for _, c := range page {
			after = c.Seq
			if !d.held[c.TaskID] {
				d.take(ctx, now, c)
			}
		}
		if len(page) < pageSize {
			return
		}
	}
}

// take puts a due callback into its origin's lane, or parks it when it
// may not be pushed.
func (d *dispatcher) take(ctx context.Context, now time.Time, c ledger.Callback) {
	cl := call{c: c, origin: replyScheme + ":"}
	var refusal string
	if _, _, ok := ParseReplyURL(c.URL); !ok {
		cl.origin = "" // unknown until the URL parses
		u, err := CallbackURL(c.URL)
		switch {
		case err != nil:
			refusal = err.Error()
		default:
			cl.target, cl.origin = withAsync(u), origin(u)
			if d.p.cfg.Allowed != nil && !d.p.cfg.Allowed(cl.target) {
				refusal = "the callback URL is not under an allowed callback prefix"
			}
		}
	}
	retry := d.p.cfg.Retry
	switch {
	case refusal != "":
	case c.Attempts >= retry.MaxAttempts: // a limit lowered, or parking interrupted
		refusal = fmt.Sprintf("%d attempts failed (callbacks.retry.maxAttempts); the last: %s", c.Attempts, c.LastError)
	case c.Attempts > 0 && now.Sub(c.CreatedAt) >= retry.MaxAge:
		refusal = fmt.Sprintf("queued %s ago, past callbacks.retry.maxAge, after %d failed attempts; the last: %s",
			now.Sub(c.CreatedAt).Round(time.Second), c.Attempts, c.LastError)
	}
	if refusal != "" {
		d.p.park(ctx, cl, refusal)
		return
	}
	l := d.lanes[cl.origin]
	if l == nil {
		l = &lane{origin: cl.origin}
		d.lanes[cl.origin] = l
		d.ring = append(d.ring, l)
	}
	if len(l.queue) >= 16*d.p.cfg.PerOrigin {
		d.full = true // a later full scan takes it once the lane has room
		return
	}
	l.queue = append(l.queue, cl)
	d.held[c.TaskID] = true
}

// fill starts calls while places are free, the lanes with callbacks
// waiting taking turns, each up to PerOrigin in flight.
func (d *dispatcher) fill(ctx context.Context) {
	for d.inflight < d.p.cfg.Concurrency && ctx.Err() == nil {
		started := false
		for i := 0; i < len(d.ring) && d.inflight < d.p.cfg.Concurrency; i++ {
			l := d.ring[(d.next+i)%len(d.ring)]
			if len(l.queue) == 0 || l.active >= d.p.cfg.PerOrigin {
				continue
			}
			cl := l.queue[0]
			l.queue = l.queue[1:]
			l.active++
			d.inflight++
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.results <- result{call: cl, more: d.p.push(ctx, cl)}
			}()
			started = true
		}
		if len(d.ring) > 0 {
			d.next = (d.next + 1) % len(d.ring)
		}
		if !started {
			return
		}
	}
}

// finish settles a finished call: its task is free for its next callback,
// and an idle lane is dropped. It reports whether to scan again.
func (d *dispatcher) finish(r result) bool {
	d.inflight--
	d.full = d.full || r.more
	delete(d.held, r.call.c.TaskID)
	l := d.lanes[r.call.origin]
	l.active--
	if l.active == 0 && len(l.queue) == 0 {
		delete(d.lanes, l.origin)
		for i, x := range d.ring {
			if x == l {
				d.ring = append(d.ring[:i], d.ring[i+1:]...)
				break
			}
		}
		if d.next >= len(d.ring) {
			d.next = 0
		}
	}
	return r.more
}

// stop waits for the calls in flight, which ctx has cancelled.
func (d *dispatcher) stop() {
	for d.inflight > 0 {
		<-d.results
		d.inflight--
	}
	d.wg.Wait()
}

// push makes one attempt at a callback and records its outcome. It reports
// whether the callback was delivered (its task's next one may be due).
func (p *Pusher) push(ctx context.Context, cl call) bool {
	c := cl.c
	log := p.cfg.Log.With(zap.String("taskId", c.TaskID), zap.String("bundleId", c.BundleID), zap.Int64("callback", c.Seq),
		zap.String("origin", cl.origin), zap.Int("attempt", c.Attempts+1))
	// What the attempt found is recorded even when ctx ends meanwhile.
	record := context.WithoutCancel(ctx)
	body, err := p.cfg.Store.CallbackBody(ctx, c.Seq)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading a callback failed", zap.Error(err))
		}
		return false
	}
	cl.c.Body = body
	status, retryAfter, err := p.send(ctx, cl)
	if err != nil && ctx.Err() != nil {
		return false // stopping: not an attempt
	}
	var reason string
	switch {
	case err != nil:
		reason = err.Error()
	case status == http.StatusOK || status == http.StatusAccepted || status == http.StatusNoContent:
		if err := p.cfg.Store.CallbackDone(record, c.Seq); err != nil {
			log.Warn("recording a delivered callback failed", zap.Error(err))
			return false
		}
		log.Debug("answer delivered to the placer", zap.Int("status", status))
		return true
	case status >= 300 && status < 400:
		reason = fmt.Sprintf("status %d: a redirect, not followed", status)
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		reason = fmt.Sprintf("status %d: the placer refused the answer", status)
		p.failed(record, log, cl, reason, 0, true)
		return false
	default:
		reason = fmt.Sprintf("status %d", status)
	}
	p.failed(record, log, cl, reason, retryAfter, false)
	return false
}

// failed records a failed attempt: retried after the backoff (at least
// retryAfter), or parked when now is set or a retry limit is reached.
func (p *Pusher) failed(ctx context.Context, log *zap.Logger, cl call, reason string, retryAfter time.Duration, now bool) {
	c, retry := cl.c, p.cfg.Retry
	attempts := c.Attempts + 1
	at := p.cfg.Now()
	wait := max(retry.backoff(attempts), retryAfter)
	var park string
	switch {
	case now:
		park = reason
	case attempts >= retry.MaxAttempts:
		park = fmt.Sprintf("%d attempts failed (callbacks.retry.maxAttempts); the last: %s", attempts, reason)
	case at.Add(wait).Sub(c.CreatedAt) > retry.MaxAge:
		park = fmt.Sprintf("the next attempt would be past callbacks.retry.maxAge (%s) after %d failed attempts; the last: %s",
			retry.MaxAge, attempts, reason)
	}
	next := at.Add(wait)
	if park != "" {
		next = at
	}
	if err := p.cfg.Store.CallbackFailed(ctx, c.Seq, next, reason); err != nil {
		log.Warn("recording a failed callback failed", zap.Error(err))
		return
	}
	if park == "" {
		log.Info("pushing an answer to the placer failed; will retry", zap.String("reason", reason), zap.Duration("wait", wait))
		return
	}
	cl.c.Attempts = attempts
	p.park(ctx, cl, park)
}

// park parks a callback with its reason.
func (p *Pusher) park(ctx context.Context, cl call, reason string) {
	log := p.cfg.Log.With(zap.String("taskId", cl.c.TaskID), zap.String("bundleId", cl.c.BundleID), zap.Int64("callback", cl.c.Seq),
		zap.String("origin", cl.origin), zap.Int("attempts", cl.c.Attempts))
	if err := p.cfg.Store.CallbackParked(ctx, cl.c.Seq, reason); err != nil {
		if ctx.Err() == nil {
			log.Warn("parking a callback failed", zap.Error(err))
		}
		return
	}
	log.Warn("an answer could not be pushed to the placer and is parked; its exchange's later answers wait (the placer can poll the Task)",
		zap.String("reason", reason))
}

// send delivers the callback, to a reply queue or by HTTP POST, and
// returns the (HTTP-equivalent) status and any Retry-After.
func (p *Pusher) send(ctx context.Context, cl call) (int, time.Duration, error) {
	c := cl.c
	if cl.target != nil {
		return p.post(ctx, cl.target, c)
	}
	queue, correlationID, _ := ParseReplyURL(c.URL)
	if p.cfg.Replier == nil {
		return 0, 0, fmt.Errorf("no AMQP replier is configured for reply queue %s", queue)
	}
	err := p.cfg.Replier.Reply(ctx, Reply{Queue: queue, CorrelationID: correlationID, TaskID: c.TaskID,
		BundleID: c.BundleID, FHIRVersion: c.FHIRVersion, Body: c.Body})
	if err != nil {
		return 0, 0, fmt.Errorf("reply to queue %s: %w", queue, err)
	}
	return http.StatusOK, 0, nil
}

// post sends the callback to u and returns the status and any Retry-After.
func (p *Pusher) post(ctx context.Context, u *url.URL, c ledger.Callback) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(c.Body))
	if err != nil {
		return 0, 0, fmt.Errorf("build the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/fhir+json; fhirVersion="+c.FHIRVersion)
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which the callback names already
		}
		return 0, 0, fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, retryAfter(resp.Header.Get("Retry-After"), p.cfg.Now()), nil
}

// retryAfter reads a Retry-After value, in seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// withAsync is u with async=true in its query: the URL dialled.
func withAsync(u *url.URL) *url.URL {
	d := *u
	q := d.Query()
	q.Set("async", "true")
	d.RawQuery = q.Encode()
	return &d
}
