package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

func TestMain(m *testing.M) { brokertest.Main(m) }

const event = "https://fhirgw.example/fhir/message-events|lab-order"

// harness is a built fhirgw binary with a configuration of its own: a free
// loopback port, a ledger in a temp dir, its own RabbitMQ names (deleted at
// the end), lab-order routed to the filler "lab".
type harness struct {
	bin, config, base, prefix string
	// dsn is the SQLite ledger file.
	dsn string
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessAt(t, brokertest.URL(t))
}

// newHarnessAt is newHarness with the broker at url.
func newHarnessAt(t testing.TB, url string) *harness {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := &harness{bin: buildBinary(t, dir), config: filepath.Join(dir, "fhirgw.yaml"), base: "http://" + addr, prefix: brokertest.Name(t, "e2e"),
		dsn: filepath.Join(dir, "data", "fhirgw.db")}
	if err := os.WriteFile(h.config, []byte(fmt.Sprintf(`http:
  addr: %q
amqp:
  url: %q
  prefix: %q
ledger:
  dsn: %q
auth:
  disabled: true
routes:
  - event: %q
    fillers: [lab]
fillers:
  - id: lab
    adapter: amqp
`, addr, url, h.prefix, h.dsn, event)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err == nil {
			cleanup(conn, h.prefix)
			conn.Close()
		}
	})
	return h
}

// queue is the lab filler's queue.
func (h *harness) queue() string { return h.prefix + ".filler.lab" }

// buildBinary compiles cmd/fhirgw into dir.
func buildBinary(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "fhirgw")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/fhirgw")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type gatewayProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
	log    *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the process's writes and our reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t testing.TB, bin, config string) *gatewayProcess {
	t.Helper()
	return startLogging(t, bin, config, "warn")
}

// startLogging is start with the gateway logging at level.
func startLogging(t testing.TB, bin, config, level string) *gatewayProcess {
	t.Helper()
	log := &syncBuffer{}
	args := []string{"--log-level", level, "serve", "--config", config}
	if prof := os.Getenv("E2E_CPUPROFILE"); prof != "" {
		args = append(args, "--cpuprofile", prof)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "RABBITMQ_URL=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gatewayProcess{cmd: cmd, exited: make(chan struct{}), log: log}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		// Stop gracefully (a CPU profile is written at exit), then for good.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func waitReady(t testing.TB, base string, p *gatewayProcess) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			t.Fatalf("the gateway exited: %v\n%s", p.err, p.log)
		default:
		}
		if r, err := http.Get(base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the gateway did not become ready\n%s", p.log)
}

func cleanup(conn *amqp.Connection, prefix string) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	_ = router.Topology{Prefix: prefix, Fillers: []string{"lab"}}.Delete(ch)
}
