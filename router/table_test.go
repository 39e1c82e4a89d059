package router

import (
	"errors"
	"testing"

	"github.com/fhirgw/fhirgw/envelope"
)

func TestTableMatch(t *testing.T) {
	table, err := NewTable([]Route{
		{Event: "https://fhirgw.example/fhir/message-events|lab-order", Fillers: []string{"lab"}},
		{Event: "https://fhirgw.example/fhir/message-events|lab-order", Fillers: []string{"shadowed"}},
		{Event: "|eicr-case-report-message", Fillers: []string{"ph"}},
		{Event: "http://nchs.cdc.gov/vrdr_submission", Fillers: []string{"nchs", "archive"}},
		{Event: "https://fhirgw.example/EventDefinition/admit", Fillers: []string{"adt"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	coding := func(system, code string) envelope.Event {
		return envelope.Event{Kind: envelope.EventCoding, System: system, Code: code}
	}
	cases := []struct {
		name    string
		ev      envelope.Event
		fillers []string
	}{
		{"coding, first match wins", coding("https://fhirgw.example/fhir/message-events", "lab-order"), []string{"lab"}},
		{"coding without system", coding("", "eicr-case-report-message"), []string{"ph"}},
		{"uri, fan-out", envelope.Event{Kind: envelope.EventURI, URI: "http://nchs.cdc.gov/vrdr_submission"}, []string{"nchs", "archive"}},
		{"canonical with version", envelope.Event{Kind: envelope.EventCanonical, URI: "https://fhirgw.example/EventDefinition/admit|2.0"}, []string{"adt"}},
		{"other system", coding("https://other.example", "lab-order"), nil},
		{"system given where the route has none", coding("https://x.example", "eicr-case-report-message"), nil},
		{"uri is not a coding", envelope.Event{Kind: envelope.EventURI, URI: "https://fhirgw.example/fhir/message-events|lab-order"}, nil},
		{"unknown uri", envelope.Event{Kind: envelope.EventURI, URI: "http://nchs.cdc.gov/vrdr_invalid_type"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := table.Match(tc.ev)
			if tc.fillers == nil {
				if !errors.Is(err, ErrNoRoute) {
					t.Fatalf("want ErrNoRoute, got %+v %v", r, err)
				}
				return
			}
			if err != nil || len(r.Fillers) != len(tc.fillers) || r.Fillers[0] != tc.fillers[0] {
				t.Fatalf("got %+v %v, want fillers %v", r, err, tc.fillers)
			}
		})
	}
	if _, err := NewTable([]Route{{Event: "x"}}); err == nil {
		t.Error("a route without fillers was accepted")
	}
}

func TestCancelRoute(t *testing.T) {
	table, _ := NewTable([]Route{
		{Event: "urn:e|order", Fillers: []string{"lab"}, CancelEvent: "urn:e|order-cancel"},
		{Event: "urn:e|order-cancel", Fillers: []string{"lab"}},
	})
	if r, ok := table.CancelRoute(envelope.Event{Kind: envelope.EventCoding, System: "urn:e", Code: "order-cancel"}); !ok || r.Event != "urn:e|order" {
		t.Errorf("cancel route %+v %v", r, ok)
	}
	if _, ok := table.CancelRoute(envelope.Event{Kind: envelope.EventCoding, System: "urn:e", Code: "order"}); ok {
		t.Error("an order event taken for a cancellation")
	}
}
