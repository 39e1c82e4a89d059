package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/samplefiller"
)

// `fhirgw replay` against a gateway running the demo configuration: the
// project's manifest passes (exit 0, JSON on stdout); a manifest with a wrong
// expectation exits 1 naming the file and the difference, and its --junit
// file is JUnit XML.
func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	cfg, err := gateway.LoadConfig(filepath.Join("..", "demo", "fhirgw.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	s := gatewaytest.Start(t, cfg)
	s.RunFiller(t, samplefiller.Config{Queue: s.Topology.FillerQueue("lab"), Progress: true})
	manifest := filepath.Join("..", "fixtures", "manifest.yaml")

	replay := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, append([]string{"replay", "--target", s.Base}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}

	code, stdout, stderr := replay("--manifest", manifest, "--fresh-ids", "--json")
	var doc struct {
		Summary struct {
			Messages, Passed int
			OK               bool
		}
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != 0 || !doc.Summary.OK || doc.Summary.Passed != doc.Summary.Messages {
		t.Fatalf("exit %d, %v\nstdout %s\nstderr %s", code, err, stdout, stderr)
	}

	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(string(raw), "{file: invalid/no-event.json, status: 400, issue: required}",
		"{file: invalid/no-event.json, status: 422, issue: required}", 1)
	if wrong == string(raw) {
		t.Fatal("manifest edit failed")
	}
	wrongPath := filepath.Join(dir, "wrong.yaml")
	if err := os.WriteFile(wrongPath, []byte(wrong), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(filepath.Dir(manifest))
	if err != nil {
		t.Fatal(err)
	}
	junit := filepath.Join(dir, "junit.xml")
	code, stdout, stderr = replay("--manifest", wrongPath, "--root", root, "--fresh-ids", "--junit", junit)
	if code != 1 || !strings.Contains(stdout, "FAIL invalid/no-event.json: status: want 422, got 400") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if strings.Count(stdout, "\nFAIL ") != 1 {
		t.Errorf("more than the wrong expectation failed:\n%s", stdout)
	}
	x, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Suite    []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(x, &suites); err != nil {
		t.Fatalf("--junit wrote no JUnit XML: %v\n%s", err, x)
	}
	failed := ""
	for _, c := range suites.Suite[0].Cases {
		if c.Failure != nil {
			failed += c.Name + ": " + c.Failure.Message
		}
	}
	if suites.Tests != doc.Summary.Messages || suites.Failures != 1 || failed != "invalid/no-event.json: status: want 422, got 400" {
		t.Errorf("JUnit: %d tests, %d failures (%s)", suites.Tests, suites.Failures, failed)
	}

	if code, _, stderr := replay(); code != 2 || !strings.Contains(stderr, "name the files or directories") {
		t.Errorf("no files: exit %d, %s", code, stderr)
	}
}
