package envelope

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// fixedResponder numbers its ids and stops its clock, for golden output.
func fixedResponder() Responder {
	n := 0
	return Responder{
		Sender: Sender{Name: "fhirgw", Software: "fhirgw", Version: "test", Endpoint: "https://gateway.example/fhir"},
		Now:    func() time.Time { return time.Date(2026, 11, 22, 10, 30, 0, 123e6, time.UTC) },
		NewID: func() string {
			n++
			return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
		},
	}
}

func TestResponse(t *testing.T) {
	details := NewOutcome(Issue{Severity: SeverityError, Code: IssueInvalid, Diagnostics: "unknown specimen type", Expression: "Specimen.type"})
	cases := []struct {
		name    string
		base    string
		edits   []edit
		code    ResponseCode
		details *OperationOutcome
	}{
		{name: "r4-ok", base: baseR4, code: ResponseOK},
		{name: "r4-fatal-error", base: baseR4, code: ResponseFatalError, details: &details},
		{name: "r4-identity-fallback", base: baseR4, edits: []edit{del(h + ".id")}, code: ResponseTransientError},
		{name: "r5-ok", base: baseR5, code: ResponseOK},
		{name: "r5-fatal-error", base: baseR5, code: ResponseFatalError, details: &details},
		{name: "r5-endpoint-reference", base: baseR5, edits: []edit{set(h+".source", raw(`{"name":"ehr","endpointReference":{"reference":"Endpoint/ehr"}}`))}, code: ResponseOK},
	}
	p := NewParser(Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := p.Parse(mutate(t, tc.base, tc.edits...), VersionAuto)
			if err != nil {
				t.Fatal(err)
			}
			out, err := fixedResponder().Response(req, tc.code, tc.details)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "response/"+tc.name+".json", out)

			// What the gateway emits must pass its own validation, as a
			// response of the request's version that quotes the request.
			resp, err := p.Parse(out, req.Version)
			if err != nil {
				t.Fatalf("the response is not a valid message: %v", err)
			}
			r := resp.Header.Response
			switch {
			case r == nil:
				t.Fatal("no MessageHeader.response")
			case r.Code != tc.code:
				t.Errorf("code %s, want %s", r.Code, tc.code)
			case r.Identifier.Value != req.Identity.Value || r.Identifier.System != req.Identity.System:
				t.Errorf("response.identifier %+v does not quote the request identity %+v", r.Identifier, req.Identity)
			case resp.Identity.Value == req.Identity.Value:
				t.Errorf("the response reuses the request identity %s", req.Identity.Value)
			case resp.Header.Event != req.Header.Event:
				t.Errorf("event %+v, want the request's %+v", resp.Header.Event, req.Header.Event)
			case len(resp.Header.Destinations) != 1 || resp.Header.Destinations[0].URL != req.Header.Source.URL ||
				resp.Header.Destinations[0].Reference != req.Header.Source.Reference:
				t.Errorf("destination %+v, want the request's source %+v", resp.Header.Destinations, req.Header.Source)
			case (tc.details != nil) != (r.Details != ""):
				t.Errorf("details reference %q, want one only with details", r.Details)
			}
		})
	}
}

func TestResponseRefusals(t *testing.T) {
	req, err := NewParser(Options{}).Parse([]byte(baseR4), VersionAuto)
	if err != nil {
		t.Fatal(err)
	}
	noEndpoint := fixedResponder()
	noEndpoint.Sender.Endpoint = ""
	for name, call := range map[string]func() ([]byte, error){
		"nil request":           func() ([]byte, error) { return fixedResponder().Response(nil, ResponseOK, nil) },
		"bad code":              func() ([]byte, error) { return fixedResponder().Response(req, "maybe", nil) },
		"r4 without source url": func() ([]byte, error) { return noEndpoint.Response(req, ResponseOK, nil) },
	} {
		if _, err := call(); !errors.Is(err, ErrNotRespondable) {
			t.Errorf("%s: got %v, want ErrNotRespondable", name, err)
		}
	}
}

func TestOutcome(t *testing.T) {
	golden(t, "outcome/empty.json", NewOutcome().JSON())
	golden(t, "outcome/html-not-escaped.json", NewOutcome(Issue{
		Severity: SeverityWarning, Code: IssueValue, Rule: RuleFocus,
		Diagnostics: "a <b> & c", Expression: "Bundle.entry[0]",
	}).JSON())
}
