package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/fhirgw/fhirgw/cmd/stack"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

// version is the fhirgw release, set at build time with -ldflags "-X main.version=...".
var version = "dev"

// shutdownGrace bounds how long in-flight requests may finish at shutdown,
// and then how long the relay may take to publish what the outbox holds.
const shutdownGrace = 30 * time.Second

// runServe is `fhirgw serve --config FILE`: it wires the ledger, the relay
// and the HTTP gateway, runs them until SIGINT/SIGTERM, then shuts down in
// order: stop intake and finish requests in flight, drain the outbox (the
// relay publishes everything accepted), close the ledger (see stack.Run).
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s, err := stack.New(ctx, stack.Options{Config: cfg, Log: log, Metrics: reg, Version: version, Grace: shutdownGrace})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
