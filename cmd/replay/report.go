package replay

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Verdicts of a result.
const (
	VerdictPass  = "pass"  // every expectation met
	VerdictFail  = "FAIL"  // an expectation not met
	VerdictError = "ERROR" // not sent, or not followed up
	VerdictSent  = "sent"  // nothing was expected
)

// Verdict is the result's one-word verdict.
func (r Result) Verdict() string {
	switch {
	case r.Error != "":
		return VerdictError
	case len(r.Differences) > 0:
		return VerdictFail
	case r.Expect.IsZero():
		return VerdictSent
	}
	return VerdictPass
}

// Outcome says in a few words what the message got.
func (r Result) Outcome() string {
	if r.Status == 0 {
		if r.Error != "" {
			return "error: " + r.Error
		}
		return "no answer"
	}
	var parts []string
	if r.Duplicate {
		parts = append(parts, "duplicate")
	}
	switch {
	case r.Status >= 400 && len(r.Issues) > 0:
		parts = append(parts, "rejected ("+strings.Join(r.Issues, ", ")+")")
	case r.Status >= 400:
		parts = append(parts, "rejected")
	case isTask(r.Location):
		parts = append(parts, "accepted")
	default:
		parts = append(parts, "recorded")
	}
	if r.Response != "" {
		parts = append(parts, "response "+r.Response)
	}
	if r.Task != "" {
		parts = append(parts, "task "+r.Task)
	}
	if len(r.Fillers) > 0 {
		parts = append(parts, "to "+strings.Join(r.Fillers, ", "))
	}
	if r.Error != "" {
		parts = append(parts, "error: "+r.Error)
	}
	return strings.Join(parts, ", ")
}

// Summary counts a run's results.
type Summary struct {
	Messages   int `json:"messages"`
	Passed     int `json:"passed"`
	Failed     int `json:"failed"`
	Errors     int `json:"errors"`
	Unchecked  int `json:"unchecked"`
	Duplicates int `json:"duplicates"`
	// Elapsed is the run's wall-clock time.
	Elapsed time.Duration `json:"-"`
}

// OK reports whether nothing failed.
func (s Summary) OK() bool { return s.Failed == 0 && s.Errors == 0 }

// Summarize counts results.
func Summarize(results []Result, elapsed time.Duration) Summary {
	s := Summary{Messages: len(results), Elapsed: elapsed}
	for _, r := range results {
		switch r.Verdict() {
		case VerdictPass:
			s.Passed++
		case VerdictFail:
			s.Failed++
		case VerdictError:
			s.Errors++
		default:
			s.Unchecked++
		}
		if r.Duplicate {
			s.Duplicates++
		}
	}
	return s
}

// String is the summary as one sentence.
func (s Summary) String() string {
	return fmt.Sprintf("%d messages in %s: %d passed, %d failed, %d errors, %d without expectations; %d answered as duplicates",
		s.Messages, s.Elapsed.Round(time.Millisecond), s.Passed, s.Failed, s.Errors, s.Unchecked, s.Duplicates)
}

// WriteTable writes the results as a table (file, status, outcome, time,
// verdict), then every difference, then the summary.
func WriteTable(w io.Writer, results []Result, s Summary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSTATUS\tOUTCOME\tTIME\tVERDICT")
	for _, r := range results {
		status := "-"
		if r.Status != 0 {
			status = fmt.Sprint(r.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, status, r.Outcome(), ms(r.Settled), r.Verdict())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	WriteFailures(w, results)
	_, err := fmt.Fprintln(w, s)
	return err
}

// WriteFailures writes one line per unmet expectation ("FAIL file:
// difference") and per message that could not be sent ("ERROR file: why").
func WriteFailures(w io.Writer, results []Result) {
	for _, r := range results {
		for _, d := range r.Differences {
			fmt.Fprintf(w, "FAIL %s: %s\n", r.Name, d)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "ERROR %s: %s\n", r.Name, r.Error)
		}
	}
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// WriteJSON writes the run as one JSON document: the target, the summary
// and every result with its verdict and times in milliseconds.
func WriteJSON(w io.Writer, target string, results []Result, s Summary) error {
	type result struct {
		Result
		Verdict   string  `json:"verdict"`
		Outcome   string  `json:"outcome"`
		ElapsedMs float64 `json:"elapsedMs"`
		SettledMs float64 `json:"settledMs"`
	}
	type summary struct {
		Summary
		OK        bool    `json:"ok"`
		ElapsedMs float64 `json:"elapsedMs"`
	}
	doc := struct {
		Target  string   `json:"target"`
		Summary summary  `json:"summary"`
		Results []result `json:"results"`
	}{Target: target, Summary: summary{Summary: s, OK: s.OK(), ElapsedMs: msf(s.Elapsed)}, Results: []result{}}
	for _, r := range results {
		doc.Results = append(doc.Results, result{Result: r, Verdict: r.Verdict(), Outcome: r.Outcome(), ElapsedMs: msf(r.Elapsed), SettledMs: msf(r.Settled)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteJUnit writes the run as JUnit XML: one test case per message, a
// failure per unmet expectation, an error when it could not be sent.
func WriteJUnit(w io.Writer, target string, results []Result, s Summary, started time.Time) error {
	type message struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      string   `xml:"time,attr"`
		Failure   *message `xml:"failure,omitempty"`
		Error     *message `xml:"error,omitempty"`
		SystemOut string   `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		Name      string     `xml:"name,attr"`
		Tests     int        `xml:"tests,attr"`
		Failures  int        `xml:"failures,attr"`
		Errors    int        `xml:"errors,attr"`
		Skipped   int        `xml:"skipped,attr"`
		Time      string     `xml:"time,attr"`
		Timestamp string     `xml:"timestamp,attr"`
		Cases     []testcase `xml:"testcase"`
	}
	type testsuites struct {
		XMLName  xml.Name    `xml:"testsuites"`
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Time     string      `xml:"time,attr"`
		Suites   []testsuite `xml:"testsuite"`
	}
	secs := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	suite := testsuite{Name: "fhirgw replay " + target, Tests: s.Messages, Failures: s.Failed, Errors: s.Errors,
		Time: secs(s.Elapsed), Timestamp: started.UTC().Format("2006-01-02T15:04:05")}
	for _, r := range results {
		c := testcase{Name: r.Name, Classname: "fhirgw.replay", Time: secs(r.Settled), SystemOut: r.Outcome()}
		switch r.Verdict() {
		case VerdictFail:
			c.Failure = &message{Message: strings.Join(r.Differences, "; "), Type: "mismatch", Text: strings.Join(r.Differences, "\n")}
		case VerdictError:
			c.Error = &message{Message: r.Error, Type: "error", Text: r.Error}
		}
		suite.Cases = append(suite.Cases, c)
	}
	doc := testsuites{Name: "fhirgw replay", Tests: s.Messages, Failures: s.Failed, Errors: s.Errors, Time: secs(s.Elapsed), Suites: []testsuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
