// Command benchreport reads `go test -bench` output on stdin, copies it to
// stdout, and then prints, for every benchmark group that has a baseline
// sub-benchmark (named baseline-*, or alone for a benchmark that measures
// something alone and beside a disturbance), each other sub-benchmark's
// cost as a ratio of that baseline, and the ratio of every other metric
// both report (b.ReportMetric units such as p99-ms): all measured in the
// same run on the same machine.
//
//	go test -run '^$' -bench . -benchmem ./... | go run ./testing/benchreport
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	if err := report(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
}

// result is the mean of every run of one benchmark.
type result struct {
	runs          int
	nsPerOp       float64
	allocsPerOp   float64
	hasAllocStats bool
	// metrics are the means of the other units (ReportMetric's), in the
	// order first seen; counts how many runs reported each.
	metrics map[string]float64
	counts  map[string]int
	units   []string
}

// isBaseline reports whether a sub-benchmark's name marks its group's
// baseline.
func isBaseline(sub string) bool { return strings.HasPrefix(sub, "baseline") || sub == "alone" }

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func report(in io.Reader, out io.Writer) error {
	results := map[string]*result{}
	var order []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		fmt.Fprintln(out, text)
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		r := results[m[1]]
		if r == nil {
			r = &result{}
			results[m[1]] = r
			order = append(order, m[1])
		}
		r.add(m[2])
	}
	if err := sc.Err(); err != nil {
		return err
	}
	groups := map[string][]string{}
	var groupOrder []string
	for _, name := range order {
		i := strings.LastIndex(name, "/")
		if i < 0 {
			continue
		}
		g := name[:i]
		if _, ok := groups[g]; !ok {
			groupOrder = append(groupOrder, g)
		}
		groups[g] = append(groups[g], name)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := false
	var extra []string // rows of the other metrics' table
	for _, g := range groupOrder {
		var base string
		for _, name := range groups[g] {
			if isBaseline(name[len(g)+1:]) {
				base = name
			}
		}
		if base == "" {
			continue
		}
		if !header {
			fmt.Fprintln(out, "\nEach benchmark beside its baseline from the same run: cost = ns/op ÷ baseline ns/op; throughput = its inverse.")
			fmt.Fprintln(tw, "benchmark\tns/op\tallocs/op\tbaseline\tbaseline ns/op\tbaseline allocs/op\tcost\tthroughput\t")
			header = true
		}
		b := results[base]
		names := groups[g]
		sort.Strings(names)
		for _, name := range names {
			if name == base {
				continue
			}
			r := results[name]
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.0f\t%s\t%.2fx\t%.2fx\t\n", name, r.nsPerOp, r.allocs(), base[len(g)+1:], b.nsPerOp, b.allocs(),
				r.nsPerOp/b.nsPerOp, b.nsPerOp/r.nsPerOp)
			for _, unit := range r.units {
				if bv, ok := b.metrics[unit]; ok && bv != 0 {
					extra = append(extra, fmt.Sprintf("%s\t%s\t%.4g\t%s\t%.4g\t%.2fx\t", name, unit, r.metrics[unit], base[len(g)+1:], bv, r.metrics[unit]/bv))
				}
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(extra) == 0 {
		return nil
	}
	fmt.Fprintln(out, "\nTheir other metrics beside the baseline's: ratio = value ÷ baseline value.")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "benchmark\tmetric\tvalue\tbaseline\tbaseline value\tratio\t")
	for _, row := range extra {
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

// add folds one line's metrics ("123 ns/op  4 B/op  5 allocs/op ...") into
// the running mean.
func (r *result) add(metrics string) {
	f := strings.Fields(metrics)
	var ns, allocs float64
	for i := 0; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		switch unit := f[i+1]; unit {
		case "ns/op":
			ns = v
		case "allocs/op":
			allocs, r.hasAllocStats = v, true
		case "B/op", "MB/s":
		default:
			if r.metrics == nil {
				r.metrics, r.counts = map[string]float64{}, map[string]int{}
			}
			if _, seen := r.metrics[unit]; !seen {
				r.units = append(r.units, unit)
			}
			n := float64(r.counts[unit])
			r.metrics[unit] = (r.metrics[unit]*n + v) / (n + 1)
			r.counts[unit]++
		}
	}
	n := float64(r.runs)
	r.nsPerOp = (r.nsPerOp*n + ns) / (n + 1)
	r.allocsPerOp = (r.allocsPerOp*n + allocs) / (n + 1)
	r.runs++
}

func (r *result) allocs() string {
	if !r.hasAllocStats {
		return "-"
	}
	return strconv.FormatFloat(r.allocsPerOp, 'f', 0, 64)
}
