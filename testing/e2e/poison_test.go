package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/wait"
)

// canonicalEvent is an R5 event routed by its canonical; a message may add
// any |version to it.
const canonicalEvent = "https://fhirgw.example/fhir/EventDefinition/lab-order"

// TestAnUndeliverableMessageIsParkedAtOnce runs the binary with an http
// filler and sends it, in order: an R4 order whose MessageHeader.id holds
// \u0000 (valid JSON, taken by intake, carried by the broker in message_id,
// but no HTTP request can carry it in X-Correlation-ID), the next order,
// and an R5 order whose eventCanonical carries a version too long for the
// AMQP type property. The first is parked at once (dead-letter queue, its
// reason, one attempt, its Task failed) and never reaches the filler; the
// next one reaches it right after, when the first's Task has already
// failed; the R5 one follows.
func TestAnUndeliverableMessageIsParkedAtOnce(t *testing.T) {
	h := newHarness(t)
	poison := strings.Replace(string(message(1)), `"id":"crash-1"`, `"id":"crash-1\u0000poison"`, 1)
	if !strings.Contains(poison, `\u0000`) {
		t.Fatal("the poison message has no \\u0000")
	}
	var mu sync.Mutex
	var events []string // what the filler saw, in order
	var poisonTask string
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		task := poisonTask
		mu.Unlock()
		status, _ := taskStatus(task)
		mu.Lock()
		events = append(events, fmt.Sprintf("filler got %s (the \\u0000 one's Task %s)", r.Header.Get("X-Correlation-ID"), status))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer filler.Close()
	writeConfig(t, h, fmt.Sprintf(`routes:
  - event: %q
    fillers: [lab]
  - event: %q
    fillers: [lab]
fillers:
  - id: lab
    adapter: http
    url: %q
    retry:
      initialBackoff: 1m   # a retry would hold the next message for a minute
      maxBackoff: 1m
`, event, canonicalEvent, filler.URL+"/fhir/$process-message"))
	p := start(t, h.bin, h.config)
	waitReady(t, h.base, p)

	post := func(body, contentType string) string {
		t.Helper()
		resp, err := http.Post(h.base+"/fhir/$process-message?async=true", contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d, want 202", resp.StatusCode)
		}
		return resp.Header.Get("Content-Location") // the Task's absolute URL
	}
	mu.Lock()
	poisonTask = post(poison, "application/fhir+json")
	mu.Unlock()
	post(string(message(2)), "application/fhir+json")
	post(r5Order(canonicalEvent+"|"+strings.Repeat("9", 300)), "application/fhir+json; fhirVersion=5.0")

	wait.Until(t, "the filler to get the two deliverable messages", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 2
	})
	status, business := taskStatus(poisonTask)
	want := []string{"filler got crash-2 (the \\u0000 one's Task failed)", "filler got urn:uuid:5e5e5e5e-0000-4000-8000-00000000e2e5 (the \\u0000 one's Task failed)"}
	mu.Lock()
	got := append([]string(nil), events...)
	mu.Unlock()
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("the filler saw %q, want %q\n%s", got, want, p.log)
	}
	if status != "failed" || !strings.Contains(business, "X-Correlation-ID") {
		t.Errorf("the \\u0000 message's Task is %s (%q), want failed saying why", status, business)
	}

	ch, err := brokertest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	dead, ok, err := ch.Get(h.queue()+".dead", true)
	if err != nil || !ok {
		t.Fatalf("nothing in the dead-letter queue (%v)\n%s", err, p.log)
	}
	reason, _ := dead.Headers[router.HeaderParkReason].(string)
	if dead.MessageId != "crash-1\x00poison" || !strings.Contains(reason, "X-Correlation-ID") || fmt.Sprint(dead.Headers["fhirgw-attempts"]) != "1" {
		t.Errorf("parked: message_id %q, reason %q, attempts %v", dead.MessageId, reason, dead.Headers["fhirgw-attempts"])
	}
	t.Logf("parked at once with %s: %q", router.HeaderParkReason, reason)
	if _, more, _ := ch.Get(h.queue()+".dead", true); more {
		t.Error("more than the one message in the dead-letter queue")
	}
}

// writeConfig rewrites h's configuration with its own addresses, names and
// ledger, authentication off, and rest (routes and fillers).
func writeConfig(t *testing.T, h *harness, rest string) {
	t.Helper()
	cfg := fmt.Sprintf(`http:
  addr: %q
amqp:
  url: %q
  prefix: %q
ledger:
  dsn: %q
auth:
  disabled: true
`, strings.TrimPrefix(h.base, "http://"), brokertest.URL(t), h.prefix, h.dsn) + rest
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// taskStatus reads a Task's status and businessStatus text.
func taskStatus(url string) (status, business string) {
	resp, err := http.Get(url)
	if err != nil {
		return "unreadable: " + err.Error(), ""
	}
	defer resp.Body.Close()
	var task struct {
		Status         string
		BusinessStatus struct{ Text string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&task); err != nil {
		return fmt.Sprintf("unreadable (HTTP %d)", resp.StatusCode), ""
	}
	return task.Status, task.BusinessStatus.Text
}

// r5Order is an R5 lab order with eventCanonical event.
func r5Order(event string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"resourceType":"Bundle","id":"r5-bundle-e2e5","identifier":{"value":"urn:uuid:5e5e5e5e-0000-4000-8000-00000000e2e5"},
"type":"message","timestamp":"2026-11-22T10:00:00Z","entry":[
{"fullUrl":"urn:uuid:00000000-0000-4000-8000-00000000e2e5","resource":{"resourceType":"MessageHeader","id":"r5-header-e2e5",
"eventCanonical":%q,"source":{"endpointUrl":"http://127.0.0.1:1/fhir"},"focus":[{"reference":"urn:uuid:10000000-0000-4000-8000-00000000e2e5"}]}},
{"fullUrl":"urn:uuid:10000000-0000-4000-8000-00000000e2e5","resource":{"resourceType":"ServiceRequest","id":"sr-e2e5","status":"active","intent":"order"}}]}`, event)
	return b.String()
}
