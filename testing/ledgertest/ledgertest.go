// Package ledgertest opens a real SQLite ledger for a test.
package ledgertest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
)

// Open opens a ledger in a file of t.TempDir() and runs its writer until
// the test ends.
func Open(t testing.TB) *ledger.SQLite {
	t.Helper()
	return OpenWithClock(t, nil)
}

// OpenWithClock is Open with the ledger's clock now (nil: time.Now), for
// tests that move time themselves.
func OpenWithClock(t testing.TB, now func() time.Time) *ledger.SQLite {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := ledger.OpenSQLite(ctx, filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Now: now})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	t.Cleanup(func() { _ = l.Close(context.Background()); cancel(); <-done })
	return l
}
