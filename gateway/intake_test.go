package gateway_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/clock"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	goldenfile "github.com/fhirgw/fhirgw/testing/golden"
	"github.com/fhirgw/fhirgw/testing/wait"
	"github.com/gin-gonic/gin"
)

var update = flag.Bool("update", false, "rewrite golden files with the current output")

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	brokertest.Main(m)
}

func fixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testing", "fixtures", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// outcome decodes an OperationOutcome answer.
func outcome(t *testing.T, r gatewaytest.Response) envelope.OperationOutcome {
	t.Helper()
	var oo envelope.OperationOutcome
	if err := json.Unmarshal(r.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("want an OperationOutcome, got %d %s", r.Status, r.Body)
	}
	return oo
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.JSON(t, filepath.Join("testdata", "golden", name), got, *update)
}

func TestAcceptedMessageLandsInItsQueueByteIdentical(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	body := fixture(t, "r4/lab-order.json")
	r := s.Post(t, body, "async=true", "application/fhir+json; fhirVersion=4.0")
	if r.Status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	oo := outcome(t, r)
	if oo.Issue[0].Severity != envelope.SeverityInformation {
		t.Errorf("202 outcome %s", r.Body)
	}
	loc := r.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, s.Base+"/Task/") {
		t.Fatalf("Content-Location %q", loc)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/fhir+json; fhirVersion=4.0" {
		t.Errorf("Content-Type %q", ct)
	}
	got := s.Drain(t, "lab", 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d messages in the lab queue, want 1", len(got))
	}
	d := got[0]
	if !bytes.Equal(d.Body, body) {
		t.Error("the queued message differs from the bytes POSTed")
	}
	taskID := strings.TrimPrefix(loc, s.Base+"/Task/")
	if d.MessageId != "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01" || d.CorrelationId != d.MessageId ||
		d.ContentType != "application/fhir+json; fhirVersion=4.0" || d.DeliveryMode != 2 ||
		d.Headers[router.HeaderTaskID] != taskID || d.Headers[router.HeaderEvent] != "coding:"+gatewaytest.EventLabOrder ||
		d.Headers[router.HeaderFHIRVersion] != "4.0" {
		t.Errorf("properties: id=%q corr=%q type=%q mode=%d headers=%v", d.MessageId, d.CorrelationId, d.ContentType, d.DeliveryMode, d.Headers)
	}
}

func TestFanOutReachesEveryFiller(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	body := fixture(t, "r4/lab-result.json")
	if r := s.Post(t, body, "async=true", ""); r.Status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	for _, f := range []string{"lab", "archive"} {
		got := s.Drain(t, f, 1, 10*time.Second)
		if len(got) != 1 || !bytes.Equal(got[0].Body, body) {
			t.Errorf("%s got %d messages", f, len(got))
		}
	}
}

func TestDuplicatesReplayTheOriginalAnswer(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	body := fixture(t, "r4/lab-order.json")
	first := s.Post(t, body, "async=true", "")
	second := s.Post(t, body, "async=true", "")
	if first.Status != http.StatusAccepted || second.Status != first.Status || !bytes.Equal(second.Body, first.Body) ||
		second.Header.Get("Content-Location") != first.Header.Get("Content-Location") {
		t.Fatalf("first %d %s\nsecond %d %s", first.Status, first.Body, second.Status, second.Body)
	}
	if first.Header.Get(gateway.HeaderDuplicate) != "" || second.Header.Get(gateway.HeaderDuplicate) != "true" {
		t.Errorf("%s: first %q, second %q; want only the second marked", gateway.HeaderDuplicate,
			first.Header.Get(gateway.HeaderDuplicate), second.Header.Get(gateway.HeaderDuplicate))
	}
	// R4 resend: same MessageHeader.id, new Bundle.id: the same message.
	resend := bytes.Replace(body, []byte(`"id": "b4a1c2d3-0000-4000-8000-000000000001"`), []byte(`"id": "b4a1c2d3-0000-4000-8000-0000000000ff"`), 1)
	if bytes.Equal(resend, body) {
		t.Fatal("fixture edit failed")
	}
	if r := s.Post(t, resend, "async=true", ""); r.Status != first.Status || !bytes.Equal(r.Body, first.Body) || r.Header.Get(gateway.HeaderDuplicate) != "true" {
		t.Errorf("resend with a new Bundle.id: %d %s", r.Status, r.Body)
	}
	time.Sleep(500 * time.Millisecond) // let a wrong second publish show up
	if got := s.Drain(t, "lab", 1, 10*time.Second); len(got) != 1 {
		t.Errorf("%d messages queued, want 1: a duplicate was routed", len(got))
	}
	// R4: the Bundle.id of the first message reused with a new MessageHeader.id.
	reused := bytes.Replace(body, []byte(`"id": "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"`), []byte(`"id": "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5eff"`), 1)
	r := s.Post(t, reused, "async=true", "")
	if r.Status != http.StatusBadRequest || r.Header.Get(gateway.HeaderDuplicate) != "" {
		t.Fatalf("reused Bundle.id: %d %s", r.Status, r.Body)
	}
	golden(t, "bundle-id-reused.json", r.Body)
}

func TestErrorsAnswerWithOperationOutcomes(t *testing.T) {
	cfg := gatewaytest.Config()
	cfg.HTTP.MaxBodyBytes = 64 << 10
	s := gatewaytest.Start(t, cfg)
	big := bytes.Repeat([]byte(" "), 65<<10)
	unknownEvent := bytes.Replace(fixture(t, "r4/lab-order.json"), []byte(`"code": "lab-order"`), []byte(`"code": "lab-inventory"`), 1)
	cases := []struct {
		name, method, query, contentType string
		body                             []byte
		status                           int
		code                             envelope.IssueType
	}{
		{"not json", http.MethodPost, "", "", fixture(t, "invalid/not-json.json"), 400, envelope.IssueStructure},
		{"no event", http.MethodPost, "", "", fixture(t, "invalid/no-event.json"), 400, envelope.IssueRequired},
		{"not a message", http.MethodPost, "", "", fixture(t, "invalid/not-a-message.json"), 400, envelope.IssueInvalid},
		{"R5 message sent as R4", http.MethodPost, "", "application/fhir+json; fhirVersion=4.0", fixture(t, "r5/lab-order.json"), 400, envelope.IssueStructure},
		{"GET", http.MethodGet, "", "", nil, 405, envelope.IssueNotSupported},
		{"PUT", http.MethodPut, "", "", fixture(t, "r4/lab-order.json"), 405, envelope.IssueNotSupported},
		{"too large", http.MethodPost, "", "", big, 413, envelope.IssueTooLong},
		{"xml", http.MethodPost, "", "application/fhir+xml", fixture(t, "r4/lab-order.json"), 415, envelope.IssueNotSupported},
		{"no content type", http.MethodPost, "", "-", fixture(t, "r4/lab-order.json"), 415, envelope.IssueNotSupported},
		{"fhir 3.0", http.MethodPost, "", "application/fhir+json; fhirVersion=3.0", fixture(t, "r4/lab-order.json"), 415, envelope.IssueNotSupported},
		{"no route", http.MethodPost, "async=true", "", unknownEvent, 422, envelope.IssueNotSupported},
		{"callback not allowed", http.MethodPost, "async=true&response-url=https%3A%2F%2Fevil.example%2Ffhir", "", fixture(t, "r4/lab-order.json"), 403, envelope.IssueType("forbidden")},
		// http://127.0.0.1/fhir/%2e%2e/admin: under the allowed http://127.0.0.1, but read two ways.
		{"callback with an encoded dot segment", http.MethodPost, "async=true&response-url=http%3A%2F%2F127.0.0.1%2Ffhir%2F%252e%252e%2Fadmin", "", fixture(t, "r4/lab-order.json"), 403, envelope.IssueType("forbidden")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := http.Header{"Content-Type": {"application/fhir+json"}}
			switch tc.contentType {
			case "-":
				header = http.Header{}
			case "":
			default:
				header.Set("Content-Type", tc.contentType)
			}
			url := s.Base + "/$process-message"
			if tc.query != "" {
				url += "?" + tc.query
			}
			r := gatewaytest.Do(t, tc.method, url, tc.body, header)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if oo := outcome(t, r); oo.Issue[0].Code != tc.code {
				t.Errorf("issue code %s, want %s: %s", oo.Issue[0].Code, tc.code, r.Body)
			}
			if tc.status == 405 && r.Header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q", r.Header.Get("Allow"))
			}
			golden(t, "errors/"+strings.ReplaceAll(tc.name, " ", "-")+".json", r.Body)
		})
	}
	if got := s.Drain(t, "lab", 0, 200*time.Millisecond); len(got) != 0 {
		t.Errorf("%d rejected messages were routed", len(got))
	}
}

func TestSynchronousPostReturnsTheFillersResponse(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	filler := s.StartFiller(t, "lab", envelope.ResponseOK)
	body := fixture(t, "r5/lab-order.json")
	r := s.Post(t, body, "", "application/fhir+json; fhirVersion=5.0")
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	resp, err := envelope.NewParser(envelope.Options{}).Parse(r.Body, envelope.R5)
	if err != nil {
		t.Fatalf("the 200 body is not a valid R5 message: %v", err)
	}
	if !resp.IsResponse() || resp.Header.Response.Identifier.Value != "urn:uuid:5e5e5e5e-0000-4000-8000-000000000001" ||
		resp.Header.Response.Code != envelope.ResponseOK {
		t.Errorf("not the correlated response: %+v", resp.Header.Response)
	}
	if filler.Answered() != 1 {
		t.Errorf("filler answered %d", filler.Answered())
	}
	// The Task shows the exchange and its response.
	loc := r.Header.Get("Content-Location")
	task := gatewaytest.Do(t, http.MethodGet, loc, nil, nil)
	var tk struct {
		Status string
		Output []struct{ ValueReference struct{ Reference string } }
	}
	if err := json.Unmarshal(task.Body, &tk); err != nil || tk.Status != "accepted" || len(tk.Output) != 1 {
		t.Fatalf("task %d %s", task.Status, task.Body)
	}
	stored := s.Get(t, "/"+tk.Output[0].ValueReference.Reference, nil)
	if stored.Status != http.StatusOK || !bytes.Equal(stored.Body, r.Body) {
		t.Errorf("stored response %d differs from the 200 body", stored.Status)
	}
	// A duplicate gets the same answer: the response.
	again := s.Post(t, body, "", "application/fhir+json; fhirVersion=5.0")
	if again.Status != http.StatusOK || !bytes.Equal(again.Body, r.Body) {
		t.Errorf("duplicate of a synchronous exchange: %d", again.Status)
	}
}

func TestSynchronousPostWithoutAnswerIsAccepted(t *testing.T) {
	cfg := gatewaytest.Config()
	cfg.Routes[0].SyncTimeout = gateway.Duration(300 * time.Millisecond)
	s := gatewaytest.Start(t, cfg)
	start := time.Now()
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "", "")
	if r.Status != http.StatusAccepted || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("status %d after %v: %s", r.Status, time.Since(start), r.Body)
	}
	outcome(t, r)
	task := gatewaytest.Do(t, http.MethodGet, r.Header.Get("Content-Location"), nil, nil)
	if task.Status != http.StatusOK || !bytes.Contains(task.Body, []byte(`"status":"requested"`)) {
		t.Errorf("task %d %s", task.Status, task.Body)
	}
}

func TestUnmatchedResponseIsRecordedAndRejectedClearly(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	body := fixture(t, "r4/lab-order-ack.json")
	r := s.Post(t, body, "async=true", "")
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	oo := outcome(t, r)
	if oo.Issue[0].Code != envelope.IssueNotFound || oo.Issue[0].Expression[0] != "Bundle.entry[0].resource.response.identifier" {
		t.Errorf("outcome %s", r.Body)
	}
	loc := r.Header.Get("Content-Location")
	kept := gatewaytest.Do(t, http.MethodGet, loc, nil, nil)
	if kept.Status != http.StatusOK || !bytes.Equal(kept.Body, body) {
		t.Errorf("the unmatched response is not kept at %s: %d", loc, kept.Status)
	}
	if again := s.Post(t, body, "async=true", ""); again.Status != http.StatusUnprocessableEntity || again.Header.Get("Content-Location") != loc {
		t.Errorf("sent again: %d %s", again.Status, again.Header.Get("Content-Location"))
	}
}

func TestTaskConditionalReads(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	loc := r.Header.Get("Content-Location")
	s.Drain(t, "lab", 1, 10*time.Second)
	var first gatewaytest.Response
	wait.For(10*time.Second, func() bool { // until routed, the last change before a response
		first = gatewaytest.Do(t, http.MethodGet, loc, nil, nil)
		return bytes.Contains(first.Body, []byte("routed to lab"))
	})
	etag, lm := first.Header.Get("ETag"), first.Header.Get("Last-Modified")
	if first.Status != http.StatusOK || etag == "" || lm == "" {
		t.Fatalf("task %d etag %q last-modified %q", first.Status, etag, lm)
	}
	if r := gatewaytest.Do(t, http.MethodGet, loc, nil, http.Header{"If-None-Match": {etag}}); r.Status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.Status)
	}
	// HTTP dates have whole seconds: since the start of the second of the
	// last change the Task has changed (200); since the next second, not.
	if r := gatewaytest.Do(t, http.MethodGet, loc, nil, http.Header{"If-Modified-Since": {lm}}); r.Status != http.StatusOK {
		t.Errorf("If-Modified-Since the second of the last change: %d", r.Status)
	}
	lmTime, _ := http.ParseTime(lm)
	if r := gatewaytest.Do(t, http.MethodGet, loc, nil, http.Header{"If-Modified-Since": {lmTime.Add(time.Second).Format(http.TimeFormat)}}); r.Status != http.StatusNotModified {
		t.Errorf("If-Modified-Since the next second: %d", r.Status)
	}
	if r := gatewaytest.Do(t, http.MethodGet, loc, nil, http.Header{"If-None-Match": {`W/"1"`}}); r.Status != http.StatusOK {
		t.Errorf("stale ETag: %d", r.Status)
	}
	if r := s.Get(t, "/Task/nope", nil); r.Status != http.StatusNotFound {
		t.Errorf("missing task: %d", r.Status)
	}
}

func TestCapabilityStatementAndHealth(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	r := s.Get(t, "/metadata", nil)
	var cs struct {
		ResourceType string
		FHIRVersion  string `json:"fhirVersion"`
		Messaging    []struct {
			ReliableCache    int
			SupportedMessage []struct{ Mode, Definition string }
		}
	}
	if err := json.Unmarshal(r.Body, &cs); err != nil || cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" ||
		cs.Messaging[0].ReliableCache != 1440 || len(cs.Messaging[0].SupportedMessage) != 2 {
		t.Fatalf("metadata %d %s", r.Status, r.Body)
	}
	base := strings.TrimSuffix(s.Base, "/fhir")
	if r := gatewaytest.Do(t, http.MethodGet, base+"/healthz", nil, nil); r.Status != http.StatusOK {
		t.Errorf("healthz %d", r.Status)
	}
	if r := gatewaytest.Do(t, http.MethodGet, base+"/readyz", nil, nil); r.Status != http.StatusOK {
		t.Errorf("readyz %d %s", r.Status, r.Body)
	}
	s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	m := gatewaytest.Do(t, http.MethodGet, base+"/metrics", nil, nil)
	if !bytes.Contains(m.Body, []byte(`fhirgw_intake_messages_total{outcome="accepted"} 1`)) {
		t.Errorf("metrics lack the accepted message:\n%s", m.Body)
	}
}

func TestDuplicateWindowEndsAfterReliableCacheMinutesButKeepsTheExchange(t *testing.T) {
	c := clock.New(time.Now())
	cfg := gatewaytest.Config()
	cfg.ReliableCacheMinutes = 1
	s := gatewaytest.Start(t, cfg, gatewaytest.WithClock(c.Now), gatewaytest.WithPurgeInterval(20*time.Millisecond))
	body := fixture(t, "r4/lab-order.json")
	first := s.Post(t, body, "async=true", "")
	if first.Status != http.StatusAccepted {
		t.Fatalf("first: %d", first.Status)
	}
	s.Drain(t, "lab", 1, 10*time.Second)
	if again := s.Post(t, body, "async=true", ""); again.Header.Get("Content-Location") != first.Header.Get("Content-Location") {
		t.Fatal("within the window the message is not a duplicate")
	}
	c.Add(2 * time.Minute)
	later := s.Post(t, body, "async=true", "")
	if later.Status != http.StatusAccepted || later.Header.Get("Content-Location") == first.Header.Get("Content-Location") {
		t.Fatalf("after the window: %d %s", later.Status, later.Header.Get("Content-Location"))
	}
	if got := s.Drain(t, "lab", 1, 10*time.Second); len(got) != 1 {
		t.Errorf("after the window the message is routed again: got %d", len(got))
	}
	// The window governs replay only: the first exchange is still open, so
	// it is kept, and answers its Task.
	if r := s.Get(t, strings.TrimPrefix(first.Header.Get("Content-Location"), s.Base), nil); r.Status != http.StatusOK {
		t.Errorf("the first exchange after the window: %d", r.Status)
	}
}
