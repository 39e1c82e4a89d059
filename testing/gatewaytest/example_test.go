// Package gatewaytest_test is the model integration test to copy: a real
// broker (brokertest.Main), a whole gateway in-process (gatewaytest.Start),
// a sample filler answering as scripted (samplefiller steps), and an order
// POSTed over HTTP whose Task is awaited. Run it with
//
//	REQUIRE_BROKER=1 go test -race ./testing/gatewaytest/
package gatewaytest_test

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	sf "github.com/fhirgw/fhirgw/testing/samplefiller"
	"github.com/fhirgw/fhirgw/testing/wait"
)

// TestMain finds or starts a RabbitMQ broker once for the package's tests.
func TestMain(m *testing.M) { brokertest.Main(m) }

func order(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../fixtures/r4/lab-order.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The lab acknowledges the order, then reports it in progress and
// completed: the Task completes with the lab's three answers.
func TestKitOrderCompletes(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	s.StartScriptedFiller(t, "lab",
		sf.Respond(envelope.ResponseOK),
		sf.Progress("in-progress", "specimen received"),
		sf.Progress("completed", "results final"))

	_, task := s.PostMessage(t, order(t), true)

	got := s.AwaitTask(t, task, "completed", 10*time.Second)
	if got.BusinessStatus.Text != "results final" ||
		!slices.Equal(got.OutputTypes(), []string{"response ok", "progress", "progress"}) {
		t.Errorf("%v, want results final after an ok response and two progress messages", got)
	}
}

// The lab refuses the order with a fatal-error response: a synchronous
// POST gets that response, and the Task is rejected.
func TestKitFatalErrorRejects(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	s.StartScriptedFiller(t, "lab", sf.Respond(envelope.ResponseFatalError))

	r, task := s.PostMessage(t, order(t), false)

	resp, err := envelope.NewParser(envelope.Options{}).Parse(r.Body, envelope.R4)
	if r.Status != http.StatusOK || err != nil || !resp.IsResponse() || resp.Header.Response.Code != envelope.ResponseFatalError {
		t.Fatalf("want the lab's fatal-error response, got %d (%v): %s", r.Status, err, r.Body)
	}
	got := s.AwaitTask(t, task, "rejected", 10*time.Second)
	if !slices.Equal(got.OutputTypes(), []string{"response fatal-error"}) {
		t.Errorf("%v, want one fatal-error response", got)
	}
}

// The lab takes its time: a synchronous POST waits for the response.
func TestKitSlowFiller(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	s.StartScriptedFiller(t, "lab", sf.Wait(500*time.Millisecond), sf.Respond(envelope.ResponseOK))

	start := time.Now()
	r, task := s.PostMessage(t, order(t), false)

	if r.Status != http.StatusOK || time.Since(start) < 500*time.Millisecond {
		t.Errorf("status %d after %v, want the lab's response after its 500ms wait", r.Status, time.Since(start))
	}
	s.AwaitTask(t, task, "accepted", 10*time.Second)
}

// The lab fails to process the order: the broker dead-letters it, and with
// an acknowledgement deadline on the route the gateway fails the Task and
// answers the placer with a transient-error response of its own.
func TestKitFillerFailure(t *testing.T) {
	cfg := gatewaytest.Config()
	cfg.Routes[0].AckDeadline = gateway.Duration(time.Second) // lab-order
	s := gatewaytest.Start(t, cfg)
	lab := s.StartScriptedFiller(t, "lab", sf.Fail())

	_, task := s.PostMessage(t, order(t), true)

	if dead := s.DrainDead(t, "lab", 1, 10*time.Second); len(dead) != 1 {
		t.Fatalf("%d messages in the lab's dead queue, want the order", len(dead))
	}
	got := s.AwaitTask(t, task, "failed", 10*time.Second)
	if lab.Received() != 1 || lab.Answered() != 0 {
		t.Errorf("the lab received %d messages and answered %d, want 1 and 0", lab.Received(), lab.Answered())
	}
	if !strings.HasPrefix(got.BusinessStatus.Text, "acknowledgement overdue") {
		t.Errorf("%v, want the acknowledgement overdue", got)
	}
	wait.Until(t, "the gateway's transient-error response in the Task", 10*time.Second, func() bool {
		return slices.Equal(s.ReadTask(t, task).OutputTypes(), []string{"response transient-error"})
	})
}
