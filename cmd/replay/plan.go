package replay

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Plan is the messages to send, in order.
type Plan []Item

// Item is one message to send and what it should get.
type Item struct {
	// Name identifies the message in reports (a manifest's name or file).
	Name string
	// File is the message Bundle's path.
	File string
	// FHIRVersion is the content type's fhirVersion; empty: detected.
	FHIRVersion string
	// Async asks an HTTP target for ?async=true.
	Async bool
	// Within bounds the wait for the asynchronous expectations.
	Within time.Duration
	// After indexes the items that must finish before this one is sent.
	After []int
	// Expect is what the message should get.
	Expect Expect
}

// PlanFiles is the plan for files given without a manifest: each sent in
// the order given, with no expectations.
func PlanFiles(files []string) Plan {
	plan := make(Plan, len(files))
	for i, f := range files {
		plan[i] = Item{Name: f, File: f, Within: DefaultWithin}
	}
	return plan
}

// under keeps the items whose files lie under one of paths, and the items
// they wait for.
func (p Plan) under(paths []string) (Plan, error) {
	roots := make([]string, len(paths))
	for i, path := range paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		roots[i] = abs
	}
	keep := make([]bool, len(p))
	for i, it := range p {
		file, err := filepath.Abs(it.File)
		if err != nil {
			return nil, err
		}
		for _, root := range roots {
			if file == root || strings.HasPrefix(file, root+string(filepath.Separator)) {
				keep[i] = true
			}
		}
	}
	for i := len(p) - 1; i >= 0; i-- { // what a kept item waits for is kept
		if keep[i] {
			for _, j := range p[i].After {
				keep[j] = true
			}
		}
	}
	var out Plan
	renumber := map[int]int{}
	for i, it := range p {
		if !keep[i] {
			continue
		}
		renumber[i] = len(out)
		it.After = slices.Clone(it.After)
		for k, j := range it.After {
			it.After[k] = renumber[j]
		}
		out = append(out, it)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the manifest lists no message under %s", strings.Join(paths, ", "))
	}
	return out, nil
}
