package ack

import (
	"errors"
	"net/url"
	"testing"
)

func TestCallbackURL(t *testing.T) {
	cases := []struct {
		raw, want string // want "" means refused
	}{
		{"https://ehr.stmarys.example/fhir/$process-message", "https://ehr.stmarys.example/fhir/$process-message"},
		{"HTTPS://EHR.StMarys.Example/fhir/", "https://ehr.stmarys.example/fhir/"},
		{"https://ehr.example:443/fhir", "https://ehr.example/fhir"},
		{"http://ehr.example:80/fhir", "http://ehr.example/fhir"},
		{"http://ehr.example:443/fhir", "http://ehr.example:443/fhir"},
		{"http://127.0.0.1:9000/cb?x=1#frag", "http://127.0.0.1:9000/cb?x=1"},
		{"http://[::1]:9000/cb", "http://[::1]:9000/cb"},
		{"http://[::1]/cb", "http://[::1]/cb"},
		{"http://ehr.example", "http://ehr.example/"},
		{"http://ehr.example/fhir/./cb", "http://ehr.example/fhir/cb"},
		{"http://ehr.example/fhir/x/../cb", "http://ehr.example/fhir/cb"},
		{"http://ehr.example/fhir/x/..", "http://ehr.example/fhir/"},
		{"http://ehr.example/fhir/.", "http://ehr.example/fhir/"},
		{"http://ehr.example/fhir/../admin", "http://ehr.example/admin"},
		{"http://ehr.example/a%41b/%24process-message", "http://ehr.example/aAb/$process-message"},
		{"http://ehr.example/a%20b", "http://ehr.example/a%20b"},
		{"http://ehr.example/a%25b", "http://ehr.example/a%25b"},
		{"http://ehr.example/a%3Fb", "http://ehr.example/a%3Fb"},
		// Refused.
		{"http://ehr.example/fhir/%2e%2e/admin", ""},
		{"http://ehr.example/fhir/%2E%2E/admin", ""},
		{"http://ehr.example/fhir/.%2e/admin", ""},
		{"http://ehr.example/fhir/%2e/cb", ""},
		{"http://ehr.example/fhir%2f..%2fadmin", ""},
		{"http://ehr.example/fhir/..%5cadmin", ""},
		{`http://ehr.example/fhir\..\admin`, ""},
		{"http://ehr.example/fhir/%00", ""},
		{"http://ehr.example/..", ""},
		{"http://ehr.example/fhir/%zz", ""},
		{"http://user:pw@ehr.example/fhir", ""},
		{"http://ehr.example@evil.example/fhir", ""},
		{"ftp://ehr.example/fhir", ""},
		{"amqp-reply:q?correlation_id=1", ""},
		{"/relative/path", ""},
		{"http:///no-host", ""},
		{"http://ehr.example:0/x", ""},
		{"http://ehr.example:99999/x", ""},
		{"http://ehr.example:x/y", ""},
		{"not a url", ""},
		{"", ""},
	}
	for _, tc := range cases {
		u, err := CallbackURL(tc.raw)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("CallbackURL(%q) = %s, want it refused", tc.raw, u)
		case tc.want == "" && !errors.Is(err, ErrCallbackURL):
			t.Errorf("CallbackURL(%q) error %v does not wrap ErrCallbackURL", tc.raw, err)
		case tc.want != "" && err != nil:
			t.Errorf("CallbackURL(%q): %v, want %s", tc.raw, err, tc.want)
		case tc.want != "" && u.String() != tc.want:
			t.Errorf("CallbackURL(%q) = %s, want %s", tc.raw, u, tc.want)
		}
		if err == nil {
			// What is dialled parses back to itself.
			again, err := CallbackURL(u.String())
			if err != nil || again.String() != u.String() {
				t.Errorf("CallbackURL(%q) is not stable: %v, %v", u, again, err)
			}
		}
	}
}

func TestOrigin(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"https://EHR.example/fhir", "https://ehr.example:443"},
		{"https://ehr.example:443/other", "https://ehr.example:443"},
		{"http://ehr.example/fhir", "http://ehr.example:80"},
		{"http://ehr.example:8080/fhir", "http://ehr.example:8080"},
		{"http://[::1]:9/x", "http://[::1]:9"},
		{ReplyURL("fhirgw.reply.st-marys", "c-1"), "amqp-reply:"},
		{ReplyURL("other", "c-2"), "amqp-reply:"},
	}
	for _, tc := range cases {
		u, err := url.Parse(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := origin(u); got != tc.want {
			t.Errorf("origin(%s) = %s, want %s", tc.raw, got, tc.want)
		}
	}
}
