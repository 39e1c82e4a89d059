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

// Ledger is what the gateway needs of the durable ledger.
type Ledger interface {
	Accept(ctx context.Context, m *ledger.Message) error
	SetAnswer(ctx context.Context, taskID string, a ledger.Answer) error
	Task(ctx context.Context, taskID string) (*ledger.Message, error)
	ByIdentity(ctx context.Context, identity string) (*ledger.Message, error)
	ByFocusKey(ctx context.Context, keys []string) (*ledger.Message, error)
	SearchTasks(ctx context.Context, q ledger.TaskQuery) ([]*ledger.Message, error)
	Overdue(ctx context.Context, now time.Time, limit int) ([]*ledger.Message, error)
	AddResponse(ctx context.Context, r *ledger.Response, move ledger.Move) error
	AddUnmatched(ctx context.Context, r *ledger.Response) error
	Outputs(ctx context.Context, taskIDs ...string) (map[string][]ledger.Response, error)
	Bundle(ctx context.Context, bundleID string) (*ledger.Response, error)
	Purge(ctx context.Context, before time.Time) (int, error)
	Transition(ctx context.Context, taskID, status string, from []string, business string) (bool, error)
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
	// PurgeInterval is how often messages past reliableCacheMinutes are
	// purged (default a tenth of the window, at most a minute).
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
		g.purgeEvery = min(time.Duration(opts.Config.ReliableCacheMinutes)*time.Minute/10, time.Minute)
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

// housekeeping forgets messages older than the duplicate-detection window
// and fails exchanges whose filler stayed silent past the route's
// acknowledgement deadline.
func (g *Gateway) housekeeping(ctx context.Context) {
	window := time.Duration(g.cfg.ReliableCacheMinutes) * time.Minute
	purge := time.NewTicker(g.purgeEvery)
	defer purge.Stop()
	sweep := time.NewTicker(g.sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			n, err := g.ledger.Purge(ctx, g.now().Add(-window))
			if err != nil && ctx.Err() == nil {
				g.log.Warn("purging the duplicate cache failed", zap.Error(err))
			} else if n > 0 {
				g.log.Info("purged messages past the duplicate-detection window", zap.Int("messages", n))
			}
		case <-sweep.C:
			g.sweepOverdue(ctx)
		}
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
		moved, err := g.ledger.Transition(ctx, m.TaskID, "failed", []string{"requested", "received"}, "acknowledgement overdue: "+why)
		if err != nil || !moved {
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
