package ledger_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/testing/ledgertest"
)

// The SQLite ledger meets the ledger contract.
func TestSQLiteConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T, opts ledger.Options) ledger.Ledger {
		ctx := context.Background()
		l, err := ledger.OpenSQLite(ctx, filepath.Join(t.TempDir(), "ledger.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		t.Cleanup(func() {
			if err := l.Close(ctx); err != nil {
				t.Error(err)
			}
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		return l
	})
}
