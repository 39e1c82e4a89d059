package samplefiller_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	sf "github.com/fhirgw/fhirgw/testing/samplefiller"
	"github.com/fhirgw/fhirgw/testing/wait"
)

func TestMain(m *testing.M) { brokertest.Main(m) }

// The order fixture's identities: MessageHeader.id, and the Bundle.id an R4
// message may not reuse with another MessageHeader.id.
const (
	orderID  = "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"
	bundleID = "b4a1c2d3-0000-4000-8000-000000000001"
)

// order is the R4 lab order with its identities ending in n.
func order(t *testing.T, n int) []byte {
	t.Helper()
	b, err := os.ReadFile("../fixtures/r4/lab-order.json")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, orderID) || !strings.Contains(s, bundleID) {
		t.Fatal("the fixture's identities changed; fix the test")
	}
	s = strings.ReplaceAll(s, orderID, identity(n))
	s = strings.ReplaceAll(s, bundleID, bundleID[:len(bundleID)-1]+string(rune('0'+n)))
	return []byte(s)
}

func identity(n int) string { return orderID[:len(orderID)-1] + string(rune('0'+n)) }

// Without a script the filler follows Code, Progress and Silent as before.
func TestWithoutAScriptTheFieldsDecide(t *testing.T) {
	cases := []struct {
		name    string
		cfg     sf.Config
		status  string
		outputs []string
	}{
		{"ok", sf.Config{}, "accepted", []string{"response ok"}},
		{"fatal-error", sf.Config{Code: envelope.ResponseFatalError}, "rejected", []string{"response fatal-error"}},
		{"ok with progress", sf.Config{Progress: true}, "completed", []string{"response ok", "progress", "progress"}},
		{"fatal-error with progress", sf.Config{Code: envelope.ResponseFatalError, Progress: true}, "rejected", []string{"response fatal-error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := gatewaytest.Start(t, gatewaytest.Config())
			tc.cfg.Queue = s.Topology.FillerQueue("lab")
			filler := s.RunFiller(t, tc.cfg)
			_, task := s.PostMessage(t, order(t, 1), true)
			got := s.AwaitTask(t, task, tc.status, 10*time.Second)
			if !slices.Equal(got.OutputTypes(), tc.outputs) {
				t.Errorf("%v, want outputs %v", got, tc.outputs)
			}
			// The filler counts an answer once the gateway's 2xx is back.
			wait.Until(t, "the filler to count its answer", 10*time.Second, func() bool { return filler.Answered() == 1 })
			if filler.Refused() != 0 {
				t.Errorf("refused %d", filler.Refused())
			}
		})
	}
}

// A silent filler takes the message and answers nothing: the Task stays
// requested, nothing is dead-lettered.
func TestSilentAndEmptyScriptsAnswerNothing(t *testing.T) {
	for name, cfg := range map[string]sf.Config{"silent": {Silent: true}, "empty script": {Steps: []sf.Step{}}} {
		t.Run(name, func(t *testing.T) {
			s := gatewaytest.Start(t, gatewaytest.Config())
			cfg.Queue = s.Topology.FillerQueue("lab")
			filler := s.RunFiller(t, cfg)
			_, task := s.PostMessage(t, order(t, 1), true)
			wait.Until(t, "the filler to take the order", 10*time.Second, func() bool { return filler.Received() == 1 })
			if dead := s.DrainDead(t, "lab", 0, 200*time.Millisecond); len(dead) != 0 {
				t.Errorf("%d dead-lettered", len(dead))
			}
			if got := s.ReadTask(t, task); got.Status != "requested" || len(got.Output) != 0 {
				t.Errorf("%v, want requested with no answer", got)
			}
		})
	}
}

// A transient-error response is recorded but leaves the Task's status.
func TestTransientErrorLeavesTheStatus(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	filler := s.StartScriptedFiller(t, "lab", sf.Respond(envelope.ResponseTransientError))
	_, task := s.PostMessage(t, order(t, 1), true)
	var got gatewaytest.Task
	// Wait on businessStatus, not output: GET Task reads the status before
	// the outputs, so an output can show before its status.
	wait.Until(t, "the transient-error response in the Task", 10*time.Second, func() bool {
		got = s.ReadTask(t, task)
		return got.BusinessStatus.Text == "response transient-error"
	})
	if got.Status != "requested" || got.BusinessStatus.Text != "response transient-error" ||
		!slices.Equal(got.OutputTypes(), []string{"response transient-error"}) {
		t.Errorf("%v, want requested with the transient-error response", got)
	}
	wait.Until(t, "the filler to count its answer", 10*time.Second, func() bool { return filler.Answered() == 1 })
}

// Script decides per message; Messages lists what the filler took.
func TestScriptPerMessage(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	filler := s.RunFiller(t, sf.Config{Queue: s.Topology.FillerQueue("lab"), Script: func(req *envelope.Message) []sf.Step {
		if req.Identity.Value == identity(2) {
			return []sf.Step{sf.Respond(envelope.ResponseFatalError)}
		}
		return []sf.Step{sf.Respond(envelope.ResponseOK)}
	}})
	_, first := s.PostMessage(t, order(t, 1), true)
	_, second := s.PostMessage(t, order(t, 2), true)
	s.AwaitTask(t, first, "accepted", 10*time.Second)
	s.AwaitTask(t, second, "rejected", 10*time.Second)
	got := filler.Messages()
	slices.Sort(got)
	if want := []string{identity(1), identity(2)}; !slices.Equal(got, want) {
		t.Errorf("the filler took %v, want %v", got, want)
	}
}

// Fail dead-letters the message, and the Task, with no acknowledgement
// deadline, stays requested.
func TestFailDeadLetters(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	filler := s.StartScriptedFiller(t, "lab", sf.Fail(), sf.Respond(envelope.ResponseOK))
	_, task := s.PostMessage(t, order(t, 1), true)
	dead := s.DrainDead(t, "lab", 1, 10*time.Second)
	if len(dead) != 1 || dead[0].MessageId != identity(1) {
		t.Fatalf("dead queue: %d messages, want the order", len(dead))
	}
	if got := s.ReadTask(t, task); got.Status != "requested" || len(got.Output) != 0 || filler.Answered() != 0 {
		t.Errorf("%v, answered %d: want requested and no answer (steps after Fail do not run)", got, filler.Answered())
	}
}

// An answer the gateway refuses ends the script, and the delivery is
// acknowledged: progress about an order without a focus matches nothing.
func TestRefusedAnswerEndsTheScript(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	filler := s.StartScriptedFiller(t, "lab", sf.Progress("in-progress", "started"), sf.Respond(envelope.ResponseOK))
	_, task := s.PostMessage(t, withoutFocus(t, order(t, 1)), true)
	wait.Until(t, "the gateway to refuse the progress", 10*time.Second, func() bool { return filler.Refused() == 1 })
	if filler.Answered() != 0 {
		t.Errorf("answered %d after a refusal", filler.Answered())
	}
	if dead := s.DrainDead(t, "lab", 0, 200*time.Millisecond); len(dead) != 0 {
		t.Errorf("%d dead-lettered", len(dead))
	}
	if got := s.ReadTask(t, task); got.Status != "requested" || len(got.Output) != 0 {
		t.Errorf("%v, want requested with no answer", got)
	}
}

// withoutFocus removes MessageHeader.focus.
func withoutFocus(t *testing.T, msg []byte) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(msg, &b); err != nil {
		t.Fatal(err)
	}
	header := b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	delete(header, "focus")
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
