package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/fhirgw/fhirgw/ack"
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
	if cfg.Auth.Disabled {
		log.Warn("authentication is disabled by configuration (auth.disabled): any caller is trusted")
	}
	table, err := cfg.RouteTable()
	if err != nil {
		return err
	}
	topo := cfg.Topology()

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
		Topology: topo, Log: log.Named("relay"),
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

	pusher := ack.NewPusher(ack.PusherConfig{Store: led, Log: log.Named("push")})
	pushCtx, stopPush := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPush()
	pushDone := make(chan struct{})
	go func() { _ = pusher.Run(pushCtx); close(pushDone) }()
	defer func() {
		stopPush()
		<-pushDone
		log.Info("pusher stopped")
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw, err := gateway.New(gateway.Options{Config: cfg, Ledger: led, Routes: table, Relay: relay, Log: log.Named("gateway"), Metrics: reg, Version: version, Pusher: pusher})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	workers, err := cfg.FillerWorkers(gw.Sink(), log.Named("filler"))
	if err != nil {
		return err
	}
	workerCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	var workersDone sync.WaitGroup
	for _, w := range workers {
		workersDone.Add(1)
		go func() { defer workersDone.Done(); _ = w.Run(workerCtx) }()
	}
	defer func() {
		// Before the relay and the ledger: a worker may still record a delivery.
		stopWorkers()
		workersDone.Wait()
		log.Info("filler workers stopped")
	}()
	log.Info("gateway listening", zap.String("addr", ln.Addr().String()), zap.String("basePath", cfg.HTTP.BasePath),
		zap.Int("routes", len(cfg.Routes)), zap.Strings("fillers", topo.Fillers), zap.Int("workers", len(workers)))
	err = gw.Serve(ctx, ln, shutdownGrace)
	log.Info("intake stopped")
	return err
}
