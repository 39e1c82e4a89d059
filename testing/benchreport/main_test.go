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
