package brokertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Environment variables that steer the harness.
const (
	// EnvURL names an existing broker to use.
	EnvURL = "RABBITMQ_URL"
	// EnvRequire set to 1 turns a missing broker into a failure.
	EnvRequire = "REQUIRE_BROKER"
	// envUnavailable carries, from Main to URL, why there is no broker.
	envUnavailable = "FHIRGW_BROKERTEST_UNAVAILABLE"
)

// startTimeout bounds how long Main waits for a broker, installation included.
const startTimeout = 5 * time.Minute

// Broker is a running broker for tests.
type Broker struct {
	url   string
	close func(context.Context) error
	// env is what Main exports for the tests besides the URL: how to
	// administer the broker.
	env map[string]string
}

// URL is the broker's AMQP URL.
func (b *Broker) URL() string { return b.url }

// Close stops a broker the harness started; it leaves RABBITMQ_URL's alone.
func (b *Broker) Close(ctx context.Context) error {
	if b.close == nil {
		return nil
	}
	return b.close(ctx)
}

// Start finds or starts a broker, in the order of the package documentation,
// reporting progress through logf.
func Start(ctx context.Context, logf func(format string, args ...any)) (*Broker, error) {
	if url := os.Getenv(EnvURL); url != "" {
		if err := ping(ctx, url); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvURL, redact(url), err)
		}
		return &Broker{url: url}, nil
	}
	b, dockerErr := startContainer(ctx, logf)
	if dockerErr == nil {
		return b, nil
	}
	logf("brokertest: no container (%v); starting a private local rabbitmq-server node", dockerErr)
	b, err := startLocalNode(ctx, logf)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("docker: %w", dockerErr), fmt.Errorf("local node: %w", err))
	}
	return b, nil
}

// Main runs a test binary's tests with a broker and exits. Call it from
// TestMain.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	b, err := Start(ctx, logf)
	cancel()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			logf("brokertest: %s=1 and no RabbitMQ broker could be had: %v", EnvRequire, err)
			return 1
		}
		logf("brokertest: no RabbitMQ broker, broker tests skip (set %s=1 to fail instead): %v", EnvRequire, err)
		os.Unsetenv(EnvURL) // a URL that does not answer is no broker
		os.Setenv(envUnavailable, err.Error())
		return m.Run()
	}
	os.Setenv(EnvURL, b.URL())
	for k, v := range b.env {
		os.Setenv(k, v)
	}
	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		logf("brokertest: stopping the broker: %v", err)
	}
	return code
}

// URL returns the broker's AMQP URL, or fails (REQUIRE_BROKER=1) or skips the
// test when Main found none.
func URL(tb testing.TB) string {
	tb.Helper()
	if url := os.Getenv(EnvURL); url != "" {
		return url
	}
	why := os.Getenv(envUnavailable)
	if why == "" {
		why = "brokertest.Main was not called from TestMain"
	}
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("no RabbitMQ broker: %s", why)
	}
	tb.Skipf("no RabbitMQ broker: %s", why)
	return ""
}

// Dial opens a connection to the test broker, closed when the test ends.
func Dial(tb testing.TB) *amqp.Connection {
	tb.Helper()
	conn, err := amqp.DialConfig(URL(tb), amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: amqp.Table{"connection_name": "brokertest " + tb.Name()},
	})
	if err != nil {
		tb.Fatalf("dial the test broker: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Name returns a broker object name unique to the test: its name plus
// suffix and the current time.
func Name(tb testing.TB, suffix string) string {
	n := strings.Trim(unsafeName.ReplaceAllString(tb.Name(), "-"), "-")
	return fmt.Sprintf("test.%s.%s.%d", n, suffix, time.Now().UnixNano())
}

// ping checks that url accepts an AMQP connection.
func ping(ctx context.Context, url string) error {
	deadline, ok := ctx.Deadline()
	timeout := 10 * time.Second
	if ok {
		timeout = time.Until(deadline)
	}
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// redact hides a URL's password for logs.
func redact(url string) string {
	if i, j := strings.Index(url, "://"), strings.LastIndex(url, "@"); i >= 0 && j > i {
		if k := strings.Index(url[i+3:j], ":"); k >= 0 {
			return url[:i+3+k+1] + "***" + url[j:]
		}
	}
	return url
}
