package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/testing/brokertest"
)

func message(n int) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":"crash-bundle-%d","type":"message","timestamp":"2026-11-22T10:00:00Z","entry":[
{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"MessageHeader","id":"crash-%d",
"eventCoding":{"system":"https://fhirgw.example/fhir/message-events","code":"lab-order"},
"source":{"endpoint":"http://127.0.0.1:1/fhir"},"focus":[{"reference":"urn:uuid:10000000-0000-4000-8000-%012d"}]}},
{"fullUrl":"urn:uuid:10000000-0000-4000-8000-%012d","resource":{"resourceType":"ServiceRequest","id":"sr-%d","status":"active","intent":"order"}}]}`,
		n, n, n, n, n, n))
}

func TestEveryAcceptedMessageSurvivesSIGKILL(t *testing.T) {
	h := newHarness(t)
	base, bin, config, prefix := h.base, h.bin, h.config, h.prefix
	first := start(t, bin, config)
	waitReady(t, base, first)

	// Four clients POST distinct messages until the gateway dies under them.
	var mu sync.Mutex
	accepted := map[string]bool{}
	sent := 0
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i += 4 {
				resp, err := client.Post(base+"/fhir/$process-message?async=true", "application/fhir+json", bytes.NewReader(message(i)))
				mu.Lock()
				sent++
				if err == nil && resp.StatusCode == http.StatusAccepted {
					accepted[fmt.Sprintf("crash-%d", i)] = true
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	time.Sleep(200 * time.Millisecond) // clients see the dead gateway
	stop()
	wg.Wait()
	mu.Lock()
	acceptedBeforeKill := len(accepted)
	mu.Unlock()
	if acceptedBeforeKill == 0 {
		t.Fatalf("no message was accepted before the kill\n%s", first.log)
	}

	second := start(t, bin, config)
	waitReady(t, base, second)
	queue := prefix + ".filler.lab"
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	inQueue := map[string]bool{}
	copies := 0
	deadline = time.Now().Add(60 * time.Second)
	for len(missing(accepted, inQueue)) > 0 && time.Now().Before(deadline) {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		copies++
		inQueue[d.MessageId] = true
	}
	if m := missing(accepted, inQueue); len(m) > 0 {
		t.Fatalf("%d of %d messages answered 202 are missing from the queue after the restart (e.g. %s)\n%s", len(m), acceptedBeforeKill, m[0], second.log)
	}
	t.Logf("crash: %d POSTs sent, %d answered 202 before SIGKILL; after restart all %d are in the queue (%d copies read, duplicates allowed: at-least-once)",
		sent, acceptedBeforeKill, acceptedBeforeKill, copies)

	// The restarted gateway shuts down cleanly on SIGTERM.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.exited:
		if second.err != nil {
			t.Errorf("graceful shutdown exited with %v\n%s", second.err, second.log)
		}
	case <-time.After(30 * time.Second):
		t.Error("the gateway did not stop on SIGTERM")
	}
}

func missing(want, got map[string]bool) []string {
	var out []string
	for id := range want {
		if !got[id] {
			out = append(out, id)
		}
	}
	return out
}
