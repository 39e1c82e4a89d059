package gateway

import (
	"net/url"
	"testing"

	"github.com/fhirgw/fhirgw/ack"
)

func TestCallbackAllowed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Callbacks.Allow = []string{"https://ehr.stmarys.example/fhir/", "http://127.0.0.1:9000"}
	cases := []struct {
		raw  string
		want bool
	}{
		{"https://ehr.stmarys.example/fhir/$process-message", true},
		{"HTTPS://EHR.STMARYS.EXAMPLE:443/fhir/x/../$process-message", true},
		{"https://ehr.stmarys.example/fhir/../admin", false},
		{"https://ehr.stmarys.example/fhir/%2e%2e/admin", false}, // CallbackURL refuses it
		{"https://ehr.stmarys.example/fhirx/", false},
		{"http://127.0.0.1:9000/cb", true},
		{"http://127.0.0.1:9001/cb", false},
	}
	for _, tc := range cases {
		u, err := ack.CallbackURL(tc.raw)
		if got := err == nil && cfg.CallbackAllowed(u); got != tc.want {
			t.Errorf("CallbackAllowed(%q) = %v (%v), want %v", tc.raw, got, err, tc.want)
		}
	}
	if cfg.CallbackAllowed(nil) || cfg.CallbackAllowed(&url.URL{Scheme: "https", Host: "ehr.stmarys.example", Path: "/fhir/"}) != true {
		t.Error("nil is not allowed; a plain URL under a prefix is")
	}
}
