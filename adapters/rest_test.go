package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fhirgw/fhirgw/envelope"
)

const restOrder = `{"resourceType":"Bundle","id":"b1","type":"message","entry":[
 {"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000001","resource":{"resourceType":"MessageHeader","id":"h1",
  "eventCoding":{"system":"urn:e","code":"order"},"source":{"endpoint":"https://ehr.example/fhir"},
  "focus":[{"reference":"urn:uuid:11111111-0000-4000-8000-000000000002"}]}},
 {"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000002","resource":{"resourceType":"ServiceRequest","id":"sr-1",
  "meta":{"tag":[{"system":"urn:x","code":"keep"}]},"status":"active","intent":"order","subject":{"reference":"urn:uuid:11111111-0000-4000-8000-000000000003"}}},
 {"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000003","resource":{"resourceType":"Patient","id":"p-1"}}]}`

func TestRESTCreatesTheFocusAsAnActionableTransaction(t *testing.T) {
	var got struct {
		ResourceType, Type string
		Entry              []struct {
			FullURL  string
			Resource struct {
				ResourceType string
				Meta         struct {
					Tag []struct{ System, Code string }
				}
			}
			Request struct{ Method, URL string }
		}
	}
	cases := []struct {
		name      string
		status    int
		answer    string
		code      envelope.ResponseCode
		transient bool
	}{
		{name: "created", status: 200, answer: `{"resourceType":"Bundle","type":"transaction-response"}`, code: envelope.ResponseOK},
		{name: "refused", status: 422, answer: `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"business-rule","diagnostics":"no such test"}]}`, code: envelope.ResponseFatalError},
		{name: "down", status: 503, transient: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(body, &got); err != nil {
					t.Errorf("not JSON: %s", body)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.answer))
			}))
			defer srv.Close()
			a, err := NewREST(RESTConfig{URL: srv.URL + "/fhir/"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Deliver(context.Background(), Message{Filler: "lab", Identity: "h1", FHIRVersion: "4.0", Body: []byte(restOrder)})
			if got.Type != "transaction" || len(got.Entry) != 1 || got.Entry[0].Request.Method != "POST" || got.Entry[0].Request.URL != "ServiceRequest" ||
				got.Entry[0].FullURL != "urn:uuid:11111111-0000-4000-8000-000000000002" || len(got.Entry[0].Resource.Meta.Tag) != 2 ||
				got.Entry[0].Resource.Meta.Tag[1].Code != "actionable" {
				t.Errorf("transaction %+v", got)
			}
			if tc.transient {
				if err == nil || errors.Is(err, ErrPermanent) {
					t.Fatalf("want a transient error, got %v", err)
				}
				return
			}
			if err != nil || len(res.Responses) != 1 {
				t.Fatalf("%v, %d responses", err, len(res.Responses))
			}
			resp, err := envelope.NewParser(envelope.Options{}).Parse(res.Responses[0], envelope.R4)
			if err != nil || resp.Header.Response.Code != tc.code || resp.Header.Response.Identifier.Value != "h1" {
				t.Errorf("response %v %s", err, res.Responses[0])
			}
		})
	}
}
