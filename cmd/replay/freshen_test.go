package replay

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirgw/fhirgw/envelope"
)

// projectFixture reads a file of testing/fixtures.
func projectFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testing", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// counter makes predictable new ids.
func counter() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }
}

func parse(t *testing.T, b []byte) *envelope.Message {
	t.Helper()
	m, err := envelope.NewParser(envelope.Options{}).Parse(b, envelope.VersionAuto)
	if err != nil {
		t.Fatalf("a freshened message is invalid: %v\n%s", err, b)
	}
	return m
}

func TestFreshenRewritesTheIdentityAndNothingElse(t *testing.T) {
	f := NewFreshener(counter())
	orig := projectFixture(t, "r4/lab-order.json")
	got := f.Freshen(orig)
	m, o := parse(t, got), parse(t, orig)
	if m.Header.ID == o.Header.ID || m.BundleID == o.BundleID || m.Header.ID == m.BundleID {
		t.Fatalf("ids not freshened: header %s, bundle %s", m.Header.ID, m.BundleID)
	}
	if m.Entries[0].FullURL != "urn:uuid:"+m.Header.ID {
		t.Errorf("the header's fullUrl %s does not follow its id %s", m.Entries[0].FullURL, m.Header.ID)
	}
	// Every other byte is the original's.
	back := bytes.ReplaceAll(got, []byte(m.Header.ID), []byte(o.Header.ID))
	back = bytes.ReplaceAll(back, []byte(m.BundleID), []byte(o.BundleID))
	if !bytes.Equal(back, orig) {
		t.Errorf("more than the identities changed:\n%s", got)
	}
}

func TestFreshenKeepsWhatFixturesSayAboutEachOther(t *testing.T) {
	f := NewFreshener(counter())
	order := parse(t, f.Freshen(projectFixture(t, "r4/lab-order.json")))
	ack := parse(t, f.Freshen(projectFixture(t, "r4/lab-order-ack.json")))
	resend := parse(t, f.Freshen(projectFixture(t, "r4/lab-order-resend.json")))
	reused := parse(t, f.Freshen(projectFixture(t, "r4/lab-order-bundle-id-reused.json")))
	r5order := parse(t, f.Freshen(projectFixture(t, "r5/lab-order.json")))
	r5ack := parse(t, f.Freshen(projectFixture(t, "r5/lab-order-ack.json")))
	r5resend := parse(t, f.Freshen(projectFixture(t, "r5/lab-order-resend.json")))
	unmatched := parse(t, f.Freshen(projectFixture(t, "r4/unmatched-ack.json")))

	checks := []struct {
		what      string
		got, want string
		same      bool
	}{
		{"the R4 ack quotes the order's new MessageHeader.id", ack.Header.Response.Identifier.Value, order.Header.ID, true},
		{"an R4 resend keeps the order's new MessageHeader.id", resend.Header.ID, order.Header.ID, true},
		{"an R4 resend keeps its own new Bundle.id", resend.BundleID, order.BundleID, false},
		{"a reused Bundle.id stays the order's new Bundle.id", reused.BundleID, order.BundleID, true},
		{"a reused Bundle.id comes with its own MessageHeader.id", reused.Header.ID, order.Header.ID, false},
		{"the R5 ack quotes the order's new Bundle.identifier", r5ack.Header.Response.Identifier.String(), r5order.BundleIdentifier.String(), true},
		{"an R5 resend keeps the order's new Bundle.identifier", r5resend.Identity.Key(), r5order.Identity.Key(), true},
		{"a response quoting an unknown message still quotes it", unmatched.Header.Response.Identifier.Value, "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e99", true},
	}
	for _, c := range checks {
		if (c.got == c.want) != c.same {
			t.Errorf("%s: got %s, other %s", c.what, c.got, c.want)
		}
	}
	if !strings.HasPrefix(r5order.BundleIdentifier.Value, "urn:uuid:") || r5order.BundleIdentifier.Value == "urn:uuid:5e5e5e5e-0000-4000-8000-000000000001" {
		t.Errorf("R5 Bundle.identifier %s: want a new urn:uuid", r5order.BundleIdentifier.Value)
	}
}

func TestFreshenLeavesInvalidMessagesAlone(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testing", "fixtures", "invalid", "*.json"))
	if len(files) == 0 {
		t.Fatal("no invalid fixtures")
	}
	f := NewFreshener(nil)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Freshen(b); !bytes.Equal(got, b) {
			t.Errorf("%s was changed", file)
		}
	}
}
