package replay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeManifest(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"a.json", "b.json", "sub/c.json"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestManifestErrorsNameTheProblem(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"unknown key", "messages:\n  - file: a.json\n    stauts: 200\n", "field stauts not found"},
		{"expectation in defaults", "defaults:\n  status: 200\nmessages:\n  - file: a.json\n", "field status not found"},
		{"no messages", "defaults:\n  within: 1s\n", "lists no messages"},
		{"no file", "messages:\n  - status: 200\n", "no file"},
		{"missing file", "messages:\n  - file: nope.json\n", "nope.json"},
		{"bad status", "messages:\n  - file: a.json\n    status: 42\n", "42 is no HTTP status"},
		{"bad response", "messages:\n  - file: a.json\n    response: fine\n", `response "fine"`},
		{"bad task", "messages:\n  - file: a.json\n    task: done\n", `task "done"`},
		{"bad duration", "messages:\n  - file: a.json\n    within: soon\n", "soon"},
		{"after a later one", "messages:\n  - file: a.json\n    after: [b.json]\n  - file: b.json\n", "after b.json, which is not an earlier message"},
		{"same name twice", "messages:\n  - file: a.json\n  - file: a.json\n", "two messages are named a.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadManifest(writeManifest(t, tc.body))
			if err == nil {
				_, err = m.Plan("")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestManifestPlan(t *testing.T) {
	path := writeManifest(t, `defaults:
  within: 3s
  async: true
messages:
  - file: a.json
    filler: lab
    fillers: [archive]
  - file: b.json
    after: [a.json]
    async: false
  - name: c
    file: sub/c.json
    after: [b.json]
    within: 1s
`)
	m, err := LoadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := m.Plan("")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 3 || !plan[0].Async || plan[1].Async || plan[0].Within.Seconds() != 3 || plan[2].Within.Seconds() != 1 {
		t.Errorf("plan %+v", plan)
	}
	if got := strings.Join(plan[0].Expect.Fillers, ","); got != "lab,archive" {
		t.Errorf("fillers %s", got)
	}
	// Only sub/: c, and what it waits for (b, and b's a).
	only, err := m.Plan("", filepath.Join(filepath.Dir(path), "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if len(only) != 3 || only[2].Name != "c" || only[2].After[0] != 1 {
		t.Errorf("filtered plan %+v", only)
	}
	if _, err := m.Plan("", filepath.Join(filepath.Dir(path), "elsewhere")); err == nil {
		t.Error("a filter matching nothing gave a plan")
	}
}
