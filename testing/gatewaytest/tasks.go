package gatewaytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
)

// Task is the part of the gateway's FHIR Task (GET [base]/Task/{id}) that
// tests look at.
type Task struct {
	ID string `json:"id"`
	// Status is the FHIR Task status: requested, received, accepted,
	// in-progress, completed, rejected, failed or cancelled.
	Status         string                   `json:"status"`
	BusinessStatus envelope.CodeableConcept `json:"businessStatus"`
	// Output has one entry per answer recorded for the exchange, in the
	// order they came.
	Output []TaskOutput `json:"output"`
}

// TaskOutput is one answer of an exchange: Type.Text is "response <code>"
// (e.g. "response ok") or "progress", ValueReference.Reference is
// "Bundle/{id}", readable under the FHIR base.
type TaskOutput struct {
	Type           envelope.CodeableConcept `json:"type"`
	ValueReference struct {
		Reference string `json:"reference"`
	} `json:"valueReference"`
}

// OutputTypes lists the Type.Text of each output, e.g. ["response ok",
// "progress", "progress"].
func (t Task) OutputTypes() []string {
	out := make([]string, len(t.Output))
	for i, o := range t.Output {
		out[i] = o.Type.Text
	}
	return out
}

// String is the Task in one line, for test failures.
func (t Task) String() string {
	return fmt.Sprintf("Task/%s %s (%q), outputs %v", t.ID, t.Status, t.BusinessStatus.Text, t.OutputTypes())
}

// PostMessage POSTs a request message to $process-message, with
// ?async=true when async, and returns the answer and the URL of the Task
// that follows the exchange (its Content-Location). The Content-Type names
// the FHIR release the message's MessageHeader shows (the configured
// fhirVersion when it shows none). The test fails unless the gateway takes
// the message: 200 (a synchronous POST answered by the filler) or 202, with
// a Task. Use Post to see other answers.
func (s *Stack) PostMessage(t testing.TB, body []byte, async bool) (Response, string) {
	t.Helper()
	contentType := "application/fhir+json"
	def, _ := envelope.ParseVersion(s.Config.FHIRVersion)
	if msg, err := envelope.NewParser(envelope.Options{DefaultVersion: def}).Parse(body, envelope.VersionAuto); err == nil {
		contentType += "; fhirVersion=" + msg.Version.String()
	}
	url := s.Base + "/$process-message"
	if async {
		url += "?async=true"
	}
	r := Do(t, http.MethodPost, url, body, s.header(http.Header{"Content-Type": {contentType}}))
	location := r.Header.Get("Content-Location")
	if (r.Status != http.StatusOK && r.Status != http.StatusAccepted) || !strings.Contains(location, "/Task/") {
		t.Fatalf("POST $process-message: %d, Content-Location %q: %s", r.Status, location, r.Body)
	}
	return r, location
}

// ReadTask GETs a Task: location is its URL (as PostMessage returns it) or
// "Task/{id}". The test fails unless the answer is 200 with a Task.
func (s *Stack) ReadTask(t testing.TB, location string) Task {
	t.Helper()
	task, err := s.readTask(t, location)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// AwaitTask polls a Task (see ReadTask) until its status is status and
// returns it. The test fails, naming the last status seen, when wait
// passes first, or as soon as the Task ends in another status (completed,
// rejected, failed and cancelled are final).
func (s *Stack) AwaitTask(t testing.TB, location, status string, wait time.Duration) Task {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		task, err := s.readTask(t, location)
		switch {
		case err == nil && task.Status == status:
			return task
		case err == nil && ledger.Status(task.Status).Terminal():
			t.Fatalf("want Task status %s, but the Task ended: %v", status, task)
		case time.Now().After(deadline):
			if err != nil {
				t.Fatalf("want Task status %s within %v, last read: %v", status, wait, err)
			}
			t.Fatalf("want Task status %s within %v, last seen: %v", status, wait, task)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *Stack) readTask(t testing.TB, location string) (Task, error) {
	t.Helper()
	url := location
	if !strings.Contains(location, "://") {
		url = s.Base + "/" + strings.TrimPrefix(location, "/")
	}
	r := Do(t, http.MethodGet, url, nil, s.header(nil))
	var task Task
	if r.Status != http.StatusOK {
		return task, fmt.Errorf("GET %s: %d %s", url, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &task); err != nil || task.Status == "" {
		return task, fmt.Errorf("GET %s: not a Task (%v): %s", url, err, r.Body)
	}
	return task, nil
}

// header is h with the stack's API key.
func (s *Stack) header(h http.Header) http.Header {
	if h == nil {
		h = http.Header{}
	}
	if s.APIKey != "" {
		h.Set("X-API-Key", s.APIKey)
	}
	return h
}
