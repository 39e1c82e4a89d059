package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/testing/brokertest"
)

// Small by default so that `make test` stays fast; raise them to measure
// (go test ./testing/e2e/ -run CleanStop -drain.stops=10 -drain.accepted=2000).
var (
	drainStops    = flag.Int("drain.stops", 3, "TestACleanStopPublishesTheWholeOutbox: how many times the gateway is stopped under load")
	drainClients  = flag.Int("drain.clients", 16, "TestACleanStopPublishesTheWholeOutbox: concurrent HTTP clients")
	drainAccepted = flag.Int("drain.accepted", 300, "TestACleanStopPublishesTheWholeOutbox: 202s before each SIGTERM")
)

// TestACleanStopPublishesTheWholeOutbox SIGTERMs the gateway while
// concurrent clients POST messages, several times over one ledger, and after
// each exit checks, with the gateway gone, that the outbox in the ledger
// file is empty and that every message answered 202 is already in the
// filler queue: a clean stop publishes what it accepted before it exits, so
// a node that never restarts loses nothing.
func TestACleanStopPublishesTheWholeOutbox(t *testing.T) {
	h := newHarness(t)
	ch, err := brokertest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for stop := range *drainStops {
		p := startLogging(t, h.bin, h.config, "info")
		waitReady(t, h.base, p)

		var mu sync.Mutex
		accepted := map[string]bool{}
		ctx, quit := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for c := range *drainClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; ctx.Err() == nil; i += *drainClients {
					n := stop*10_000_000 + i
					resp, err := client.Post(h.base+"/fhir/$process-message?async=true", "application/fhir+json", bytes.NewReader(message(n)))
					if err != nil {
						time.Sleep(10 * time.Millisecond) // the gateway has stopped listening
						continue
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						mu.Lock()
						accepted[fmt.Sprintf("crash-%d", n)] = true
						mu.Unlock()
					}
				}
			}()
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(accepted)
			mu.Unlock()
			if n >= *drainAccepted || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.exited:
		case <-time.After(60 * time.Second):
			t.Fatalf("stop %d: the gateway did not exit within 60s of SIGTERM\n%s", stop, shutdownLog(p.log.String()))
		}
		quit()
		wg.Wait()
		if p.err != nil {
			t.Fatalf("stop %d: the gateway exited with %v\n%s", stop, p.err, shutdownLog(p.log.String()))
		}
		if len(accepted) == 0 {
			t.Fatalf("stop %d: no message was accepted\n%s", stop, p.log)
		}

		// The gateway is gone: what the ledger and the queue hold now is all
		// there is.
		led, err := ledger.OpenSQLite(context.Background(), h.dsn, ledger.Options{})
		if err != nil {
			t.Fatal(err)
		}
		left := led.Backlog()
		if err := led.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		inQueue := map[string]bool{}
		for {
			d, ok, err := ch.Get(h.queue(), true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			inQueue[d.MessageId] = true
		}
		lost := missing(accepted, inQueue)
		drained := logged(p.log.String(), "outbox drained")
		t.Logf("stop %d: %d answered 202; the drain after intake stopped found %v in the outbox and took %vs; after exit %d left in the outbox, %d not in the queue",
			stop, len(accepted), drained["held"], drained["took"], left, len(lost))
		if left != 0 || len(lost) != 0 {
			t.Fatalf("stop %d: after a clean stop %d publishes are left in the outbox and %d of %d messages answered 202 are not in the filler queue\n%s",
				stop, left, len(lost), len(accepted), shutdownLog(p.log.String()))
		}
	}
}

// shutdownLog is the gateway's log without its lines about single messages.
func shutdownLog(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `"taskId"`) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// logged returns the fields of the first JSON log line whose message is msg
// (nil when there is none).
func logged(log, msg string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			return line
		}
	}
	return nil
}
