package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := `goos: linux
BenchmarkParse/5KB/envelope-2         	   58611	     20000 ns/op	 274.98 MB/s	    7673 B/op	     130 allocs/op
BenchmarkParse/5KB/envelope-2         	   58611	     22000 ns/op	 274.98 MB/s	    7673 B/op	     130 allocs/op
BenchmarkParse/5KB/baseline-json-map-2         	   21762	     50000 ns/op	 101.97 MB/s	   20960 B/op	     440 allocs/op
BenchmarkOther/x-2   10   5 ns/op
PASS
`
	var out bytes.Buffer
	if err := report(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, in) {
		t.Error("the benchmark output is not copied through")
	}
	if !strings.Contains(got, "BenchmarkParse/5KB/envelope") || !strings.Contains(got, "0.42x") || !strings.Contains(got, "2.38x") {
		t.Errorf("no cost 0.42x (mean 21000 / 50000) and throughput 2.38x in:\n%s", got)
	}
	if strings.Contains(got[len(in):], "BenchmarkOther") {
		t.Error("a group without baseline was reported")
	}
}

func TestReportAloneIsABaselineAndOtherMetricsAreCompared(t *testing.T) {
	in := `BenchmarkPushHealthyPlacer/alone-2   100   1000 ns/op   400 ns/answer   300 p50-ns/answer
BenchmarkPushHealthyPlacer/alone-2   100   1000 ns/op   600 ns/answer   300 p50-ns/answer
BenchmarkPushHealthyPlacer/with-hanging-placer-2   100   1500 ns/op   1000 ns/answer   600 p50-ns/answer
`
	var out bytes.Buffer
	if err := report(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()[len(in):]
	for _, want := range []string{"BenchmarkPushHealthyPlacer/with-hanging-placer", "alone", "1.50x", "0.67x", // ns/op
		"ns/answer", "2.00x", // 1000 against the mean 500
		"p50-ns/answer"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Count(got, "2.00x") != 2 { // ns/answer and p50-ns/answer
		t.Errorf("want the two metrics' ratios of 2.00x in:\n%s", got)
	}
}
