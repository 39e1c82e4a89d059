package adapters

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTPDeliver(t *testing.T) {
	body := []byte(`{"resourceType":"Bundle","type":"message"}`)
	response := []byte(`{"resourceType":"Bundle","type":"message","entry":[]}`)
	cases := []struct {
		name       string
		status     int
		header     map[string]string
		answer     []byte
		permanent  bool
		transient  bool
		retryAfter time.Duration
		responses  int
	}{
		{name: "200 with a response", status: 200, answer: response, responses: 1},
		{name: "202 with an OperationOutcome", status: 202, answer: []byte(`{"resourceType":"OperationOutcome","issue":[]}`)},
		{name: "204", status: 204},
		{name: "400", status: 400, permanent: true},
		{name: "404", status: 404, permanent: true},
		{name: "408", status: 408, transient: true},
		{name: "429 with Retry-After", status: 429, header: map[string]string{"Retry-After": "7"}, transient: true, retryAfter: 7 * time.Second},
		{name: "500", status: 500, transient: true},
		{name: "503 with Retry-After", status: 503, header: map[string]string{"Retry-After": "3"}, transient: true, retryAfter: 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ := io.ReadAll(r.Body)
				if string(got) != string(body) || r.URL.Query().Get("async") != "true" ||
					r.Header.Get("Content-Type") != "application/fhir+json; fhirVersion=4.0" ||
					r.Header.Get("X-Correlation-ID") != "id-1" || r.Header.Get("X-Api-Key") != "k" {
					t.Errorf("request: %s %v %q", r.URL, r.Header, got)
				}
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write(tc.answer)
			}))
			defer srv.Close()
			a, err := NewHTTP(HTTPConfig{URL: srv.URL + "/fhir/$process-message", Async: true, Headers: map[string]string{"X-Api-Key": "k"}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Deliver(context.Background(), Message{Filler: "lab", Identity: "id-1", FHIRVersion: "4.0", Body: body})
			switch {
			case tc.permanent:
				if !errors.Is(err, ErrPermanent) {
					t.Fatalf("want a permanent error, got %v", err)
				}
			case tc.transient:
				if err == nil || errors.Is(err, ErrPermanent) {
					t.Fatalf("want a transient error, got %v", err)
				}
				if RetryAfter(err) != tc.retryAfter {
					t.Errorf("retry after %v, want %v", RetryAfter(err), tc.retryAfter)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
			}
			if res.Status != tc.status || len(res.Responses) != tc.responses {
				t.Errorf("result %d with %d responses", res.Status, len(res.Responses))
			}
		})
	}
}

func TestHTTPUnreachableAndSlowFillersAreTransient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	}))
	slow, _ := NewHTTP(HTTPConfig{URL: srv.URL, Timeout: 50 * time.Millisecond})
	_, err := slow.Deliver(context.Background(), Message{Filler: "lab"})
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Errorf("timeout: %v", err)
	}
	srv.Close()
	gone, _ := NewHTTP(HTTPConfig{URL: srv.URL})
	if _, err := gone.Deliver(context.Background(), Message{Filler: "lab"}); err == nil || errors.Is(err, ErrPermanent) {
		t.Errorf("connection refused: %v", err)
	}
	if _, err := NewHTTP(HTTPConfig{URL: "ftp://x"}); err == nil {
		t.Error("an ftp URL was accepted")
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"12":                            12 * time.Second,
		"soon":                          0,
		"Sun, 22 Nov 2026 10:00:30 GMT": 30 * time.Second,
		"Sun, 22 Nov 2026 09:00:00 GMT": 0,
	} {
		if got := retryAfter(http.Header{"Retry-After": {v}}, now); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// What HTTP cannot carry is refused before anything is sent, as a permanent
// failure: an identity with a control character cannot be X-Correlation-ID.
// A tab and non-ASCII letters can; a configured header that cannot is a
// configuration error.
func TestHTTPRefusesWhatAnHTTPRequestCannotCarry(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
	defer srv.Close()
	a, err := NewHTTP(HTTPConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := NewREST(RESTConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a\x00b", "a\nb", "a\rb", "a\x1fb", "a\x7fb"} {
		for name, ad := range map[string]Adapter{"http": a, "rest": rest} {
			_, err := ad.Deliver(context.Background(), Message{Filler: "lab", Identity: id, FHIRVersion: "4.0", Body: []byte(restOrder)})
			if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "X-Correlation-ID") {
				t.Errorf("%s, identity %q: %v, want a permanent error naming X-Correlation-ID", name, id, err)
			}
		}
	}
	if calls != 0 {
		t.Errorf("%d requests reached the filler", calls)
	}
	for _, id := range []string{"a\tb", "aéb", "a b"} {
		if _, err := a.Deliver(context.Background(), Message{Filler: "lab", Identity: id, FHIRVersion: "4.0", Body: []byte(`{}`)}); err != nil {
			t.Errorf("identity %q: %v", id, err)
		}
	}
	for _, h := range []map[string]string{{"X-Api-Key": "k\r\nX-Evil: 1"}, {"Bad Name": "v"}} {
		if _, err := NewHTTP(HTTPConfig{URL: srv.URL, Headers: h}); err == nil {
			t.Errorf("NewHTTP took the header %q", h)
		}
		if _, err := NewREST(RESTConfig{URL: srv.URL, Headers: h}); err == nil {
			t.Errorf("NewREST took the header %q", h)
		}
		if err := kinds["http"].Check(Spec{URL: srv.URL, Headers: h}); err == nil {
			t.Errorf("the http kind's Check passed the header %q", h)
		}
	}
}
