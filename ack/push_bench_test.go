package ack

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/testing/ledgertest"
	"github.com/fhirgw/fhirgw/testing/wait"
	"go.uber.org/zap"
)

// BenchmarkPushHealthyPlacer measures how long a healthy placer waits for
// an answer: from the moment the answer is recorded in the ledger to the
// moment the placer's endpoint has it, one answer (of its own exchange) at
// a time. alone: nothing else is owed. with-hanging-placer: 16 answers to
// a placer that never responds are outstanding all along. ns/op includes
// recording the answer; ns/answer, p50-ns/answer and p99-ns/answer are
// the push alone. The two should be close: the hanging placer holds only
// its own lane.
func BenchmarkPushHealthyPlacer(b *testing.B) {
	for _, bc := range []struct {
		name    string
		hanging int
	}{{"alone", 0}, {"with-hanging-placer", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			l := ledgertest.Open(b)
			got := make(chan struct{}, 16)
			healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusAccepted)
				select {
				case got <- struct{}{}:
				default:
				}
			}))
			b.Cleanup(healthy.Close)
			var hang *hanging
			if bc.hanging > 0 {
				h := &hanging{release: make(chan struct{})}
				srv := httptest.NewServer(h)
				b.Cleanup(srv.Close)
				b.Cleanup(func() { close(h.release) })
				for i := range bc.hanging {
					task := fmt.Sprintf("hang-%d", i)
					accept(b, l, task, srv.URL+"/fhir/$process-message")
					respond(b, l, task, 0)
				}
				hang = h
			}
			for i := range b.N {
				accept(b, l, fmt.Sprintf("healthy-%d", i), healthy.URL+"/fhir/$process-message")
			}
			p := startPusher(b, l, PusherConfig{Log: zap.NewNop(), Poll: 500 * time.Millisecond, PerOrigin: 2})
			if hang != nil && !wait.For(10*time.Second, func() bool { return hang.entered.Load() == 2 }) {
				b.Fatal("the hanging placer did not get its lane's two calls")
			}
			latencies := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				respond(b, l, fmt.Sprintf("healthy-%d", i), 0)
				start := time.Now()
				p.Notify()
				select {
				case <-got:
				case <-time.After(30 * time.Second):
					b.Fatalf("answer %d not delivered in 30s", i)
				}
				latencies = append(latencies, time.Since(start))
			}
			b.StopTimer()
			if hang != nil && (hang.inFlight() != 2 || hang.left.Load() != 0) {
				b.Errorf("the hanging placer has %d calls in flight and answered %d; want 2 and 0", hang.inFlight(), hang.left.Load())
			}
			var sum time.Duration
			for _, d := range latencies {
				sum += d
			}
			slices.Sort(latencies)
			b.ReportMetric(float64(sum.Nanoseconds())/float64(len(latencies)), "ns/answer")
			b.ReportMetric(float64(latencies[len(latencies)/2].Nanoseconds()), "p50-ns/answer")
			b.ReportMetric(float64(latencies[min(len(latencies)-1, len(latencies)*99/100)].Nanoseconds()), "p99-ns/answer")
		})
	}
}
