package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
)

// roundTripRate is the offered load of BenchmarkRoundTrip, in messages per
// second.
const roundTripRate = 500

// BenchmarkRoundTrip offers lab orders at 500 messages/s to the fhirgw
// binary (async, with a response-url) and measures, for each, the time from
// the placer's POST to the filler's acknowledgement arriving back at the
// placer's endpoint: placer -> gateway -> broker -> http adapter -> filler
// (answers ok in the HTTP answer) -> gateway -> callback to the placer.
func BenchmarkRoundTrip(b *testing.B) {
	parser := envelope.NewParser(envelope.Options{})
	responder := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := parser.Parse(body, envelope.R4)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		resp, _ := responder.Response(req, envelope.ResponseOK, nil)
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write(resp)
	}))
	defer filler.Close()

	var mu sync.Mutex
	sent := make(map[string]time.Time, b.N)
	var latencies []time.Duration
	done := make(chan struct{}, b.N)
	placer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		at := time.Now()
		w.WriteHeader(http.StatusAccepted)
		msg, err := parser.Parse(body, envelope.R4)
		if err != nil || msg.Header.Response == nil {
			return
		}
		mu.Lock()
		if t0, ok := sent[msg.Header.Response.Identifier.Value]; ok {
			latencies = append(latencies, at.Sub(t0))
			delete(sent, msg.Header.Response.Identifier.Value)
			done <- struct{}{}
		}
		mu.Unlock()
	}))
	defer placer.Close()

	h := newHarness(b)
	config, err := os.ReadFile(h.config)
	if err != nil {
		b.Fatal(err)
	}
	config = bytes.Replace(config, []byte("    adapter: amqp\n"), []byte(fmt.Sprintf("    adapter: http\n    url: %q\n    concurrency: 32\n", filler.URL)), 1)
	config = append(config, []byte(fmt.Sprintf("callbacks:\n  allow: [%q]\n", placer.URL))...)
	config = bytes.Replace(config, []byte("ledger:\n"), []byte("outbox:\n  maxBacklog: 100000\nledger:\n"), 1)
	if err := os.WriteFile(h.config, config, 0o600); err != nil {
		b.Fatal(err)
	}
	p := start(b, h.bin, h.config)
	waitReady(b, h.base, p)

	target := h.base + "/fhir/$process-message?async=true&response-url=" + url.QueryEscape(placer.URL+"/fhir/$process-message")
	offset := int(time.Now().UnixNano() % 1e9)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = message4KB(offset*1000 + i)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	interval := time.Second / roundTripRate
	b.ResetTimer()
	start := time.Now()
	var posts sync.WaitGroup
	for i := range b.N {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval))) // open loop: the schedule, not the answers, sets the pace
		id := fmt.Sprintf("bench-%d", offset*1000+i)
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		posts.Add(1)
		go func() {
			defer posts.Done()
			resp, err := client.Post(target, "application/fhir+json", bytes.NewReader(bodies[i]))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	offered := time.Since(start)
	posts.Wait()
	timeout := time.After(2 * time.Minute)
	for range b.N {
		select {
		case <-done:
		case <-timeout:
			mu.Lock()
			b.Fatalf("%d of %d acknowledgements reached the placer", len(latencies), b.N)
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/offered.Seconds(), "offered-msgs/s")
	b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
	b.ReportMetric(ms(latencies[min(len(latencies)-1, len(latencies)*99/100)]), "p99-ms")
}
