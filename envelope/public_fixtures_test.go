package envelope

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// publicFixtures is where the shared public message fixtures live, by default
// beside the project's root; FHIRGW_PUBLIC_FIXTURES overrides it.
func publicFixtures(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FHIRGW_PUBLIC_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures", "public")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("public fixtures not found at %s (set FHIRGW_PUBLIC_FIXTURES): %v", dir, err)
	}
	return dir
}

// publicVerdicts is the "Expected fhirgw verdicts" table of SOURCES.md for
// every file that is not a valid message: the error kind and the rule that
// must reject it. Every other file must be a valid message envelope.
var publicVerdicts = map[string]struct {
	kind error
	rule Rule
}{
	"hl7-fhir-r4-examples/MessageDefinition-patient-link-notification.json": {ErrNotMessage, RuleResourceType},
	"hl7-fhir-r4-examples/MessageDefinition-patient-link-response.json":     {ErrNotMessage, RuleResourceType},
	"hl7-fhir-r5-examples/Bundle-54f808cf-d159-4c9b-accb-c33eb20f0ecc.json": {ErrNotMessage, RuleBundleType},
	"hl7-fhir-r5-examples/Bundle-3d20ea4b-90dc-4d0d-b15a-c7a893389401.json": {ErrNotMessage, RuleBundleType},
	"hl7-fhir-r5-examples/Bundle-9601c07a-e34f-4945-93ca-6efb5394c995.json": {ErrNotMessage, RuleBundleType},
	"hl7-fhir-r5-examples/Bundle-fdd78223-f79f-43b4-8979-ad49d4ac248c.json": {ErrNotMessage, RuleBundleType},
	"nhs-eps/1-Process-Response-Send-400_INVALID_CHECKSUM.json":             {ErrNotMessage, RuleResourceType},
	"vital-records-dotnet/EmptyMessage.json":                                {ErrInvalid, RuleFirstEntry},
	"vital-records-dotnet/HeadlessMessage.json":                             {ErrInvalid, RuleFirstEntry},
	"vital-records-dotnet/EmptyTypePayload.json":                            {ErrInvalid, RuleBundleType},
	"vital-records-dotnet/MissingMessageType.json":                          {ErrInvalid, RuleEvent},
	"vital-records-dotnet/BadMessage.json":                                  {ErrMalformed, RuleJSON},
}

// publicVersions are the files that must be read as R5; every other message
// is R4.
var publicR5 = map[string]bool{
	"hl7-fhir-r5-examples/Bundle-0f322dbe-4f8d-4cbd-9ecb-bc8dc6f65f6a.json": true,
	"hl7-fhir-r5-examples/Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json": true,
	"hl7-fhir-r5-examples/Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json": true,
}

func TestPublicFixtures(t *testing.T) {
	dir := publicFixtures(t)
	p := NewParser(Options{})
	seen := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		seen++
		t.Run(rel, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := p.Parse(raw, VersionAuto)
			want, negative := publicVerdicts[rel]
			if !negative {
				if err != nil {
					t.Fatalf("want a valid message, got %v", err)
				}
				wantV := R4
				if publicR5[rel] {
					wantV = R5
				}
				if msg.Version != wantV {
					t.Errorf("read as %s, want %s", msg.Version.Name(), wantV.Name())
				}
				if msg.Identity.Value == "" || msg.Header.Event.Key() == "" {
					t.Errorf("identity %+v, event %q: both must be set", msg.Identity, msg.Header.Event.Key())
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, want.kind) {
				t.Fatalf("want %v, got %v", want.kind, err)
			}
			if e.Issues[0].Rule != want.rule {
				t.Errorf("first issue rule %q (%s), want %q", e.Issues[0].Rule, e.Issues[0].Diagnostics, want.rule)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < len(publicVerdicts) {
		t.Fatalf("walked %d files, fewer than the %d negative ones expected", seen, len(publicVerdicts))
	}
}
