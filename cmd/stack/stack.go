// Package stack wires a whole gateway from its Config: the ledger, the
// relay, the AMQP ingress, the pusher, the filler workers and the HTTP API.
// It is the one composition root, shared by `fhirgw serve` and the test kit
// (testing/gatewaytest), so that tests run the gateway users run.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/adapters"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/router"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Options are what a stack is built from besides its Config. Zero values
// take the defaults of each part; tests shorten the intervals.
type Options struct {
	Config  gateway.Config
	Log     *zap.Logger
	Metrics *prometheus.Registry
	Version string
	// Listener serves the HTTP API (default: listen on http.addr).
	Listener net.Listener
	// Now is the clock of the gateway, its ledger and its pusher.
	Now func() time.Time
	// Grace bounds, at shutdown, how long requests in flight may finish and
	// then how long the relay may take to publish what the outbox holds
	// (default 30s each).
	Grace time.Duration

	PurgeInterval, SweepInterval time.Duration
	RelayPoll                    time.Duration
	// PushPoll is how often the pusher looks for retries due; how it
	// retries is the Config's callbacks.retry.
	PushPoll time.Duration
}

// Stack is a gateway built and ready to Run.
type Stack struct {
	Core    *ack.Core
	Gateway *gateway.Gateway
	Ledger  *ledger.SQLite
	Relay   *router.Relay
	Ingress *router.Ingress

	opts      Options
	ln        net.Listener
	pusher    *ack.Pusher
	publisher *router.Publisher
	workers   []*adapters.Worker
}

// New opens the ledger (migrating it) and builds every part; nothing runs
// until Run. On error nothing is left open.
func New(ctx context.Context, o Options) (s *Stack, err error) {
	cfg := o.Config
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	table, err := cfg.RouteTable()
	if err != nil {
		return nil, err
	}
	topo := cfg.Topology()
	led, err := ledger.OpenSQLite(ctx, cfg.Ledger.DSN, ledger.Options{Now: o.Now,
		DuplicateWindow: time.Duration(cfg.ReliableCacheMinutes) * time.Minute})
	if err != nil {
		return nil, err
	}
	s = &Stack{Ledger: led, opts: o}
	defer func() {
		if err != nil {
			_ = led.Close(context.WithoutCancel(ctx))
		}
	}()
	s.Relay = router.NewRelay(router.RelayConfig{URL: cfg.AMQP.URL, Outbox: gateway.LedgerOutbox{Ledger: led}, Topology: topo,
		Log: o.Log.Named("relay"), Poll: o.RelayPoll,
		// A delivery the relay cannot publish is parked like a filler's
		// dead letter: its Task fails and the placer is told why. s.Core is
		// set below, before anything runs.
		Parked: func(ctx context.Context, d router.Delivery, reason string) error {
			return s.Core.Sink().Parked(ctx, adapters.Message{TaskID: d.TaskID, Filler: d.Filler, Identity: d.Identity,
				Event: d.Event, FHIRVersion: d.FHIRVersion, Body: d.Body}, adapters.Parking{Reason: reason})
		}})
	s.publisher = router.NewPublisher(cfg.AMQP.URL, "fhirgw replies")
	retry := cfg.Callbacks.Retry
	s.pusher = ack.NewPusher(ack.PusherConfig{Store: led, Log: o.Log.Named("push"), Now: o.Now, Poll: o.PushPoll,
		Retry: ack.RetryPolicy{MaxAttempts: retry.MaxAttempts, MaxAge: retry.MaxAge.Std(),
			Initial: retry.InitialBackoff.Std(), Max: retry.MaxBackoff.Std()},
		PerOrigin: cfg.Callbacks.PerOrigin, Allowed: cfg.CallbackAllowed, Replier: gateway.NewReplier(s.publisher, cfg, o.Now)})
	cc, err := cfg.CoreConfig(o.Version)
	if err != nil {
		return nil, err
	}
	cc.Ledger, cc.Relay, cc.Pusher, cc.Log, cc.Now = led, s.Relay, s.pusher, o.Log.Named("core"), o.Now
	cc.PurgeEvery, cc.SweepEvery = o.PurgeInterval, o.SweepInterval
	if s.Core, err = ack.NewCore(cc); err != nil {
		return nil, err
	}
	s.Gateway, err = gateway.New(gateway.Options{Config: cfg, Core: s.Core, Routes: table, Relay: s.Relay, Log: o.Log.Named("gateway"),
		Metrics: o.Metrics, Version: o.Version, Now: o.Now,
		IngressReady: func() bool { return s.Ingress.Ready() }}) // s.Ingress is set below, before anything runs
	if err != nil {
		return nil, err
	}
	s.Ingress = router.NewIngress(router.IngressConfig{URL: cfg.AMQP.URL, Topology: topo, Handler: s.Gateway.Ingress(), Grace: o.Grace, Log: o.Log.Named("ingress")})
	if s.workers, err = cfg.FillerWorkers(s.Core.Sink(), o.Log.Named("filler")); err != nil {
		return nil, err
	}
	s.ln = o.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
		}
	}
	return s, nil
}

// Addr is where the HTTP API listens.
func (s *Stack) Addr() net.Addr { return s.ln.Addr() }

// Ready reports whether the relay and the ingress hold their broker
// connections.
func (s *Stack) Ready() bool { return s.Relay.Ready() && s.Ingress.Ready() }

// Run runs every part until ctx ends, then shuts down in order: intake
// (HTTP requests in flight finish, AMQP messages taken are answered), the
// filler workers, the drain of the outbox (the relay publishes everything
// accepted, confirmed and recorded, for at most Options.Grace; with the
// broker away, what is left is logged and published after a restart), the
// exchange core's deadline sweeps and purges, the pusher, the relay, and
// last the ledger. It returns the errors that stopped the parts; an outbox
// not drained in time is not one of them (nothing is lost).
func (s *Stack) Run(ctx context.Context) error {
	log := s.opts.Log
	background := context.WithoutCancel(ctx)
	ledgerDone := start(background, func(ctx context.Context) error { return s.Ledger.Run(ctx) })
	relayCtx, stopRelay := context.WithCancel(background)
	relayDone := start(relayCtx, s.Relay.Run)
	pushCtx, stopPush := context.WithCancel(background)
	pushDone := start(pushCtx, s.pusher.Run)
	coreCtx, stopCore := context.WithCancel(background)
	coreDone := start(coreCtx, s.Core.Run)
	workerCtx, stopWorkers := context.WithCancel(background)
	var workers sync.WaitGroup
	for _, w := range s.workers {
		workers.Add(1)
		go func() { defer workers.Done(); _ = w.Run(workerCtx) }()
	}
	ingressCtx, stopIngress := context.WithCancel(ctx)
	defer stopIngress()
	ingressDone := start(ingressCtx, s.Ingress.Run)
	log.Info("gateway listening", zap.String("addr", s.ln.Addr().String()), zap.String("basePath", s.opts.Config.HTTP.BasePath),
		zap.Int("routes", len(s.opts.Config.Routes)), zap.Int("workers", len(s.workers)))

	err := s.Gateway.Serve(ctx, s.ln, s.opts.Grace)
	stopIngress() // also when serving failed before ctx ended
	err = errors.Join(err, <-ingressDone)
	log.Info("intake stopped")
	stopWorkers()
	workers.Wait()
	log.Info("filler workers stopped")
	s.drainOutbox(background)
	stopCore()
	err = errors.Join(err, <-coreDone)
	stopPush()
	err = errors.Join(err, <-pushDone)
	s.publisher.Close()
	log.Info("pusher stopped")
	stopRelay()
	err = errors.Join(err, <-relayDone)
	log.Info("relay stopped; in-flight publishes confirmed")
	cctx, cancel := context.WithTimeout(background, 10*time.Second)
	defer cancel()
	err = errors.Join(err, s.Ledger.Close(cctx), <-ledgerDone)
	log.Info("ledger closed")
	return err
}

// drainOutbox has the relay publish what the outbox holds, for at most the
// grace, and logs how it went.
func (s *Stack) drainOutbox(ctx context.Context) {
	log := s.opts.Log
	held := s.Ledger.Backlog()
	if held == 0 {
		log.Info("outbox drained", zap.Int("held", 0), zap.Duration("took", 0))
		return
	}
	began := time.Now()
	dctx, cancel := context.WithTimeout(ctx, s.opts.Grace)
	defer cancel()
	if err := s.Relay.Drain(dctx); err != nil {
		log.Warn("the outbox was not drained at stop; what is left is published after a restart", zap.Int("left", s.Ledger.Backlog()),
			zap.Int("held", held), zap.Duration("grace", s.opts.Grace), zap.Error(err))
		return
	}
	log.Info("outbox drained", zap.Int("held", held), zap.Duration("took", time.Since(began)))
}

// start runs part in a goroutine and returns where its result arrives.
func start(ctx context.Context, part func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- part(ctx) }()
	return done
}
