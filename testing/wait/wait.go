// Package wait polls a condition in tests until it holds or time runs out.
package wait

import (
	"testing"
	"time"
)

// interval is how often a condition is checked.
const interval = 20 * time.Millisecond

// For checks cond until it holds or timeout passes, and reports whether it
// held. cond runs on the caller's goroutine.
func For(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

// Until is For that fails the test, naming what it waited for, when cond
// never holds.
func Until(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !For(timeout, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
