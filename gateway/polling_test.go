package gateway_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/clock"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/wait"
)

var (
	pollTasks   = flag.Int("polling.tasks", 200, "Tasks the polling test changes")
	pollWriters = flag.Int("polling.writers", 4, "concurrent writers of the polling test")
)

// numberedOrder is the R4 lab order as order n: its own identity, Bundle.id
// and ServiceRequest.
func numberedOrder(t *testing.T, n int) []byte {
	t.Helper()
	b := fixture(t, "r4/lab-order.json")
	suffix := fmt.Sprintf("%012d", n)
	b = bytes.ReplaceAll(b, []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"), []byte("4b0c2d1e-7f6a-4e3b-9c8d-"+suffix))
	b = bytes.Replace(b, []byte("b4a1c2d3-0000-4000-8000-000000000001"), []byte("b4a1c2d3-0000-4000-8000-"+suffix), 1)
	b = bytes.ReplaceAll(b, []byte("d23f0824-128b-2f33-0c5c-7fd0a6a3a450"), []byte("d23f0824-128b-2f33-0c5c-"+suffix))
	return bytes.ReplaceAll(b, []byte("ORD-2026-0001"), []byte("ORD-"+suffix))
}

// page is a searchset as the poller reads it.
type page struct {
	Link []struct{ Relation, URL string }
	// Entry's resources are Tasks.
	Entry []struct {
		Resource struct {
			ID   string
			Meta struct{ VersionID, LastUpdated string }
		}
	}
}

func readPage(t *testing.T, url string) page {
	t.Helper()
	r := gatewaytest.Do(t, http.MethodGet, url, nil, nil)
	var p page
	if err := json.Unmarshal(r.Body, &p); err != nil || r.Status != http.StatusOK {
		t.Fatalf("%s: %d %s", url, r.Status, r.Body)
	}
	return p
}

func (p page) next() string {
	for _, l := range p.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// The spec's polling loop never misses a change: while writers change
// Tasks concurrently, a poller repeating _lastUpdated=gt<greatest
// meta.lastUpdated read> with _count=7 ends with the ledger's view, every
// Task at its last version. Paging with next over a changing result
// returns every Task (none skipped); over a still one, each exactly once.
func TestPollingNeverMissesAChange(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	n := *pollTasks
	orders := make([]*envelope.Message, n)
	parser := envelope.NewParser(envelope.Options{})
	for i := range n {
		body := numberedOrder(t, i)
		if r := s.Post(t, body, "async=true", ""); r.Status != http.StatusAccepted {
			t.Fatalf("order %d: %d %s", i, r.Status, r.Body)
		}
		orders[i], _ = parser.Parse(body, envelope.R4)
	}
	s.Drain(t, "lab", n, 30*time.Second)

	// The poller follows the spec while the writers record two answers for
	// every order.
	seen := map[string]string{} // Task id -> versionId
	var greatest string
	poll := func() int {
		q := "/Task?_count=7"
		if greatest != "" {
			q += "&_lastUpdated=gt" + greatest
		}
		got := 0
		for url := s.Base + q; url != ""; {
			p := readPage(t, url)
			for _, e := range p.Entry {
				seen[e.Resource.ID] = e.Resource.Meta.VersionID
				if e.Resource.Meta.LastUpdated > greatest { // RFC 3339 at µs in UTC sorts as text
					greatest = e.Resource.Meta.LastUpdated
				}
				got++
			}
			url = p.next()
		}
		return got
	}
	var writers sync.WaitGroup
	responder := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}
	for w := range *pollWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for round := range 2 {
				for i := w; i < n; i += *pollWriters {
					code := envelope.ResponseOK
					if round == 1 {
						code = envelope.ResponseTransientError
					}
					ack, _ := responder.Response(orders[i], code, nil)
					if r := s.Post(t, ack, "async=true", ""); r.Status != http.StatusOK {
						t.Errorf("answer %d: %d %s", i, r.Status, r.Body)
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()
	for polling := true; polling; {
		select {
		case <-done:
			polling = false
		default:
			poll()
		}
	}
	poll() // once more after the last write
	final := readPage(t, s.Base+"/Task?_count=1000")
	if len(final.Entry) != n {
		t.Fatalf("the ledger holds %d Tasks, want %d", len(final.Entry), n)
	}
	for _, e := range final.Entry {
		if seen[e.Resource.ID] != e.Resource.Meta.VersionID {
			t.Errorf("Task/%s: the poller ended at version %q, the ledger holds %q", e.Resource.ID, seen[e.Resource.ID], e.Resource.Meta.VersionID)
		}
	}

	// Paging with next over a still result: every Task exactly once.
	count := map[string]int{}
	for url := s.Base + "/Task?_count=7"; url != ""; {
		p := readPage(t, url)
		for _, e := range p.Entry {
			count[e.Resource.ID]++
		}
		url = p.next()
	}
	for id, c := range count {
		if c != 1 {
			t.Errorf("Task/%s came %d times", id, c)
		}
	}
	if len(count) != n {
		t.Errorf("paging found %d Tasks, want %d", len(count), n)
	}
	// Over a changing result: Tasks changed while paging come again later,
	// none is skipped.
	count = map[string]int{}
	pages := 0
	for url := s.Base + "/Task?_count=7"; url != ""; pages++ {
		p := readPage(t, url)
		for _, e := range p.Entry {
			count[e.Resource.ID]++
		}
		if pages == 2 { // change the first Tasks already read
			for i := range 3 {
				ack, _ := responder.Response(orders[i], envelope.ResponseOK, nil)
				s.Post(t, ack, "async=true", "")
			}
		}
		url = p.next()
	}
	if len(count) != n {
		t.Errorf("paging a changing result found %d Tasks, want %d", len(count), n)
	}
}

// An exchange open past the duplicate window is kept: its Task answers and
// a late result still correlates. A closed one goes after the retention.
func TestRetentionKeepsOpenExchangesAndPurgesClosedOnes(t *testing.T) {
	c := clock.New(time.Now())
	cfg := gatewaytest.Config()
	cfg.ReliableCacheMinutes = 1
	cfg.Retention = gateway.Duration(time.Hour)
	s := gatewaytest.Start(t, cfg, gatewaytest.WithClock(c.Now), gatewaytest.WithPurgeInterval(20*time.Millisecond))
	open := s.Post(t, numberedOrder(t, 1), "async=true", "")
	closedBody := numberedOrder(t, 2)
	closed := s.Post(t, closedBody, "async=true", "")
	if open.Status != http.StatusAccepted || closed.Status != http.StatusAccepted {
		t.Fatalf("%d %d", open.Status, closed.Status)
	}
	s.Drain(t, "lab", 2, 10*time.Second)
	parsed, _ := envelope.NewParser(envelope.Options{}).Parse(closedBody, envelope.R4)
	responder := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}
	refusal, _ := responder.Response(parsed, envelope.ResponseFatalError, nil)
	if r := s.Post(t, refusal, "async=true", ""); r.Status != http.StatusOK {
		t.Fatalf("refusal %d", r.Status)
	}
	c.Add(2 * time.Hour) // past the window and the retention
	closedTask := strings.TrimPrefix(closed.Header.Get("Content-Location"), s.Base)
	if !wait.For(10*time.Second, func() bool { return s.Get(t, closedTask, nil).Status == http.StatusNotFound }) {
		t.Error("the closed exchange outlived the retention")
	}
	openTask := strings.TrimPrefix(open.Header.Get("Content-Location"), s.Base)
	if r := s.Get(t, openTask, nil); r.Status != http.StatusOK {
		t.Fatalf("the open exchange after the window: %d", r.Status)
	}
	order, _ := envelope.NewParser(envelope.Options{}).Parse(numberedOrder(t, 1), envelope.R4)
	late, _ := responder.Response(order, envelope.ResponseOK, nil)
	if r := s.Post(t, late, "async=true", ""); r.Status != http.StatusOK {
		t.Errorf("a late result: %d %s", r.Status, r.Body)
	}
	if tv := readTask(t, s, open.Header.Get("Content-Location")); tv.Status != "accepted" || len(tv.Output) != 1 {
		t.Errorf("the open exchange after its late result: %+v", tv)
	}
}
