package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/router"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

// version is the fhirgw release, set at build time with -ldflags "-X main.version=...".
var version = "dev"

// shutdownGrace bounds how long in-flight requests may finish at shutdown.
const shutdownGrace = 30 * time.Second

// runServe is `fhirgw serve --config FILE`: it wires the ledger, the relay
// and the HTTP gateway, runs them until SIGINT/SIGTERM, then shuts down in
// order: stop intake and finish requests in flight, let the relay confirm
// what it published, close the ledger.
func runServe(ctx context.Context, env *environment, args []string) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	fset.SetOutput(env.stderr)
	path := fset.String("config", "", "the configuration file (YAML)")
	cpuProfile := fset.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	fset.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: fhirgw serve --config FILE")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *path == "" || fset.NArg() > 0 {
		fmt.Fprintln(env.stderr, "fhirgw serve: give the configuration file with --config FILE.")
		return exitUsage
	}
	cfg, err := gateway.LoadConfig(*path, os.Getenv)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw serve: %v.\n", err)
		return exitUsage
	}
	level := env.logLevel
	if level == "" {
		level = "info"
	}
	log, err := newLogger(env.stderr, level)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw: %v.\n", err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(env.stderr, "fhirgw serve: %v.\n", err)
			return exitUsage
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(env.stderr, "fhirgw serve: %v.\n", err)
			return exitUsage
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("gateway stopped", zap.Error(err))
		fmt.Fprintf(env.stderr, "fhirgw serve: %v.\n", err)
		return exitCheckFailed
	}
	return exitOK
}

// serve runs the gateway described by cfg until ctx ends.
func serve(ctx context.Context, cfg gateway.Config, log *zap.Logger) error {
	gin.SetMode(gin.ReleaseMode)
	if !cfg.Auth.Disabled {
		log.Warn("partner authentication is not enforced by this release; run the gateway only where its callers are trusted")
	}
	routes := make([]router.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		routes[i] = router.Route{Event: r.Event, Fillers: r.Fillers, SyncTimeout: r.SyncTimeout.Std(), AckDeadline: r.AckDeadline.Std(), CancelEvent: r.CancelEvent}
	}
	table, err := router.NewTable(routes)
	if err != nil {
		return err
	}
	fillers := make([]string, len(cfg.Fillers))
	for i, f := range cfg.Fillers {
		fillers[i] = f.ID
	}

	led, err := ledger.OpenSQLite(ctx, cfg.Ledger.DSN, ledger.Options{})
	if err != nil {
		return err
	}
	ledgerCtx, stopLedger := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLedger()
	ledgerDone := make(chan error, 1)
	go func() { ledgerDone <- led.Run(ledgerCtx) }()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := led.Close(cctx); err != nil {
			log.Error("closing the ledger", zap.Error(err))
		}
		<-ledgerDone
		log.Info("ledger closed")
	}()

	relay := router.NewRelay(router.RelayConfig{
		URL: cfg.AMQP.URL, Outbox: gateway.LedgerOutbox{Ledger: led},
		Topology: router.Topology{Prefix: cfg.AMQP.Prefix, Fillers: fillers}, Log: log.Named("relay"),
	})
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() {
		stopRelay()
		<-relayDone
		log.Info("relay stopped; in-flight publishes confirmed")
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw, err := gateway.New(gateway.Options{Config: cfg, Ledger: led, Routes: table, Relay: relay, Log: log.Named("gateway"), Metrics: reg, Version: version})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	log.Info("gateway listening", zap.String("addr", ln.Addr().String()), zap.String("basePath", cfg.HTTP.BasePath),
		zap.Int("routes", len(routes)), zap.Strings("fillers", fillers))
	err = gw.Serve(ctx, ln, shutdownGrace)
	log.Info("intake stopped")
	return err
}
