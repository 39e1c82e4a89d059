package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/testing/clock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open starts a ledger on a file in a temp dir; it is closed at cleanup.
func open(t *testing.T, path string, c *clock.Clock) *SQLite {
	t.Helper()
	ctx := context.Background()
	l, err := OpenSQLite(ctx, path, Options{Now: c.Now})
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
}

func newClock() *clock.Clock { return clock.New(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)) }

func message(n int) *Message {
	return &Message{
		TaskID:      fmt.Sprintf("task-%d", n),
		Identity:    fmt.Sprintf("header-%d", n),
		BundleID:    fmt.Sprintf("bundle-%d", n),
		HeaderID:    fmt.Sprintf("header-%d", n),
		FHIRVersion: "4.0",
		Event:       "coding:https://fhirgw.example/fhir/message-events|lab-order",
		Fillers:     []string{"lab", "archive"},
		Body:        []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":"bundle-%d"}`, n)),
		Status:      "requested",
		Answer:      Answer{Status: 202, ContentType: "application/fhir+json", Body: []byte(`{"resourceType":"OperationOutcome"}`)},
	}
}

func TestAcceptKeepsTheMessage(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	m := message(1)
	if err := l.Accept(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := l.Task(ctx, "task-1", Anyone)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Body, m.Body) || got.Identity != m.Identity || got.Answer.Status != 202 ||
		!bytes.Equal(got.Answer.Body, m.Answer.Body) || len(got.Fillers) != 2 || !got.ReceivedAt.Equal(c.Now()) || !got.RoutedAt.IsZero() {
		t.Errorf("got %+v", got)
	}
	if l.Backlog() != 2 {
		t.Errorf("backlog %d, want 2 (two fillers)", l.Backlog())
	}
	pending, _ := l.Pending(ctx, 0, 10)
	if len(m.OutboxSeqs) != 2 || len(pending) != 2 || m.OutboxSeqs[0] != pending[0].Seq || m.OutboxSeqs[1] != pending[1].Seq ||
		pending[1].Filler != m.Fillers[1] {
		t.Errorf("outbox seqs %v, pending %+v", m.OutboxSeqs, pending)
	}
	if _, err := l.Task(ctx, "task-nope", Anyone); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing task: %v", err)
	}
}

func TestConcurrentAcceptsAreDurable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	c := newClock()
	l, err := OpenSQLite(ctx, path, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.Accept(ctx, message(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Accept(ctx, message(n)); !errors.Is(err, ErrClosed) {
		t.Errorf("accept after close: %v", err)
	}

	again := open(t, path, c)
	if again.Backlog() != 2*n {
		t.Errorf("reopened backlog %d, want %d", again.Backlog(), 2*n)
	}
	for i := range n {
		if _, err := again.Task(ctx, fmt.Sprintf("task-%d", i), Anyone); err != nil {
			t.Fatalf("task-%d lost across reopen: %v", i, err)
		}
	}
}

// A caller that gives up learns the real outcome: an operation the writer
// had not reached is skipped, one it had reached is finished and reported.
func TestACancelledCallerLearnsTheRealOutcome(t *testing.T) {
	c := newClock()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	const n = 200
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%20)*50*time.Microsecond)
			defer cancel()
			results[i] = l.Accept(ctx, message(i))
		}()
	}
	wg.Wait()
	var kept, skipped int
	for i, err := range results {
		_, found := l.Task(context.Background(), fmt.Sprintf("task-%d", i), Anyone)
		switch {
		case err == nil && found == nil:
			kept++
		case errors.Is(err, context.DeadlineExceeded) && errors.Is(found, ErrNotFound):
			skipped++
		default:
			t.Errorf("task-%d: accept said %v, the ledger says %v", i, err, found)
		}
	}
	if kept == 0 || skipped == 0 {
		t.Logf("kept %d, skipped %d: the deadlines did not mix both outcomes this run", kept, skipped)
	}
}

func TestAFailureAfterAWriteAbortsTheWholeBatch(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), newClock())
	// Hold the writer so that the next two operations share a batch.
	release := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- l.do(ctx, func(*wtx) error { <-release; return nil }, nil)
	}()
	time.Sleep(50 * time.Millisecond)
	broken := make(chan error, 1)
	go func() {
		broken <- l.doUnisolated(ctx, func(tx *wtx) error {
			if _, err := tx.exec(`INSERT INTO outbox (task_id, filler, created_at) VALUES ('ghost', 'lab', 0)`); err != nil {
				return err
			}
			return errors.New("failed after writing")
		}, nil)
	}()
	accepted := make(chan error, 1)
	go func() { accepted <- l.Accept(ctx, message(1)) }()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-broken; err == nil {
		t.Fatal("the failing operation reported success")
	}
	if err := <-accepted; err == nil {
		// Batched with the failure, Accept must not report success.
		t.Fatal("an operation batched with an aborted one reported success")
	}
	if _, err := l.Task(ctx, "task-1", Anyone); !errors.Is(err, ErrNotFound) {
		t.Errorf("the aborted batch left task-1 behind: %v", err)
	}
	if pending, _ := l.Pending(ctx, 0, 10); len(pending) != 0 {
		t.Errorf("the aborted batch left outbox rows: %+v", pending)
	}
	if err := l.Accept(ctx, message(1)); err != nil {
		t.Errorf("a retry after the aborted batch: %v", err)
	}
}

// A ledger file of an earlier schema upgrades in place: its exchanges,
// responses and outbox survive, each exchange at version 1.
func TestAnOlderLedgerUpgradesInPlace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	const v6 = 6
	for _, m := range migrations[:v6] {
		if _, err := db.ExecContext(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`,
		`INSERT INTO schema_version (version) VALUES (6)`,
		`INSERT INTO messages (task_id, identity, bundle_id, header_id, fhir_version, event, fillers, body, status, answer_status, answer_body,
			received_at, updated_at) VALUES ('t1', 'id-1', 'b1', 'id-1', '4.0', 'e', 'lab,archive', X'7B7D', 'accepted', 202, X'', 1000, 2000)`,
		`INSERT INTO responses (bundle_id, identity, task_id, code, body, received_at) VALUES ('r1', 'rid-1', 't1', 'ok', X'7B7D', 1500)`,
		`INSERT INTO outbox (task_id, filler, created_at) VALUES ('t1', 'archive', 1000)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	l := open(t, path, newClock())
	m, err := l.Task(ctx, "t1", FillerScope([]string{"archive"}))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 1 || m.Status != StatusAccepted || m.Outputs != 1 || m.UpdatedAt.UnixMilli() != 2000 {
		t.Errorf("upgraded exchange %+v", m)
	}
	if h, err := l.History(ctx, "t1", Anyone); err != nil || len(h) != 1 {
		t.Errorf("history %v %v", h, err)
	}
	if p, _ := l.Pending(ctx, 0, 10); len(p) != 1 || l.Backlog() != 1 {
		t.Errorf("outbox %+v", p)
	}
	if r, err := l.Bundle(ctx, "r1", Anyone); err != nil || r.TaskID != "t1" {
		t.Errorf("response %+v %v", r, err)
	}
	// The rebuilt tables take what the old ones refused: the identity again
	// after the window, from another placer.
	again := message(9)
	again.Identity = "id-1"
	if err := l.Accept(ctx, again); err != nil {
		t.Errorf("an identity of the old ledger, long after: %v", err)
	}
}
