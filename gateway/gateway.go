// Package gateway is the HTTP edge of fhirgw: $process-message intake
// (validation, custody, duplicate replay, routing), the synchronous wait for
// a filler's response, Task and Bundle reads, the CapabilityStatement, health
// and metrics. It composes the envelope, the router and the ledger.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"github.com/fhirgw/fhirgw/adapters"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Ledger is what the gateway needs of the durable ledger (see
// ledger.Ledger for the contract of each method).
type Ledger interface {
	Accept(ctx context.Context, m *ledger.Message) error
	SetAnswer(ctx context.Context, taskID string, a ledger.Answer) error
	Apply(ctx context.Context, taskID string, c ledger.Change, move ledger.Move) (ledger.Applied, error)
	AddResponse(ctx context.Context, r *ledger.Response, move ledger.Move) error
	AddUnmatched(ctx context.Context, r *ledger.Response) error
	Task(ctx context.Context, taskID string, scope ledger.Scope) (*ledger.Message, error)
	TaskVersion(ctx context.Context, taskID string, version int, scope ledger.Scope) (*ledger.Message, error)
	History(ctx context.Context, taskID string, scope ledger.Scope) ([]*ledger.Message, error)
	ByIdentity(ctx context.Context, identity string, scope ledger.Scope) (*ledger.Message, error)
	ByFocusKey(ctx context.Context, keys []string, scope ledger.Scope) ([]*ledger.Message, error)
	SearchTasks(ctx context.Context, q ledger.TaskQuery) ([]*ledger.Message, int, error)
	Overdue(ctx context.Context, now time.Time, limit int) ([]*ledger.Message, error)
	Outputs(ctx context.Context, taskIDs ...string) (map[string][]ledger.Response, error)
	Bundle(ctx context.Context, bundleID string, scope ledger.Scope) (*ledger.Response, error)
	Purge(ctx context.Context, closedBefore time.Time, limit int) (int, error)
	Backlog() int
}

// Relay is what the gateway needs of the outbox relay.
type Relay interface {
	// Offer hands over deliveries just committed to the outbox; it never
	// blocks.
	Offer(ds ...router.Delivery)
	// Ready reports whether the broker connection is up.
	Ready() bool
}

// Options are a Gateway's parts; cmd wires them.
type Options struct {
	Config  Config
	Ledger  Ledger
	Routes  *router.Table
	Relay   Relay
	Log     *zap.Logger
	Metrics *prometheus.Registry
	// Now and NewID default to time.Now and random UUIDs.
	Now   func() time.Time
	NewID func() string
	// Version is the fhirgw version reported as software.
	Version string
	// PurgeInterval is how often closed exchanges past the retention are
	// purged (default a minute).
	PurgeInterval time.Duration
	// Pusher, when set, is told when an answer is queued for a placer.
	Pusher interface{ Notify() }
	// SweepInterval is how often acknowledgement deadlines are checked
	// (default 1s).
	SweepInterval time.Duration
	// IngressReady, when set, reports whether the AMQP ingress consumes;
	// /readyz includes it.
	IngressReady func() bool
}

// Gateway serves the HTTP API.
type Gateway struct {
	cfg        Config
	ledger     Ledger
	routes     *router.Table
	relay      Relay
	log        *zap.Logger
	now        func() time.Time
	newID      func() string
	parser     *envelope.Parser
	version    envelope.Version
	responder  envelope.Responder
	waiters    *waiters
	metrics    *metrics
	engine     *gin.Engine
	base       string // public base URL, for Content-Location and emitted messages
	purgeEvery time.Duration
	pusher     interface{ Notify() }
	sweepEvery time.Duration
	auth       *authenticator
	topology   router.Topology
	ingressUp  func() bool
	// httpFillers are the fillers the gateway delivers to itself (http, rest).
	httpFillers map[string]bool
}

// New checks opts and builds the gateway's handler.
func New(opts Options) (*Gateway, error) {
	if opts.Ledger == nil || opts.Routes == nil || opts.Relay == nil {
		return nil, errors.New("gateway: Ledger, Routes and Relay are required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewID == nil {
		opts.NewID = uuid.NewString
	}
	v, err := envelope.ParseVersion(opts.Config.FHIRVersion)
	if err != nil || v == envelope.VersionAuto {
		return nil, fmt.Errorf("%w: fhirVersion %q", ErrConfig, opts.Config.FHIRVersion)
	}
	g := &Gateway{
		cfg: opts.Config, ledger: opts.Ledger, routes: opts.Routes, relay: opts.Relay, log: opts.Log,
		now: opts.Now, newID: opts.NewID, version: v, waiters: newWaiters(),
		parser: envelope.NewParser(envelope.Options{DefaultVersion: v, Limits: envelope.Limits{MaxBytes: opts.Config.HTTP.MaxBodyBytes}}),
		base:   publicBase(opts.Config.HTTP), topology: opts.Config.Topology(),
	}
	if g.auth, err = newAuthenticator(opts.Config); err != nil {
		return nil, err
	}
	g.httpFillers = map[string]bool{}
	for _, f := range opts.Config.Fillers {
		kind, _ := adapters.KindOf(f.Adapter)
		g.httpFillers[f.ID] = kind.Driven()
	}
	g.pusher = opts.Pusher
	g.ingressUp = opts.IngressReady
	g.sweepEvery = opts.SweepInterval
	if g.sweepEvery <= 0 {
		g.sweepEvery = time.Second
	}
	g.purgeEvery = opts.PurgeInterval
	if g.purgeEvery <= 0 {
		g.purgeEvery = time.Minute
	}
	g.responder = envelope.Responder{
		Sender: envelope.Sender{Name: "fhirgw", Software: "fhirgw", Version: opts.Version, Endpoint: g.base},
		Now:    g.now, NewID: g.newID,
	}
	g.metrics, err = newMetrics(opts.Metrics, opts.Ledger, opts.Relay)
	if err != nil {
		return nil, err
	}
	g.engine = g.routesEngine(opts.Metrics)
	return g, nil
}

// Handler is the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.engine }

// Serve serves HTTP on ln until ctx ends, then stops taking requests and
// waits (up to grace) for those in flight, synchronous waits included.
// It also purges the duplicate cache past reliableCacheMinutes.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{Handler: g.engine, ReadHeaderTimeout: 10 * time.Second}
	purgeCtx, stopPurge := context.WithCancel(ctx)
	purged := make(chan struct{})
	go func() { g.housekeeping(purgeCtx); close(purged) }()
	defer func() { stopPurge(); <-purged }()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	<-served
	return nil
}

// housekeeping purges closed exchanges past the retention, in batches, and
// fails exchanges whose filler stayed silent past the route's
// acknowledgement deadline.
func (g *Gateway) housekeeping(ctx context.Context) {
	purge := time.NewTicker(g.purgeEvery)
	defer purge.Stop()
	sweep := time.NewTicker(g.sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			g.purgeClosed(ctx)
		case <-sweep.C:
			g.sweepOverdue(ctx)
		}
	}
}

// purgeBatch bounds one purge transaction, so that purging never stalls
// intake for long.
const purgeBatch = 500

// purgeClosed removes the closed exchanges past the retention, a batch at a
// time, yielding to intake between batches.
func (g *Gateway) purgeClosed(ctx context.Context) {
	cutoff := g.now().Add(-g.cfg.Retention.Std())
	total := 0
	for ctx.Err() == nil {
		n, err := g.ledger.Purge(ctx, cutoff, purgeBatch)
		if err != nil {
			if ctx.Err() == nil {
				g.log.Warn("purging closed exchanges failed", zap.Error(err))
			}
			return
		}
		total += n
		if n < purgeBatch {
			break
		}
	}
	if total > 0 {
		g.log.Info("purged closed exchanges past the retention", zap.Int("exchanges", total))
	}
}

// sweepOverdue fails the Tasks whose acknowledgement deadline passed and
// tells their placers with a transient-error response.
func (g *Gateway) sweepOverdue(ctx context.Context) {
	overdue, err := g.ledger.Overdue(ctx, g.now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("checking acknowledgement deadlines failed", zap.Error(err))
		}
		return
	}
	for _, m := range overdue {
		why := fmt.Sprintf("no acknowledgement from %s within the deadline (%s)", strings.Join(m.Fillers, ", "),
			m.AckDue.Sub(m.ReceivedAt).Round(time.Second))
		a, err := g.ledger.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeDeadline},
			ledger.From(ledger.StatusFailed, "acknowledgement overdue: "+why, ledger.StatusRequested, ledger.StatusReceived))
		if err != nil || !a.Changed {
			continue
		}
		g.log.Warn("acknowledgement overdue", zap.String("taskId", m.TaskID), zap.Strings("fillers", m.Fillers))
		if err := g.answerPlacer(ctx, m.TaskID, m.Body, m.FHIRVersion, envelope.ResponseTransientError, why); err != nil {
			g.log.Warn("telling the placer about an overdue acknowledgement failed", zap.String("taskId", m.TaskID), zap.Error(err))
		}
	}
}

// publicBase is the gateway's FHIR base URL as clients reach it.
func publicBase(h HTTPConfig) string {
	if h.PublicURL != "" {
		return strings.TrimSuffix(h.PublicURL, "/")
	}
	host := h.Addr
	if strings.HasPrefix(host, ":") {
		host = "localhost" + host
	}
	return "http://" + host + strings.TrimSuffix(h.BasePath, "/")
}
