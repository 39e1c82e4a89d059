package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, change its input, or
// answer without a usable verdict, and that every valid message can be
// answered with a response that is itself valid. Seeds: the minimal messages,
// the project fixtures and, when present, the public fixtures.
func FuzzParse(f *testing.F) {
	f.Add([]byte(baseR4))
	f.Add([]byte(baseR5))
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader"}}]}`))
	f.Add([]byte("{\"a\":\"\xff\"}"))
	f.Add([]byte(nested(100)))
	for _, dir := range []string{filepath.Join("..", "testing", "fixtures"), os.Getenv("FHIRGW_PUBLIC_FIXTURES"), filepath.Join("..", "..", "shared", "fixtures", "public")} {
		if dir == "" {
			continue
		}
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
				if b, err := os.ReadFile(path); err == nil {
					f.Add(b)
				}
			}
			return nil
		})
	}
	p := NewParser(Options{})
	f.Fuzz(func(t *testing.T, in []byte) {
		before := bytes.Clone(in)
		msg, err := p.Parse(in, VersionAuto)
		if !bytes.Equal(in, before) {
			t.Fatal("Parse changed its input")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Issues) == 0 || !e.Issues[0].IsError() {
				t.Fatalf("rejection without an error issue: %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimit) && !errors.Is(err, ErrNotMessage) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("rejection of unknown kind: %v", err)
			}
			if !json.Valid(e.Outcome().JSON()) {
				t.Fatal("the OperationOutcome is not JSON")
			}
			return
		}
		if !bytes.Equal(msg.Raw, in) || msg.Identity.Value == "" || msg.Header.Event.Key() == "" {
			t.Fatalf("valid message without raw bytes, identity or event: %+v", msg)
		}
		out, err := fixedResponder().Response(msg, ResponseOK, nil)
		if err != nil {
			t.Fatalf("cannot answer a valid message: %v", err)
		}
		if _, err := p.Parse(out, msg.Version); err != nil {
			t.Fatalf("the response to a valid message is invalid: %v\n%s", err, out)
		}
	})
}
