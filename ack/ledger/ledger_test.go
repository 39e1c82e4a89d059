package ledger

import (
	"bytes"
	"context"
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
	got, err := l.Task(ctx, "task-1")
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
	if _, err := l.Task(ctx, "task-nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing task: %v", err)
	}
}

func TestDuplicates(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), newClock())
	if err := l.Accept(ctx, message(1)); err != nil {
		t.Fatal(err)
	}
	again := message(1)
	again.TaskID, again.BundleID = "task-other", "bundle-resent" // R4 resend: same MessageHeader.id, new Bundle.id
	err := l.Accept(ctx, again)
	var dup *DuplicateError
	if !errors.As(err, &dup) || !errors.Is(err, ErrDuplicate) || dup.Prior.TaskID != "task-1" || dup.Prior.Answer.Status != 202 {
		t.Fatalf("want a duplicate of task-1, got %v", err)
	}
	reused := message(2)
	reused.BundleID = "bundle-1" // R4: Bundle.id seen under another MessageHeader.id
	if err := l.Accept(ctx, reused); !errors.Is(err, ErrBundleIDReused) {
		t.Fatalf("want ErrBundleIDReused, got %v", err)
	}
	r5 := message(3)
	r5.FHIRVersion, r5.BundleID = "5.0", "bundle-1" // R5 identity is Bundle.identifier; Bundle.id may repeat
	if err := l.Accept(ctx, r5); err != nil {
		t.Fatalf("R5 with a repeated Bundle.id: %v", err)
	}
	if l.Backlog() != 4 {
		t.Errorf("backlog %d, want 4: rejected messages must leave no outbox entries", l.Backlog())
	}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	for i := 1; i <= 3; i++ {
		if err := l.Accept(ctx, message(i)); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := l.Pending(ctx, 0, 100)
	if err != nil || len(pending) != 6 {
		t.Fatalf("pending %d, %v", len(pending), err)
	}
	if p := pending[0]; p.TaskID != "task-1" || p.Filler != "lab" || !bytes.Equal(p.Body, message(1).Body) || p.Identity != "header-1" {
		t.Errorf("first entry %+v", p)
	}
	page, _ := l.Pending(ctx, pending[1].Seq, 2)
	if len(page) != 2 || page[0].Seq != pending[2].Seq {
		t.Errorf("paging after %d: %+v", pending[1].Seq, page)
	}
	c.Add(time.Second)
	if err := l.Published(ctx, pending[0]); err != nil {
		t.Fatal(err)
	}
	if m, _ := l.Task(ctx, "task-1"); !m.RoutedAt.IsZero() {
		t.Error("routed with a publish still owed")
	}
	if err := l.Published(ctx, pending[1]); err != nil {
		t.Fatal(err)
	}
	if m, _ := l.Task(ctx, "task-1"); !m.RoutedAt.Equal(c.Now()) {
		t.Errorf("routed at %v, want %v", m.RoutedAt, c.Now())
	}
	if l.Backlog() != 4 {
		t.Errorf("backlog %d, want 4", l.Backlog())
	}
}

func TestAnswersAndResponses(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), newClock())
	if err := l.Accept(ctx, message(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetAnswer(ctx, "task-1", Answer{Status: 200, ContentType: "application/fhir+json", Body: []byte("resp")}); err != nil {
		t.Fatal(err)
	}
	if m, _ := l.ByIdentity(ctx, "header-1"); m.Answer.Status != 200 || string(m.Answer.Body) != "resp" {
		t.Errorf("answer %+v", m.Answer)
	}
	if err := l.SetAnswer(ctx, "task-nope", Answer{Status: 200}); !errors.Is(err, ErrNotFound) {
		t.Errorf("answer of a missing task: %v", err)
	}
	for i, code := range []string{"ok", "ok"} {
		r := &Response{BundleID: fmt.Sprintf("resp-%d", i), Identity: fmt.Sprintf("resp-id-%d", i), TaskID: "task-1", Code: code, Body: []byte(fmt.Sprintf("body-%d", i))}
		if err := l.AddResponse(ctx, r, To("accepted", "")); err != nil {
			t.Fatal(err)
		}
	}
	again := &Response{BundleID: "resp-again", Identity: "resp-id-1", TaskID: "task-1", Code: "ok"}
	if err := l.AddResponse(ctx, again, To("rejected", "")); !errors.Is(err, ErrDuplicate) {
		t.Errorf("the same response twice: %v", err)
	}
	rs, err := l.Responses(ctx, "task-1")
	if err != nil || len(rs) != 2 || rs[0].BundleID != "resp-0" || string(rs[1].Body) != "body-1" {
		t.Fatalf("responses %+v %v", rs, err)
	}
	if m, _ := l.Task(ctx, "task-1"); m.Status != "accepted" {
		t.Errorf("status %s", m.Status)
	}
	outs, err := l.Outputs(ctx, "task-1", "task-nope")
	if got := outs["task-1"]; err != nil || len(outs) != 1 || len(got) != 2 || got[0].BundleID != "resp-0" || got[1].Code != "ok" || got[1].Body != nil {
		t.Errorf("outputs %+v %v", outs, err)
	}
	if b, err := l.Bundle(ctx, "resp-1"); err != nil || b.TaskID != "task-1" {
		t.Errorf("bundle %+v %v", b, err)
	}
	if _, err := l.Bundle(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing bundle: %v", err)
	}
	// A move decides from the status the task has when the response is
	// written, not from what the caller read before.
	var seen string
	move := func(current string) (string, string) { seen = current; return "", "" }
	if err := l.AddResponse(ctx, &Response{BundleID: "resp-2", Identity: "resp-id-2", TaskID: "task-1", Code: "ok"}, move); err != nil || seen != "accepted" {
		t.Errorf("the move saw %q (%v), want accepted", seen, err)
	}
	if m, _ := l.Task(ctx, "task-1"); m.Status != "accepted" {
		t.Errorf("an empty move changed the status to %s", m.Status)
	}
	if err := l.AddResponse(ctx, &Response{BundleID: "resp-x", Identity: "resp-id-x", TaskID: "task-nope", Code: "ok"}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("response to a missing task: %v", err)
	}
	if _, err := l.Bundle(ctx, "resp-x"); !errors.Is(err, ErrNotFound) {
		t.Error("a failed operation left its response behind: savepoints must undo it")
	}
}

func TestPurgeKeepsWhatIsStillOwed(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	for i := 1; i <= 2; i++ {
		if err := l.Accept(ctx, message(i)); err != nil {
			t.Fatal(err)
		}
	}
	pending, _ := l.Pending(ctx, 0, 10)
	if err := l.Published(ctx, pending[0], pending[1]); err != nil { // task-1 fully routed
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	n, err := l.Purge(ctx, c.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v; want 1", n, err)
	}
	if _, err := l.Task(ctx, "task-1"); !errors.Is(err, ErrNotFound) {
		t.Error("task-1 survived the purge")
	}
	if _, err := l.Task(ctx, "task-2"); err != nil {
		t.Error("task-2 was purged with publishes still owed")
	}
	if err := l.Accept(ctx, message(1)); err != nil {
		t.Errorf("after the window the identity is new again: %v", err)
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
		if _, err := again.Task(ctx, fmt.Sprintf("task-%d", i)); err != nil {
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
		_, found := l.Task(context.Background(), fmt.Sprintf("task-%d", i))
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
	if _, err := l.Task(ctx, "task-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the aborted batch left task-1 behind: %v", err)
	}
	if pending, _ := l.Pending(ctx, 0, 10); len(pending) != 0 {
		t.Errorf("the aborted batch left outbox rows: %+v", pending)
	}
	if err := l.Accept(ctx, message(1)); err != nil {
		t.Errorf("a retry after the aborted batch: %v", err)
	}
}

func TestTransition(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), newClock())
	if err := l.Accept(ctx, message(1)); err != nil {
		t.Fatal(err)
	}
	if moved, err := l.Transition(ctx, "task-1", "received", []string{"requested"}, "delivered to lab"); err != nil || !moved {
		t.Fatalf("requested -> received: %v %v", moved, err)
	}
	if moved, _ := l.Transition(ctx, "task-1", "received", []string{"requested"}, "again"); moved {
		t.Error("a transition from a status the task is no longer in happened")
	}
	if moved, _ := l.Transition(ctx, "task-1", "failed", nil, ""); !moved {
		t.Error("an unconditional transition did not happen")
	}
	m, _ := l.Task(ctx, "task-1")
	if m.Status != "failed" || m.BusinessStatus != "delivered to lab" {
		t.Errorf("status %q business %q", m.Status, m.BusinessStatus)
	}
}

func TestByFocusKey(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	for i, keys := range [][]string{{"ref:ServiceRequest/sr-1", "id:urn:placer|ORD-1"}, {"ref:ServiceRequest/sr-2"}, {"id:urn:placer|ORD-1"}} {
		m := message(i)
		m.FocusKeys = keys
		if err := l.Accept(ctx, m); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Second)
	}
	for keys, want := range map[string]string{"ref:ServiceRequest/sr-2": "task-1", "id:urn:placer|ORD-1": "task-2", "ref:ServiceRequest/sr-1": "task-0"} {
		m, err := l.ByFocusKey(ctx, []string{"nothing", keys})
		if err != nil || m.TaskID != want {
			t.Errorf("%s: %v %v, want %s (the most recent)", keys, m, err, want)
		}
	}
	if _, err := l.ByFocusKey(ctx, []string{"ref:Nope/1"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestSearchTasks(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	start := c.Now()
	for i := range 4 {
		if err := l.Accept(ctx, message(i)); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Second)
	}
	if _, err := l.Transition(ctx, "task-1", "accepted", nil, ""); err != nil {
		t.Fatal(err)
	}
	ids := func(ms []*Message) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.TaskID)
		}
		return fmt.Sprint(out)
	}
	for name, tc := range map[string]struct {
		q    TaskQuery
		want string
	}{
		"all, newest first": {TaskQuery{}, "[task-1 task-3 task-2 task-0]"},
		"by identity":       {TaskQuery{Identity: "header-2"}, "[task-2]"},
		"updated after":     {TaskQuery{UpdatedAfter: start.Add(1500 * time.Millisecond)}, "[task-1 task-3 task-2]"},
		"by status":         {TaskQuery{Statuses: []string{"accepted", "cancelled"}}, "[task-1]"},
		"limit":             {TaskQuery{Limit: 2}, "[task-1 task-3]"},
		"nothing matches":   {TaskQuery{Identity: "nope"}, "[]"},
	} {
		got, err := l.SearchTasks(ctx, tc.q)
		if err != nil || ids(got) != tc.want {
			t.Errorf("%s: %s %v, want %s", name, ids(got), err, tc.want)
		}
	}
}
