package envelope

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestParseKeepsTheOriginalBytes(t *testing.T) {
	in := []byte(baseR4)
	before := bytes.Clone(in)
	msg, err := NewParser(Options{}).Parse(in, R4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, before) {
		t.Fatal("Parse changed its input")
	}
	if &msg.Raw[0] != &in[0] || len(msg.Raw) != len(in) {
		t.Fatal("Message.Raw is not the input slice")
	}
}

func TestParseReadsTheEnvelope(t *testing.T) {
	msg, err := NewParser(Options{}).Parse([]byte(baseR5), VersionAuto)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{
		Version:          R5,
		BundleID:         "bundle-1",
		BundleIdentifier: Identifier{System: "urn:ietf:rfc:3986", Value: "urn:uuid:5e5e5e5e-0000-4000-8000-000000000001"},
		Timestamp:        "2026-11-20T09:20:00Z",
		Identity:         Identity{Source: FromBundleIdentifier, System: "urn:ietf:rfc:3986", Value: "urn:uuid:5e5e5e5e-0000-4000-8000-000000000001"},
	}
	got := *msg
	if got.Version != want.Version || got.BundleID != want.BundleID || got.BundleIdentifier != want.BundleIdentifier ||
		got.Timestamp != want.Timestamp || got.Identity != want.Identity {
		t.Errorf("got %+v", got)
	}
	if k := msg.Header.Event.Key(); k != "coding:https://fhirgw.example/fhir/message-events|lab-order" {
		t.Errorf("event key %q", k)
	}
	if msg.Header.ID != "header-1" || msg.Header.Source.URL != "https://ehr.example/fhir" || msg.Header.Source.Name != "ehr" {
		t.Errorf("header %+v", msg.Header)
	}
	if e := msg.Entries; len(e) != 3 || e[2].FullURL != "https://ehr.example/fhir/Patient/pat-1" || e[2].ResourceType != "Patient" || e[2].ID != "pat-1" {
		t.Errorf("entries %+v", msg.Entries)
	}
	if msg.IsResponse() {
		t.Error("a request reported as a response")
	}
}

func TestExplicitVersionMismatchIsExplained(t *testing.T) {
	_, err := NewParser(Options{}).Parse([]byte(baseR5), R4)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *Error, got %v", err)
	}
	if !hasIssue(e.Issues, RuleVersion, "Bundle") {
		t.Errorf("no hint that the message looks like R5: %+v", e.Issues)
	}
}

func TestDefaultVersion(t *testing.T) {
	// Neither R4 nor R5 markers: no endpoints, a Coding event.
	in := mutate(t, baseR5, set(h+".source", raw(`{"name":"ehr"}`)), del(h+".destination"))
	for _, v := range []Version{R4, R5} {
		msg, err := NewParser(Options{DefaultVersion: v}).Parse(in, VersionAuto)
		if v == R4 {
			// As R4 the source has no endpoint.
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("default R4: got %v, want ErrInvalid", err)
			}
			continue
		}
		if err != nil || msg.Version != R5 {
			t.Errorf("default R5: got %v, %v", msg, err)
		}
	}
}

func TestParserIsSafeForConcurrentUse(t *testing.T) {
	p := NewParser(Options{})
	inputs := [][]byte{[]byte(baseR4), []byte(baseR5), []byte(`{"resourceType":"Bundle",`)}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				in := inputs[i%len(inputs)]
				_, err := p.Parse(in, VersionAuto)
				if (err == nil) != (i%len(inputs) != 2) {
					t.Errorf("input %d: %v", i%len(inputs), err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestProjectFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testing", "fixtures", "r[45]", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no project fixtures: %v", err)
	}
	p := NewParser(Options{})
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := p.Parse(raw, VersionAuto)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := filepath.Base(filepath.Dir(f)); msg.Version.Name() != "R"+want[1:] {
			t.Errorf("%s read as %s", f, msg.Version.Name())
		}
		for _, is := range msg.Issues {
			if is.Severity == SeverityWarning {
				t.Errorf("%s: unexpected warning %s", f, is.Diagnostics)
			}
		}
	}
}

func TestParseReadsWhatCorrelationNeeds(t *testing.T) {
	in := mutate(t, baseR4, set("entry.1.resource", raw(`{"resourceType":"Task","id":"t1","status":"in-progress",
		"identifier":[{"system":"urn:lab","value":"T-1"}],
		"basedOn":[{"reference":"ServiceRequest/order-1"},{"identifier":{"system":"urn:placer","value":"ORD-1"}}],
		"focus":{"reference":"urn:uuid:0d9d3a35-0000-4000-8000-000000000002"},
		"businessStatus":{"coding":[{"code":"specimen-received"}]}}`)),
		set(h+".focus", raw(`[{"reference":"Task/t1"}]`)))
	msg, err := NewParser(Options{}).Parse(in, R4)
	if err != nil {
		t.Fatal(err)
	}
	task := msg.Entries[1]
	if task.Status != "in-progress" || task.BusinessStatus != "specimen-received" || len(task.Identifiers) != 1 ||
		task.Identifiers[0] != (Identifier{System: "urn:lab", Value: "T-1"}) || len(task.BasedOn) != 2 ||
		task.BasedOn[0].Reference != "ServiceRequest/order-1" || task.BasedOn[1].Identifier.Value != "ORD-1" ||
		task.Focus == nil || task.Focus.Reference != "urn:uuid:0d9d3a35-0000-4000-8000-000000000002" {
		t.Errorf("task entry %+v", task)
	}
}
