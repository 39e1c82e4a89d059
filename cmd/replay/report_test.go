package replay

import (
	"bytes"
	"encoding/xml"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/testing/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sampleResults are one result of each kind.
func sampleResults() []Result {
	yes := true
	return []Result{
		{Name: "r4/lab-order.json", Status: 202, Issues: []string{"informational"}, Location: "http://gw/fhir/Task/1", Response: "ok", Task: "completed",
			Fillers: []string{"lab"}, Elapsed: 3 * time.Millisecond, Settled: 110 * time.Millisecond,
			Expect: Expect{Status: 202, Response: "ok", Task: "completed", Fillers: []string{"lab"}}},
		{Name: "r4/lab-order-resend.json", Status: 202, Issues: []string{"informational"}, Location: "http://gw/fhir/Task/1", Duplicate: true,
			Elapsed: time.Millisecond, Settled: time.Millisecond, Expect: Expect{Status: 202, Duplicate: &yes}},
		{Name: "invalid/no-event.json", Status: 400, Issues: []string{"required"}, Diagnostics: "MessageHeader.event[x] is missing",
			Settled: time.Millisecond, Expect: Expect{Status: 400, Issue: "structure"},
			Differences: []string{"issue: want structure, got required"}},
		{Name: "extra.json", Status: 422, Issues: []string{"not-supported"}, Settled: 2 * time.Millisecond},
		{Name: "r4/lab-result.json", Error: "Post \"http://gw/fhir/$process-message\": connection refused", Expect: Expect{Status: 202}},
	}
}

func TestReportsMatchTheirGoldenFiles(t *testing.T) {
	results := sampleResults()
	s := Summarize(results, 1500*time.Millisecond)
	if s.Passed != 2 || s.Failed != 1 || s.Errors != 1 || s.Unchecked != 1 || s.Duplicates != 1 || s.OK() {
		t.Errorf("summary %+v", s)
	}
	var table, js, junit bytes.Buffer
	if err := WriteTable(&table, results, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, "http://gw/fhir", results, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteJUnit(&junit, "http://gw/fhir", results, s, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	golden.Bytes(t, filepath.Join("testdata", "table.txt"), table.Bytes(), *update)
	golden.JSON(t, filepath.Join("testdata", "results.json"), js.Bytes(), *update)
	golden.Bytes(t, filepath.Join("testdata", "junit.xml"), junit.Bytes(), *update)

	// The JUnit file is JUnit XML: it parses, and counts what the run did.
	var doc struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Errors   int      `xml:"errors,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &doc); err != nil {
		t.Fatalf("the JUnit output does not parse: %v", err)
	}
	if doc.Tests != 5 || doc.Failures != 1 || doc.Errors != 1 || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 5 ||
		doc.Suites[0].Cases[2].Failure == nil || doc.Suites[0].Cases[4].Error == nil {
		t.Errorf("JUnit document %+v", doc)
	}
}

func TestProgressWritesALinePerMessageOffATerminal(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, 2, false)
	for _, r := range sampleResults()[:2] {
		p.Done(r)
	}
	p.Finish()
	want := "pass  r4/lab-order.json accepted, response ok, task completed, to lab (110ms)\n" +
		"pass  r4/lab-order-resend.json duplicate, accepted (1ms)\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	out.Reset()
	bar := NewProgress(&out, 2, true)
	bar.Done(sampleResults()[2])
	bar.Finish()
	if want := "\r[###############...............] 1/2, 1 failed \n"; out.String() != want {
		t.Errorf("bar %q, want %q", out.String(), want)
	}
}
