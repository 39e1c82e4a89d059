package ack

import "testing"

func TestUnderPrefix(t *testing.T) {
	cases := []struct {
		target, prefix string
		want           bool
	}{
		{"https://ehr.stmarys.example/fhir/$process-message", "https://ehr.stmarys.example/fhir/", true},
		{"https://ehr.stmarys.example/fhir", "https://ehr.stmarys.example/fhir/", true},
		{"https://ehr.stmarys.example/fhirx/$process-message", "https://ehr.stmarys.example/fhir/", false},
		{"https://ehr.stmarys.example/other", "https://ehr.stmarys.example/fhir/", false},
		{"http://127.0.0.1:9000/cb", "http://127.0.0.1", true},
		{"http://127.0.0.1.evil.example/cb", "http://127.0.0.1", false},
		{"http://127.0.0.1@evil.example/cb", "http://127.0.0.1", false},
		{"http://user@127.0.0.1/cb", "http://127.0.0.1", false},
		{"https://127.0.0.1/cb", "http://127.0.0.1", false},
		{"http://127.0.0.1:9001/cb", "http://127.0.0.1:9000", false},
		{"http://127.0.0.1:9000/cb", "http://127.0.0.1:9000", true},
		{"HTTPS://EHR.STMARYS.EXAMPLE/fhir/x", "https://ehr.stmarys.example/fhir/", true},
		{"https://ehr.example/fhir/x", "https://ehr.example:443/fhir/", true},
		{"https://ehr.example:443/fhir/x", "https://ehr.example/fhir/", true},
		{"https://ehr.example:8443/fhir/x", "https://ehr.example:443/fhir/", false},
		{"http://ehr.example/fhir/x", "http://ehr.example:80/", true},
		{"not a url", "http://127.0.0.1", false},
		{"/relative", "http://127.0.0.1", false},
	}
	for _, tc := range cases {
		if got := UnderPrefix(tc.target, tc.prefix); got != tc.want {
			t.Errorf("UnderPrefix(%q, %q) = %v, want %v", tc.target, tc.prefix, got, tc.want)
		}
	}
}
