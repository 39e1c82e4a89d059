// Package gatewaytest runs a whole gateway in-process for integration tests:
// a real ledger file, a real broker (testing/brokertest), the relay and the
// HTTP API on a loopback port, with its own RabbitMQ names per test.
// example_test.go is the model integration test to copy.
package gatewaytest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/cmd/stack"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/samplefiller"
	"github.com/fhirgw/fhirgw/testing/wait"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Events of the default test configuration.
const (
	EventLabOrder  = "https://fhirgw.example/fhir/message-events|lab-order"
	EventLabResult = "https://fhirgw.example/fhir/message-events|lab-result"
)

// Config is a test configuration: lab-order to the filler "lab", lab-result
// fanned out to "lab" and "archive", synchronous waits of 5s.
func Config() gateway.Config {
	cfg := gateway.DefaultConfig()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Auth.Disabled = true
	cfg.Fillers = []gateway.FillerConfig{{ID: "lab", Adapter: "amqp"}, {ID: "archive", Adapter: "amqp"}}
	cfg.Routes = []gateway.RouteConfig{
		{Event: EventLabOrder, Fillers: []string{"lab"}, SyncTimeout: gateway.Duration(5 * time.Second)},
		{Event: EventLabResult, Fillers: []string{"lab", "archive"}, SyncTimeout: gateway.Duration(5 * time.Second)},
	}
	cfg.Callbacks.Allow = []string{"http://127.0.0.1"}
	return cfg
}

// Option changes how Start builds the gateway.
type Option func(*options)

type options struct {
	now           func() time.Time
	purgeInterval time.Duration
}

// WithClock gives the gateway and its ledger the clock now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithPurgeInterval purges the duplicate cache every d.
func WithPurgeInterval(d time.Duration) Option { return func(o *options) { o.purgeInterval = d } }

// Stack is a running gateway.
type Stack struct {
	// Base is the FHIR base URL, e.g. http://127.0.0.1:41234/fhir.
	Base     string
	Config   gateway.Config
	Ledger   *ledger.SQLite
	Relay    *router.Relay
	Topology router.Topology
	Gateway  *gateway.Gateway
	// APIKey, when set, is sent as X-API-Key by PostMessage, ReadTask and
	// AwaitTask, for a configuration with authentication on.
	APIKey string
}

// Start runs a gateway with cfg until the test ends. An empty cfg.AMQP.URL
// (or the default) means the test broker; the ledger lives in t.TempDir().
func Start(t testing.TB, cfg gateway.Config, opts ...Option) *Stack {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.AMQP.URL == "" || cfg.AMQP.URL == gateway.DefaultConfig().AMQP.URL {
		cfg.AMQP.URL = brokertest.URL(t)
	}
	cfg.Ledger.DSN = filepath.Join(t.TempDir(), "fhirgw.db")
	if def := gateway.DefaultConfig().Callbacks.Retry; cfg.Callbacks.Retry == def {
		// Answers to placers are retried quickly, unless the test says how.
		cfg.Callbacks.Retry.InitialBackoff = gateway.Duration(50 * time.Millisecond)
		cfg.Callbacks.Retry.MaxBackoff = gateway.Duration(time.Second)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	cfg.AMQP.Prefix = brokertest.Name(t, "gw")
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.PublicURL = "http://" + ln.Addr().String() + cfg.HTTP.BasePath
	st, err := stack.New(context.Background(), stack.Options{Config: cfg, Log: log, Version: "test", Listener: ln, Now: o.now,
		Grace: 5 * time.Second, PurgeInterval: o.purgeInterval, SweepInterval: 50 * time.Millisecond, RelayPoll: 100 * time.Millisecond,
		PushPoll: 50 * time.Millisecond})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	topo := cfg.Topology()
	s := &Stack{Base: cfg.HTTP.PublicURL, Config: cfg, Ledger: st.Ledger, Relay: st.Relay, Topology: topo, Gateway: st.Gateway}
	t.Cleanup(func() {
		// A connection the client dialed but never used (two requests raced
		// for one idle connection) is a new connection to the server, and
		// Shutdown waits 5s for it: close such connections first.
		http.DefaultClient.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the gateway stopped with: %v", err)
		}
		deleteTopology(t, topo)
	})
	if !wait.For(30*time.Second, st.Ready) {
		t.Fatal("the gateway's relay did not connect to the broker")
	}
	return s
}

// Response is an HTTP answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Post sends body to $process-message with query (e.g. "async=true") and
// contentType (empty: FHIR JSON without a version).
func (s *Stack) Post(t testing.TB, body []byte, query, contentType string) Response {
	t.Helper()
	url := s.Base + "/$process-message"
	if query != "" {
		url += "?" + query
	}
	if contentType == "" {
		contentType = "application/fhir+json"
	}
	return Do(t, http.MethodPost, url, body, http.Header{"Content-Type": {contentType}})
}

// Get reads path under the FHIR base.
func (s *Stack) Get(t testing.TB, path string, header http.Header) Response {
	t.Helper()
	return Do(t, http.MethodGet, s.Base+path, nil, header)
}

// Do performs one HTTP request.
func Do(t testing.TB, method, url string, body []byte, header http.Header) Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// StartFiller runs a sample filler on a filler's queue until the test ends.
func (s *Stack) StartFiller(t testing.TB, filler string, code envelope.ResponseCode) *samplefiller.Filler {
	t.Helper()
	return s.RunFiller(t, samplefiller.Config{Queue: s.Topology.FillerQueue(filler), Code: code})
}

// StartScriptedFiller runs a sample filler on a filler's queue that runs
// steps for every message (see samplefiller.Step), until the test ends.
func (s *Stack) StartScriptedFiller(t testing.TB, filler string, steps ...samplefiller.Step) *samplefiller.Filler {
	t.Helper()
	if steps == nil {
		steps = []samplefiller.Step{}
	}
	return s.RunFiller(t, samplefiller.Config{Queue: s.Topology.FillerQueue(filler), Steps: steps})
}

// RunFiller runs a sample filler configured by cfg until the test ends;
// AMQPURL and GatewayURL default to the stack's.
func (s *Stack) RunFiller(t testing.TB, cfg samplefiller.Config) *samplefiller.Filler {
	t.Helper()
	if cfg.AMQPURL == "" {
		cfg.AMQPURL = s.Config.AMQP.URL
	}
	if cfg.GatewayURL == "" {
		cfg.GatewayURL = s.Base
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	f := samplefiller.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := f.Run(ctx); err != nil {
			t.Errorf("sample filler on %s: %v", cfg.Queue, err)
		}
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done; cfg.Client.CloseIdleConnections() })
	return f
}

// Drain takes every message now in a filler's queue, waiting up to wait for
// at least want of them.
func (s *Stack) Drain(t testing.TB, filler string, want int, wait time.Duration) []amqp.Delivery {
	t.Helper()
	return drain(t, s.Topology.FillerQueue(filler), want, wait)
}

// DrainDead takes every message now in a filler's dead queue (what the
// filler rejected, e.g. with samplefiller.Fail), waiting up to wait for at
// least want of them.
func (s *Stack) DrainDead(t testing.TB, filler string, want int, wait time.Duration) []amqp.Delivery {
	t.Helper()
	return drain(t, s.Topology.DeadQueue(filler), want, wait)
}

func drain(t testing.TB, queue string, want int, wait time.Duration) []amqp.Delivery {
	t.Helper()
	ch, err := brokertest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	var out []amqp.Delivery
	deadline := time.Now().Add(wait)
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, d)
			continue
		}
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func deleteTopology(t testing.TB, topo router.Topology) {
	conn, err := amqp.Dial(brokertest.URL(t))
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	if err := topo.Delete(ch); err != nil {
		t.Log(err)
	}
}
