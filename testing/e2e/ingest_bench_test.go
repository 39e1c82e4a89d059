package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/testing/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

// concurrency is how many publishers (baseline) or HTTP clients (gateway)
// run at once.
const concurrency = 64

// message4KB is a lab order of about 4 KB with identity n.
func message4KB(n int) []byte {
	head := fmt.Sprintf(`{"resourceType":"Bundle","id":"bench-bundle-%d","type":"message","timestamp":"2026-11-22T10:00:00Z","entry":[
{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"MessageHeader","id":"bench-%d",
"eventCoding":{"system":"https://fhirgw.example/fhir/message-events","code":"lab-order"},
"destination":[{"name":"lab","endpoint":"https://lab.example/fhir"}],
"source":{"name":"ehr","software":"bench","endpoint":"https://ehr.example/fhir"},"focus":[{"reference":"urn:uuid:10000000-0000-4000-8000-%012d"}]}},
{"fullUrl":"urn:uuid:20000000-0000-4000-8000-%012d","resource":{"resourceType":"Patient","id":"pat-%d","name":[{"family":"Benchmark","given":["Pat"]}],"birthDate":"1970-01-01"}},
{"fullUrl":"urn:uuid:10000000-0000-4000-8000-%012d","resource":{"resourceType":"ServiceRequest","id":"sr-%d","status":"active","intent":"order",
"code":{"coding":[{"system":"http://loinc.org","code":"58410-2","display":"CBC panel - Blood by Automated count"}]},
"subject":{"reference":"urn:uuid:20000000-0000-4000-8000-%012d"},"note":[{"text":"`, n, n, n, n, n, n, n, n, n)
	tail := `"}]}}]}`
	pad := max(0, 4096-len(head)-len(tail))
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// BenchmarkIngest measures, in one run, the broker baseline (amqp091-go
// publishing the same 4 KB bytes with confirms from 64 concurrent publishers
// to a quorum queue) and the gateway's ingest (64 concurrent HTTP clients
// POSTing async 4 KB messages to the fhirgw binary, until all are in the
// filler queue), with the 202 latencies and the gateway's peak RSS.
// `make bench` prints the throughput ratio.
func BenchmarkIngest(b *testing.B) {
	b.Run("baseline-amqp-publish", benchBrokerBaseline)
	b.Run("gateway-async-post", benchGatewayIngest)
}

func benchBrokerBaseline(b *testing.B) {
	conn := brokertest.Dial(b)
	setup, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	queue := brokertest.Name(b, "baseline")
	if _, err := setup.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = setup.QueueDelete(queue, false, false, false) }()
	body := message4KB(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, err := conn.Channel()
			if err != nil {
				errs <- err
				return
			}
			defer ch.Close()
			if err := ch.Confirm(false); err != nil {
				errs <- err
				return
			}
			ctx := context.Background()
			for next.Add(1) <= int64(b.N) {
				c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false,
					amqp.Publishing{ContentType: "application/fhir+json", DeliveryMode: amqp.Persistent, Body: body})
				if err != nil {
					errs <- err
					return
				}
				if ok, err := c.WaitContext(ctx); err != nil || !ok {
					errs <- fmt.Errorf("confirm: ack=%v err=%v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

func benchGatewayIngest(b *testing.B) {
	h := newHarness(b)
	p := start(b, h.bin, h.config)
	waitReady(b, h.base, p)
	ch, err := brokertest.Dial(b).Channel()
	if err != nil {
		b.Fatal(err)
	}
	// A distinct identity per message (a run reuses none: duplicates would
	// be answered from the ledger and never queued).
	offset := int(time.Now().UnixNano() % 1e9)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = message4KB(offset*1000 + i)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	url := h.base + "/fhir/$process-message?async=true"
	latencies := make([][]time.Duration, concurrency)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	b.SetBytes(int64(len(bodies[0])))
	b.ResetTimer()
	start := time.Now()
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/fhir+json", bytes.NewReader(bodies[i]))
				if err != nil {
					errs <- err
					return
				}
				_, _ = bytes.NewBuffer(nil).ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("message %d: status %d", i, resp.StatusCode)
					return
				}
				latencies[w] = append(latencies[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// Done when every message is in the filler queue.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		q, err := ch.QueueDeclarePassive(h.queue(), true, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		if q.Messages >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages reached the queue", q.Messages, b.N)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
	b.ReportMetric(ms(all[min(len(all)-1, len(all)*99/100)]), "p99-ms")
	if rss, err := peakRSS(p.cmd.Process.Pid); err == nil {
		b.ReportMetric(rss, "peak-RSS-MB")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// peakRSS reads a process's peak resident set size (VmHWM) in MB.
func peakRSS(pid int) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				return 0, err
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
