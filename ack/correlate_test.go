package ack

import (
	"github.com/fhirgw/fhirgw/ack/ledger"
	"slices"
	"testing"

	"github.com/fhirgw/fhirgw/envelope"
)

func parse(t *testing.T, s string) *envelope.Message {
	t.Helper()
	m, err := envelope.NewParser(envelope.Options{}).Parse([]byte(s), envelope.R4)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const order = `{"resourceType":"Bundle","id":"b1","type":"message","entry":[
 {"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000001","resource":{"resourceType":"MessageHeader","id":"h1",
  "eventCoding":{"system":"urn:e","code":"order"},"source":{"endpoint":"https://ehr.example/fhir"},
  "focus":[{"reference":"urn:uuid:11111111-0000-4000-8000-000000000002"}]}},
 {"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000002","resource":{"resourceType":"ServiceRequest","id":"sr-1",
  "identifier":[{"system":"urn:placer","value":"ORD-1"}],"status":"active","intent":"order"}}]}`

func progress(resources string) string {
	return `{"resourceType":"Bundle","id":"p1","type":"message","entry":[
 {"fullUrl":"urn:uuid:22222222-0000-4000-8000-000000000001","resource":{"resourceType":"MessageHeader","id":"p1",
  "eventCoding":{"system":"urn:e","code":"progress"},"source":{"endpoint":"https://lab.example/fhir"}}},` + resources + `]}`
}

func TestFocusAndProgressKeysMeet(t *testing.T) {
	focus := FocusKeys(parse(t, order))
	want := []string{"ref:ServiceRequest/sr-1", "id:urn:placer|ORD-1"}
	if !slices.Equal(focus, want) {
		t.Fatalf("focus keys %v, want %v", focus, want)
	}
	cases := map[string]string{
		"task basedOn reference":  `{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Task","id":"t","status":"in-progress","intent":"order","basedOn":[{"reference":"ServiceRequest/sr-1"}]}}`,
		"task focus identifier":   `{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Task","id":"t","status":"in-progress","intent":"order","focus":{"identifier":{"system":"urn:placer","value":"ORD-1"}}}}`,
		"report basedOn url":      `{"fullUrl":"urn:uuid:3","resource":{"resourceType":"DiagnosticReport","id":"r","status":"final","basedOn":[{"reference":"urn:uuid:11111111-0000-4000-8000-000000000002"}]}}`,
		"absolute basedOn":        `{"fullUrl":"urn:uuid:3","resource":{"resourceType":"DiagnosticReport","id":"r","status":"final","basedOn":[{"reference":"https://ehr.example/fhir/ServiceRequest/sr-1"}]}}`,
		"basedOn something else":  `{"fullUrl":"urn:uuid:3","resource":{"resourceType":"DiagnosticReport","id":"r","status":"final","basedOn":[{"reference":"ServiceRequest/other"}]}}`,
		"no pointer at all":       `{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Observation","id":"o","status":"final"}}`,
		"observation with focus?": `{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Observation","id":"o","status":"final","focus":[{"reference":"ServiceRequest/sr-1"}]}}`,
	}
	// A urn:uuid: pointer means nothing outside its own Bundle: no match.
	matches := map[string]bool{"task basedOn reference": true, "task focus identifier": true, "absolute basedOn": true}
	for name, res := range cases {
		keys := ProgressKeys(parse(t, progress(res)))
		hit := slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(focus, k) })
		if hit != matches[name] {
			t.Errorf("%s: keys %v, match %v, want %v", name, keys, hit, matches[name])
		}
	}
}

func TestProgress(t *testing.T) {
	cases := []struct {
		res      string
		status   ledger.Status
		business string
	}{
		{`{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Task","id":"t","status":"in-progress","intent":"order","businessStatus":{"text":"specimen received"}}}`, "in-progress", "specimen received"},
		{`{"fullUrl":"urn:uuid:3","resource":{"resourceType":"DiagnosticReport","id":"r","status":"preliminary"}}`, "in-progress", "result preliminary"},
		{`{"fullUrl":"urn:uuid:3","resource":{"resourceType":"DiagnosticReport","id":"r","status":"final"}}`, "completed", "result final"},
		{`{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Patient","id":"p"}}`, "", ""},
	}
	for _, tc := range cases {
		if s, b := Progress(parse(t, progress(tc.res))); s != tc.status || b != tc.business {
			t.Errorf("%s: %q %q, want %q %q", tc.res, s, b, tc.status, tc.business)
		}
	}
}
