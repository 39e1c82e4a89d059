package envelope

import (
	"encoding/json"
	"flag"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	goldenfile "github.com/fhirgw/fhirgw/testing/golden"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite golden files with the current output")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// baseR4 and baseR5 are minimal valid messages that the rule tables mutate.
const baseR4 = `{
 "resourceType": "Bundle", "id": "bundle-1", "type": "message", "timestamp": "2026-11-20T09:20:00Z",
 "entry": [
  {"fullUrl": "urn:uuid:0d9d3a35-0000-4000-8000-000000000001",
   "resource": {"resourceType": "MessageHeader", "id": "header-1",
    "eventCoding": {"system": "https://fhirgw.example/fhir/message-events", "code": "lab-order"},
    "destination": [{"name": "lab", "endpoint": "https://lab.example/fhir"}],
    "source": {"name": "ehr", "endpoint": "https://ehr.example/fhir"},
    "focus": [{"reference": "urn:uuid:0d9d3a35-0000-4000-8000-000000000002"}]}},
  {"fullUrl": "urn:uuid:0d9d3a35-0000-4000-8000-000000000002",
   "resource": {"resourceType": "ServiceRequest", "id": "order-1", "status": "active", "intent": "order"}},
  {"fullUrl": "https://ehr.example/fhir/Patient/pat-1",
   "resource": {"resourceType": "Patient", "id": "pat-1"}}
 ]
}`

const baseR5 = `{
 "resourceType": "Bundle", "id": "bundle-1",
 "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:5e5e5e5e-0000-4000-8000-000000000001"},
 "type": "message", "timestamp": "2026-11-20T09:20:00Z",
 "entry": [
  {"fullUrl": "urn:uuid:0d9d3a35-0000-4000-8000-000000000001",
   "resource": {"resourceType": "MessageHeader", "id": "header-1",
    "eventCoding": {"system": "https://fhirgw.example/fhir/message-events", "code": "lab-order"},
    "destination": [{"name": "lab", "endpointUrl": "https://lab.example/fhir"}],
    "source": {"name": "ehr", "endpointUrl": "https://ehr.example/fhir"},
    "focus": [{"reference": "urn:uuid:0d9d3a35-0000-4000-8000-000000000002"}]}},
  {"fullUrl": "urn:uuid:0d9d3a35-0000-4000-8000-000000000002",
   "resource": {"resourceType": "ServiceRequest", "id": "order-1", "status": "active", "intent": "order"}},
  {"fullUrl": "https://ehr.example/fhir/Patient/pat-1",
   "resource": {"resourceType": "Patient", "id": "pat-1"}}
 ]
}`

// edit is a change to a decoded message: set (or, with del, remove) the
// value at a dotted path such as "entry.0.resource.source".
type edit struct {
	path  string
	value any
	del   bool
}

func set(path string, v any) edit { return edit{path: path, value: v} }
func del(path string) edit        { return edit{path: path, del: true} }

// raw parses a JSON literal used as an edit value.
func raw(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

// mutate applies edits to base and re-encodes it.
func mutate(t testing.TB, base string, edits ...edit) []byte {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(base), &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		keys := strings.Split(e.path, ".")
		parent := walkPath(t, doc, keys[:len(keys)-1])
		last := keys[len(keys)-1]
		switch p := parent.(type) {
		case map[string]any:
			if e.del {
				delete(p, last)
			} else {
				p[last] = e.value
			}
		case []any:
			i, err := strconv.Atoi(last)
			if err != nil || i >= len(p) {
				t.Fatalf("edit %s: bad index", e.path)
			}
			if e.del {
				t.Fatalf("edit %s: deleting array items is not supported; set the parent array", e.path)
			}
			p[i] = e.value
		default:
			t.Fatalf("edit %s: parent is %T", e.path, parent)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func walkPath(t testing.TB, v any, keys []string) any {
	t.Helper()
	for _, k := range keys {
		switch n := v.(type) {
		case map[string]any:
			v = n[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(n) {
				t.Fatalf("path element %q: bad index", k)
			}
			v = n[i]
		default:
			t.Fatalf("path element %q: cannot descend into %T", k, v)
		}
	}
	return v
}

// golden compares got with testdata/golden/name (-update rewrites it).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.JSON(t, filepath.Join("testdata", "golden", name), got, *update)
}
