package envelope

import "testing"

func TestResolveReference(t *testing.T) {
	entries := []Entry{
		{FullURL: "urn:uuid:aaaa", ResourceType: "MessageHeader", ID: "mh"},
		{FullURL: "https://ehr.example/fhir/Patient/p1", ResourceType: "Patient", ID: "p1"},
		{ResourceType: "Bundle", ID: "doc-1"},
		{FullURL: "urn:uuid:bbbb", ResourceType: "OperationOutcome", ID: "oo-1"},
		{ResourceType: "Bundle", ID: "http://example.org/fhir/Odd-1"},
	}
	cases := []struct {
		ref      string
		idx      int
		byIDOnly bool
	}{
		{"urn:uuid:aaaa", 0, false},
		{"urn:uuid:cccc", -1, false},
		{"https://ehr.example/fhir/Patient/p1", 1, false},
		{"https://ehr.example/fhir/Patient/p1/_history/2", 1, false},
		{"https://other.example/fhir/Patient/p1", -1, false},
		{"Patient/p1", 1, false},
		{"Patient/p2", -1, false},
		{"Bundle/doc-1", 2, false},
		{"https://ehr.example/fhir/Bundle/doc-1", 2, false},
		{"OperationOutcome/oo-1", 3, false},
		{"oo-1", 3, true},
		{"http://example.org/fhir/Odd-1", 4, true},
		{"#contained", -1, false},
		{"", -1, false},
		{"a/b/c", -1, false},
		{"patient/p1", -1, false},
	}
	for _, tc := range cases {
		idx, byID := resolveReference(entries, tc.ref)
		if idx != tc.idx || byID != tc.byIDOnly {
			t.Errorf("%q: got (%d, %v), want (%d, %v)", tc.ref, idx, byID, tc.idx, tc.byIDOnly)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"": VersionAuto, "auto": VersionAuto, "4.0": R4, "4.0.1": R4, "R4": R4, "5.0": R5, "5.0.0": R5, "r5": R5} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("%q: got %v, %v", in, got, err)
		}
	}
	if _, err := ParseVersion("3.0"); err == nil {
		t.Error("3.0 accepted")
	}
}
