package replay

import (
	"fmt"
	"io/fs"
	"os"
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

// PlanFiles is the plan for files and directories given without a
// manifest: every .json file, in the order given, a directory's files in
// lexical order, with no expectations.
func PlanFiles(paths []string) (Plan, error) {
	var plan Plan
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			plan = append(plan, Item{Name: p, File: p, Within: DefaultWithin})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".json") {
				plan = append(plan, Item{Name: path, File: path, Within: DefaultWithin})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("no .json files in %s", strings.Join(paths, ", "))
	}
	return plan, nil
}

// under keeps the items whose files lie under one of paths, and the items
// they wait for.
func (p Plan) under(paths []string) (Plan, error) {
	keep := make([]bool, len(p))
	for i, it := range p {
		for _, path := range paths {
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, err
			}
			file, err := filepath.Abs(it.File)
			if err != nil {
				return nil, err
			}
			if file == abs || strings.HasPrefix(file, abs+string(filepath.Separator)) {
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
