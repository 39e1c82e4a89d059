// Package golden compares what a test produced with a file of what it should
// produce, and rewrites the file when the test runs with -update.
package golden

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// JSON compares got, indented, with the golden file at path.
func JSON(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("%s: the output is not JSON: %v\n%s", path, err, got)
	}
	pretty.WriteByte('\n')
	Bytes(t, path, pretty.Bytes(), update)
}

// Bytes compares got with the golden file at path, byte for byte.
func Bytes(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (-update rewrites it)\n got: %s\nwant: %s", path, got, want)
	}
}
