// Package gateway is the HTTP edge of fhirgw: $process-message intake
// (validation, custody, duplicate replay, routing), the synchronous wait for
// a filler's response, Task and Bundle reads, the CapabilityStatement, health
// and metrics. It composes the envelope, the router and the ledger.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Relay is what the gateway needs of the outbox relay.
type Relay interface {
	// Ready reports whether the broker connection is up.
	Ready() bool
}

// Options are a Gateway's parts; cmd wires them.
type Options struct {
	Config Config
	// Core owns the exchanges; the gateway translates HTTP and AMQP to it.
	Core *ack.Core
	// Routes are listed in the CapabilityStatement.
	Routes  *router.Table
	Relay   Relay
	Log     *zap.Logger
	Metrics *prometheus.Registry
	// Now and NewID default to time.Now and random UUIDs.
	Now   func() time.Time
	NewID func() string
	// Version is the fhirgw version reported as software.
	Version string
	// IngressReady, when set, reports whether the AMQP ingress consumes;
	// /readyz includes it.
	IngressReady func() bool
}

// Gateway is the HTTP and AMQP edge of the exchange core: it
// authenticates, negotiates the FHIR version, and turns requests into the
// core's submissions and reads, and their results into answers.
type Gateway struct {
	cfg       Config
	core      *ack.Core
	routes    *router.Table
	software  string
	relay     Relay
	log       *zap.Logger
	now       func() time.Time
	newID     func() string
	version   envelope.Version
	metrics   *metrics
	engine    *gin.Engine
	base      string // public base URL, for Content-Location
	auth      *authenticator
	topology  router.Topology
	ingressUp func() bool
}

// New checks opts and builds the gateway's handler.
func New(opts Options) (*Gateway, error) {
	if opts.Core == nil || opts.Routes == nil || opts.Relay == nil {
		return nil, errors.New("gateway: Core, Routes and Relay are required")
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
		cfg: opts.Config, core: opts.Core, routes: opts.Routes, software: opts.Version, relay: opts.Relay, log: opts.Log, now: opts.Now, newID: opts.NewID, version: v,
		base: opts.Config.PublicBase(), topology: opts.Config.Topology(), ingressUp: opts.IngressReady,
	}
	if g.auth, err = newAuthenticator(opts.Config); err != nil {
		return nil, err
	}
	g.metrics, err = newMetrics(opts.Metrics, opts.Core.Backlog, opts.Relay.Ready)
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
func (g *Gateway) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{Handler: g.engine, ReadHeaderTimeout: 10 * time.Second}
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

// PublicBase is the gateway's FHIR base URL as clients reach it.
func (c Config) PublicBase() string {
	h := c.HTTP
	if h.PublicURL != "" {
		return strings.TrimSuffix(h.PublicURL, "/")
	}
	host := h.Addr
	if strings.HasPrefix(host, ":") {
		host = "localhost" + host
	}
	return "http://" + host + strings.TrimSuffix(h.BasePath, "/")
}
