package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/samplefiller"
	"github.com/fhirgw/fhirgw/testing/wait"
)

// placerEndpoint collects the answers pushed to a placer, in arrival order.
type placerEndpoint struct {
	mu  sync.Mutex
	got [][]byte
	srv *httptest.Server
}

func newPlacer(t *testing.T) *placerEndpoint {
	t.Helper()
	p := &placerEndpoint{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.got = append(p.got, b)
		p.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *placerEndpoint) received() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.got...)
}

// progressMessage is a message from the lab (event lab-progress, routed
// nowhere) carrying resources, in the order's FHIR version.
func progressMessage(v envelope.Version, n int, resources string) []byte {
	id := fmt.Sprintf("7a7a7a7a-0000-4000-8000-%012d", n)
	header := fmt.Sprintf(`{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"MessageHeader","id":"%s",
		"eventCoding":{"system":"https://fhirgw.example/fhir/message-events","code":"lab-progress"},
		"source":{"name":"lab","endpoint":"https://lab.example/fhir"}}}`, id, id)
	identifier := ""
	if v == envelope.R5 {
		header = strings.Replace(header, `"endpoint"`, `"endpointUrl"`, 1)
		identifier = fmt.Sprintf(`"identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:%s"},`, id)
	}
	return []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":"%s",%s"type":"message","timestamp":"2026-11-22T10:00:00Z","entry":[%s,%s]}`,
		id, identifier, header, resources))
}

func TestLabOrderConversation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fixture string
		version envelope.Version
	}{{"R4", "r4/lab-order.json", envelope.R4}, {"R5", "r5/lab-order.json", envelope.R5}} {
		t.Run(tc.name, func(t *testing.T) { labConversation(t, tc.fixture, tc.version) })
	}
}

func labConversation(t *testing.T, fixturePath string, v envelope.Version) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	placer := newPlacer(t)
	ct := "application/fhir+json; fhirVersion=" + v.String()
	orderBody := fixture(t, fixturePath)
	order, err := envelope.NewParser(envelope.Options{}).Parse(orderBody, v)
	if err != nil {
		t.Fatal(err)
	}
	sr := order.Entries[1] // the ServiceRequest in focus
	r := s.Post(t, orderBody, "async=true&response-url="+placer.srv.URL+"/fhir/%24process-message", ct)
	if r.Status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.Status, r.Body)
	}
	task := r.Header.Get("Content-Location")
	if got := s.Drain(t, "lab", 1, 10*time.Second); len(got) != 1 {
		t.Fatalf("the lab queue holds %d messages", len(got))
	}

	ack, err := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}.Response(order, envelope.ResponseOK, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name, status, business string
		body                   []byte
	}{
		{"acknowledgement", "accepted", "response ok", ack},
		{"specimen received", "in-progress", "specimen received", progressMessage(v, 1, fmt.Sprintf(
			`{"fullUrl":"urn:uuid:7b7b7b7b-0000-4000-8000-000000000001","resource":{"resourceType":"Task","id":"lab-task","status":"in-progress","intent":"order",
			"businessStatus":{"text":"specimen received"},"basedOn":[{"reference":"ServiceRequest/%s"}],"focus":{"reference":"ServiceRequest/%s"}}}`, sr.ID, sr.ID))},
		{"preliminary result", "in-progress", "result preliminary", progressMessage(v, 2, fmt.Sprintf(
			`{"fullUrl":"urn:uuid:7b7b7b7b-0000-4000-8000-000000000002","resource":{"resourceType":"DiagnosticReport","id":"report","status":"preliminary",
			"code":{"text":"CBC"},"basedOn":[{"identifier":{"system":"%s","value":"%s"}}]}}`, sr.Identifiers[0].System, sr.Identifiers[0].Value))},
		{"final result", "completed", "result final", progressMessage(v, 3, fmt.Sprintf(
			`{"fullUrl":"urn:uuid:7b7b7b7b-0000-4000-8000-000000000003","resource":{"resourceType":"DiagnosticReport","id":"report","status":"final",
			"code":{"text":"CBC"},"basedOn":[{"identifier":{"system":"%s","value":"%s"}}]}}`, sr.Identifiers[0].System, sr.Identifiers[0].Value))},
	}
	var lastModified, etag string
	for i, step := range steps {
		if i > 0 {
			// Between changes, a poll with the last ETag gets 304; one with
			// the last Last-Modified gets 200, since HTTP dates have whole
			// seconds and the Task changed within that second; a second
			// later, it gets 304.
			if r := gatewaytest.Do(t, http.MethodGet, task, nil, http.Header{"If-None-Match": {etag}}); r.Status != http.StatusNotModified {
				t.Fatalf("before %s: poll %d, want 304", step.name, r.Status)
			}
			if r := gatewaytest.Do(t, http.MethodGet, task, nil, http.Header{"If-Modified-Since": {lastModified}}); r.Status != http.StatusOK {
				t.Fatalf("before %s: poll since the second of the last change %d, want 200", step.name, r.Status)
			}
			lm, _ := http.ParseTime(lastModified)
			later := lm.Add(time.Second).Format(http.TimeFormat)
			if r := gatewaytest.Do(t, http.MethodGet, task, nil, http.Header{"If-Modified-Since": {later}}); r.Status != http.StatusNotModified {
				t.Fatalf("before %s: poll since the second after the last change %d, want 304", step.name, r.Status)
			}
		}
		// The lab sends its message to the gateway.
		if r := s.Post(t, step.body, "async=true", ct); r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", step.name, r.Status, r.Body)
		}
		r := gatewaytest.Do(t, http.MethodGet, task, nil, http.Header{"If-Modified-Since": {lastModified}})
		if lastModified != "" && r.Status != http.StatusOK {
			t.Fatalf("after %s: poll %d, want 200 (the Task changed)", step.name, r.Status)
		}
		tv := readTask(t, s, task)
		if tv.Status != step.status || tv.BusinessStatus.Text != step.business || len(tv.Output) != i+1 {
			t.Fatalf("after %s: task %+v, want %s / %s with %d outputs", step.name, tv, step.status, step.business, i+1)
		}
		lastModified, etag = r.Header.Get("Last-Modified"), r.Header.Get("ETag")
	}

	wait.For(20*time.Second, func() bool { return len(placer.received()) >= len(steps) })
	got := placer.received()
	if len(got) != len(steps) {
		t.Fatalf("the placer received %d of %d messages", len(got), len(steps))
	}
	for i, step := range steps {
		if string(got[i]) != string(step.body) {
			t.Errorf("message %d at the placer is not the %s: out of order or altered", i, step.name)
		}
	}
}

func TestFatalErrorRejectsTheTaskAndReachesThePlacer(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	placer := newPlacer(t)
	orderBody := fixture(t, "r4/lab-order.json")
	r := s.Post(t, orderBody, "async=true&response-url="+placer.srv.URL, "")
	order, _ := envelope.NewParser(envelope.Options{}).Parse(orderBody, envelope.R4)
	oo := envelope.NewOutcome(envelope.Issue{Severity: envelope.SeverityError, Code: envelope.IssueInvalid, Diagnostics: "unknown test code"})
	reject, _ := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}.Response(order, envelope.ResponseFatalError, &oo)
	if resp := s.Post(t, reject, "async=true", ""); resp.Status != http.StatusOK {
		t.Fatalf("rejection: %d %s", resp.Status, resp.Body)
	}
	if tv := readTask(t, s, r.Header.Get("Content-Location")); tv.Status != "rejected" || len(tv.Output) != 1 {
		t.Errorf("task %+v", tv)
	}
	wait.For(15*time.Second, func() bool { return len(placer.received()) > 0 })
	if got := placer.received(); len(got) != 1 || string(got[0]) != string(reject) {
		t.Errorf("the placer received %d messages, want the fatal-error response", len(got))
	}
}

func TestTaskSearchForPolling(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	before := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
	first := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	second := s.Post(t, fixture(t, "r5/lab-order.json"), "async=true", "application/fhir+json; fhirVersion=5.0")
	if first.Status != http.StatusAccepted || second.Status != http.StatusAccepted {
		t.Fatalf("%d %d", first.Status, second.Status)
	}
	type searchset struct {
		ResourceType, Type string
		Total              *int
		Entry              []struct {
			FullURL  string
			Resource struct{ ID, Status string }
		}
	}
	search := func(query string) searchset {
		t.Helper()
		r := s.Get(t, "/Task?"+query, nil)
		var b searchset
		if err := json.Unmarshal(r.Body, &b); err != nil || r.Status != http.StatusOK || b.Type != "searchset" {
			t.Fatalf("%s: %d %s", query, r.Status, r.Body)
		}
		return b
	}
	if b := search("_lastUpdated=gt" + before); len(b.Entry) != 2 || b.Total != nil {
		t.Errorf("updated since before: %+v (total only when asked)", b)
	}
	if b := search("_lastUpdated=gt" + before + "&_total=accurate"); b.Total == nil || *b.Total != 2 {
		t.Errorf("updated since before, with the total: %+v", b)
	}
	if b := search("identifier=" + gateway.IdentitySystem + "|4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"); len(b.Entry) != 1 ||
		b.Entry[0].FullURL != first.Header.Get("Content-Location") {
		t.Errorf("by identifier: %+v", b)
	}
	if b := search("status=completed,cancelled"); len(b.Entry) != 0 {
		t.Errorf("by status: %+v", b)
	}
	if b := search("_lastUpdated=gt" + time.Now().UTC().Add(time.Hour).Format(time.RFC3339)); len(b.Entry) != 0 {
		t.Errorf("updated in the future: %+v", b)
	}
	if b := search("_lastUpdated=lt" + before); len(b.Entry) != 0 {
		t.Errorf("updated before the test: %+v", b)
	}
	if r := s.Get(t, "/Task?_lastUpdated=eq2026-01-01", nil); r.Status != http.StatusBadRequest {
		t.Errorf("an unsupported prefix: %d", r.Status)
	}
}

func TestSampleFillerReportsProgress(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	f := samplefiller.New(samplefiller.Config{AMQPURL: s.Config.AMQP.URL, Queue: s.Topology.FillerQueue("lab"), GatewayURL: s.Base, Progress: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	loc := r.Header.Get("Content-Location")
	var tv taskView
	wait.For(15*time.Second, func() bool { tv = readTask(t, s, loc); return tv.Status == "completed" })
	if tv.Status != "completed" || len(tv.Output) != 3 || tv.BusinessStatus.Text != "results final" {
		t.Errorf("task %+v, want completed after an ack and two progress messages", tv)
	}
}

func TestARoutedMessageIsNeverTakenForProgress(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	// The lab result points at the order's ServiceRequest, but lab-result has
	// a route: it is a new message, routed to lab and archive.
	if r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", ""); r.Status != http.StatusAccepted {
		t.Fatalf("order %d", r.Status)
	}
	r := s.Post(t, fixture(t, "r4/lab-result.json"), "async=true", "")
	if r.Status != http.StatusAccepted || !strings.Contains(r.Header.Get("Content-Location"), "/Task/") {
		t.Fatalf("result: %d %s", r.Status, r.Header.Get("Content-Location"))
	}
	if got := s.Drain(t, "archive", 1, 10*time.Second); len(got) != 1 {
		t.Errorf("archive got %d messages", len(got))
	}
}

func TestProgressNamedByXCorrelationID(t *testing.T) {
	s := gatewaytest.Start(t, gatewaytest.Config())
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	// A progress message that points at nothing but carries the order's
	// identity, as the http adapter sends it, in X-Correlation-ID.
	progress := progressMessage(envelope.R4, 9, `{"fullUrl":"urn:uuid:7b7b7b7b-0000-4000-8000-000000000009","resource":{"resourceType":"Task","id":"t","status":"in-progress","intent":"order"}}`)
	p := gatewaytest.Do(t, http.MethodPost, s.Base+"/$process-message?async=true", progress, http.Header{
		"Content-Type": {"application/fhir+json"}, "X-Correlation-ID": {"4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"}})
	if p.Status != http.StatusOK {
		t.Fatalf("progress %d %s", p.Status, p.Body)
	}
	if tv := readTask(t, s, r.Header.Get("Content-Location")); tv.Status != "in-progress" || len(tv.Output) != 1 {
		t.Errorf("task %+v", tv)
	}
}
