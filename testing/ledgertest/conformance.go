package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/testing/clock"
)

// Constructor opens an empty ledger with opts, running, for one test; it is
// closed when the test ends.
type Constructor func(t *testing.T, opts ledger.Options) ledger.Ledger

// Run is the conformance suite of the ledger contract (ledger.Ledger):
// every implementation passes it. It covers custody atomicity, the
// duplicate and conflict rules, the change log and Task versions, search
// and paging, scoping, retention, the outbox and callbacks.
func Run(t *testing.T, open Constructor) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, *suite)
	}{
		{"Custody", testCustody},
		{"Duplicates", testDuplicates},
		{"BundleIDReuse", testBundleIDReuse},
		{"ChangeLog", testChangeLog},
		{"ApplyMovesFromTheCurrentStatus", testApply},
		{"Responses", testResponses},
		{"Scoping", testScoping},
		{"FocusKeys", testFocusKeys},
		{"SearchAndPaging", testSearchAndPaging},
		{"UniqueInstantsUnderConcurrentWriters", testConcurrentInstants},
		{"Retention", testRetention},
		{"Outbox", testOutbox},
		{"Callbacks", testCallbacks},
		{"FanOutTasksPerFiller", testFanOut},
		{"CancellationRacingADelivery", testCancelRace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := clock.New(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
			tc.test(t, &suite{l: open(t, ledger.Options{Now: c.Now, DuplicateWindow: time.Hour}), c: c})
		})
	}
}

type suite struct {
	l ledger.Ledger
	c *clock.Clock
}

var ctx = context.Background()

// message is exchange n of placer, routed to fillers.
func message(n int, placer string, fillers ...string) *ledger.Message {
	if len(fillers) == 0 {
		fillers = []string{"lab"}
	}
	return &ledger.Message{
		TaskID: fmt.Sprintf("task-%s-%d", placer, n), Identity: fmt.Sprintf("id-%d", n), Placer: placer,
		BundleID: fmt.Sprintf("bundle-%s-%d", placer, n), HeaderID: fmt.Sprintf("id-%d", n), FHIRVersion: "4.0",
		Event: "coding:https://fhirgw.example/fhir/message-events|lab-order", Fillers: fillers,
		Body:      []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":"bundle-%d"}`, n)),
		FocusKeys: []string{fmt.Sprintf("ref:ServiceRequest/%d", n)},
		Answer:    ledger.Answer{Status: 202, ContentType: "application/fhir+json", Body: []byte(`{"resourceType":"OperationOutcome"}`)},
	}
}

func (s *suite) accept(t *testing.T, m *ledger.Message) *ledger.Message {
	t.Helper()
	if err := s.l.Accept(ctx, m); err != nil {
		t.Fatalf("accept %s: %v", m.TaskID, err)
	}
	return m
}

func testCustody(t *testing.T, s *suite) {
	m := s.accept(t, message(1, "a", "lab", "archive"))
	got, err := s.l.Task(ctx, m.TaskID, ledger.Anyone)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Body, m.Body) || got.Identity != m.Identity || got.Placer != "a" || got.Answer.Status != 202 ||
		len(got.Fillers) != 2 || got.Status != ledger.StatusRequested || got.Version != 1 || got.UpdatedAt.IsZero() {
		t.Errorf("got %+v", got)
	}
	if got.BusinessStatus != "queued for lab, archive" {
		t.Errorf("business status %q", got.BusinessStatus)
	}
	pending, _ := s.l.Pending(ctx, 0, 10)
	if len(m.OutboxSeqs) != 2 || len(pending) != 2 || pending[0].Seq != m.OutboxSeqs[0] || pending[1].Filler != "archive" {
		t.Errorf("outbox %v, pending %+v", m.OutboxSeqs, pending)
	}
	if s.l.Backlog() != 2 {
		t.Errorf("backlog %d", s.l.Backlog())
	}
	if _, err := s.l.Task(ctx, "nope", ledger.Anyone); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("missing task: %v", err)
	}
	if err := s.l.SetAnswer(ctx, m.TaskID, ledger.Answer{Status: 200, Body: []byte("final")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.l.Task(ctx, m.TaskID, ledger.Anyone); got.Answer.Status != 200 || got.Version != 1 {
		t.Errorf("after SetAnswer: %d v%d (an answer is no Task change)", got.Answer.Status, got.Version)
	}
}

func testDuplicates(t *testing.T, s *suite) {
	first := s.accept(t, message(1, "a"))
	var dup *ledger.DuplicateError
	again := message(1, "a")
	again.TaskID = "other"
	if err := s.l.Accept(ctx, again); !errors.As(err, &dup) || dup.Prior.TaskID != first.TaskID {
		t.Fatalf("the same placer's resend: %v", err)
	}
	other := message(1, "b")
	if err := s.l.Accept(ctx, other); !errors.Is(err, ledger.ErrIdentityTaken) {
		t.Fatalf("another placer's message with the identity: %v", err)
	}
	if _, err := s.l.Task(ctx, other.TaskID, ledger.Anyone); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("a conflicting message was stored: %v", err)
	}
	if s.l.Backlog() != 1 {
		t.Errorf("backlog %d: a duplicate was queued", s.l.Backlog())
	}
	// After the window the identity starts a new exchange; the first stays.
	s.c.Add(2 * time.Hour)
	later := message(1, "b")
	s.accept(t, later)
	if got, err := s.l.ByIdentity(ctx, "id-1", ledger.Anyone); err != nil || got.TaskID != later.TaskID {
		t.Errorf("newest exchange of the identity: %+v %v", got, err)
	}
	if _, err := s.l.Task(ctx, first.TaskID, ledger.Anyone); err != nil {
		t.Errorf("the first exchange after the window: %v", err)
	}
}

func testBundleIDReuse(t *testing.T, s *suite) {
	s.accept(t, message(1, "a"))
	reuse := message(2, "a")
	reuse.BundleID = "bundle-a-1"
	if err := s.l.Accept(ctx, reuse); !errors.Is(err, ledger.ErrBundleIDReused) {
		t.Fatalf("the same placer reusing a Bundle.id: %v", err)
	}
	// Another placer's Bundle.id is its own business.
	other := message(3, "b")
	other.BundleID = "bundle-a-1"
	s.accept(t, other)
	// R5 has no such rule.
	r5 := message(4, "a")
	r5.FHIRVersion, r5.BundleID = "5.0", "bundle-a-1"
	s.accept(t, r5)
}

func testChangeLog(t *testing.T, s *suite) {
	m := s.accept(t, message(1, "a"))
	s.c.Add(time.Millisecond)
	if err := s.l.Published(ctx, ledger.OutboxEntry{Seq: m.OutboxSeqs[0], TaskID: m.TaskID}); err != nil {
		t.Fatal(err)
	}
	a, err := s.l.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeDelivered, Detail: "lab"},
		ledger.From(ledger.StatusReceived, "delivered to lab", ledger.StatusRequested))
	if err != nil || !a.Changed || a.Version != 3 || a.Status != ledger.StatusReceived {
		t.Fatalf("delivered: %+v %v", a, err)
	}
	// A move that does not apply writes nothing.
	if a, err := s.l.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeDelivered}, ledger.From(ledger.StatusReceived, "x", ledger.StatusRequested)); err != nil || a.Changed {
		t.Errorf("a move from another status: %+v %v", a, err)
	}
	r := &ledger.Response{BundleID: "b-1", Identity: "r-1", TaskID: m.TaskID, Sender: "lab-partner", Code: "ok", Body: []byte("{}")}
	if err := s.l.AddResponse(ctx, r, ledger.To(ledger.StatusAccepted, "response ok")); err != nil {
		t.Fatal(err)
	}
	history, err := s.l.History(ctx, m.TaskID, ledger.Anyone)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status   ledger.Status
		business string
		outputs  int
	}{{"accepted", "response ok", 1}, {"received", "delivered to lab", 0}, {"requested", "routed to lab", 0}, {"requested", "queued for lab", 0}}
	if len(history) != len(want) {
		t.Fatalf("history has %d versions, want %d", len(history), len(want))
	}
	for i, w := range want {
		h := history[i]
		if h.Version != len(want)-i || h.Status != w.status || h.BusinessStatus != w.business || h.Outputs != w.outputs {
			t.Errorf("version %d: %d %s %q %d outputs", len(want)-i, h.Version, h.Status, h.BusinessStatus, h.Outputs)
		}
		if i > 0 && !history[i-1].UpdatedAt.After(h.UpdatedAt) {
			t.Errorf("version %d is not later than version %d", history[i-1].Version, h.Version)
		}
	}
	v2, err := s.l.TaskVersion(ctx, m.TaskID, 2, ledger.Anyone)
	if err != nil || v2.BusinessStatus != "routed to lab" {
		t.Errorf("version 2: %+v %v", v2, err)
	}
	if _, err := s.l.TaskVersion(ctx, m.TaskID, 9, ledger.Anyone); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("version 9: %v", err)
	}
	changes, err := s.l.Changes(ctx, 0, 100)
	if err != nil || len(changes) != 4 {
		t.Fatalf("change log: %+v %v", changes, err)
	}
	kinds := []ledger.ChangeKind{ledger.ChangeAccepted, ledger.ChangePublished, ledger.ChangeDelivered, ledger.ChangeResponse}
	for i, c := range changes {
		if c.Kind != kinds[i] || c.TaskID != m.TaskID || c.ExchangeID != m.TaskID || c.Version != i+1 || (i > 0 && c.Seq <= changes[i-1].Seq) {
			t.Errorf("change %d: %+v", i, c)
		}
	}
	if changes[0].Partner != "a" || changes[3].Partner != "lab-partner" || changes[3].Detail != "b-1" {
		t.Errorf("who caused the changes: %+v", changes)
	}
}

func testApply(t *testing.T, s *suite) {
	m := s.accept(t, message(1, "a"))
	// Many concurrent moves from requested: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.l.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeCancelled},
				ledger.From(ledger.StatusCancelled, "cancelled", ledger.StatusRequested))
			if err != nil {
				t.Error(err)
			}
			if a.Changed {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d moves out of requested won, want 1", won)
	}
	if _, err := s.l.Apply(ctx, "nope", ledger.Change{Kind: ledger.ChangeStatus}, ledger.To(ledger.StatusFailed, "x")); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("a missing task: %v", err)
	}
}

func testResponses(t *testing.T, s *suite) {
	m := s.accept(t, message(1, "a"))
	m.ResponseURL = ""
	r := &ledger.Response{BundleID: "b-1", Identity: "r-1", TaskID: m.TaskID, Sender: "l", Code: "ok", Body: []byte(`{"a":1}`)}
	if err := s.l.AddResponse(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	again := &ledger.Response{BundleID: "b-2", Identity: "r-1", TaskID: m.TaskID, Sender: "l", Code: "ok"}
	if err := s.l.AddResponse(ctx, again, nil); !errors.Is(err, ledger.ErrDuplicate) || again.BundleID != "b-1" {
		t.Errorf("the same response again: %v, bundle %s", err, again.BundleID)
	}
	if err := s.l.AddResponse(ctx, &ledger.Response{BundleID: "b-3", Identity: "r-3", TaskID: "nope", Code: "ok"}, nil); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("a response for no task: %v", err)
	}
	un := &ledger.Response{BundleID: "u-1", Identity: "r-9", Sender: "l", Code: "ok", Body: []byte("{}")}
	if err := s.l.AddUnmatched(ctx, un); err != nil {
		t.Fatal(err)
	}
	if err := s.l.AddUnmatched(ctx, &ledger.Response{BundleID: "u-2", Identity: "r-9", Sender: "l"}); !errors.Is(err, ledger.ErrDuplicate) {
		t.Errorf("the same unmatched response again: %v", err)
	}
	outs, err := s.l.Outputs(ctx, m.TaskID)
	if err != nil || len(outs[m.TaskID]) != 1 || outs[m.TaskID][0].BundleID != "b-1" {
		t.Errorf("outputs %+v %v", outs, err)
	}
	if b, err := s.l.Bundle(ctx, "b-1", ledger.Anyone); err != nil || !bytes.Equal(b.Body, r.Body) || b.TaskID != m.TaskID {
		t.Errorf("bundle %+v %v", b, err)
	}
	if _, err := s.l.Bundle(ctx, "u-1", ledger.PlacerScope("l")); err != nil {
		t.Errorf("its sender reading an unmatched response: %v", err)
	}
	if _, err := s.l.Bundle(ctx, "u-1", ledger.PlacerScope("a")); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("another partner reading an unmatched response: %v", err)
	}
}

func testScoping(t *testing.T, s *suite) {
	a := s.accept(t, message(1, "a", "lab"))
	b := s.accept(t, message(2, "b", "pharmacy"))
	r := &ledger.Response{BundleID: "b-a", Identity: "r-a", TaskID: a.TaskID, Sender: "l", Code: "ok"}
	if err := s.l.AddResponse(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	sees := func(scope ledger.Scope, m *ledger.Message) bool {
		_, err := s.l.Task(ctx, m.TaskID, scope)
		return err == nil
	}
	for _, tc := range []struct {
		name   string
		scope  ledger.Scope
		a, b   bool
		bundle bool
	}{
		{"placer a", ledger.Scope{Placer: "a"}, true, false, true},
		{"placer b", ledger.Scope{Placer: "b"}, false, true, false},
		{"the lab's partner", ledger.Scope{Placer: "l", Fillers: []string{"lab"}}, true, false, true},
		{"the lab as filler", ledger.FillerScope([]string{"lab"}), true, false, true},
		{"a as filler", ledger.FillerScope(nil), false, false, false},
		{"anonymous", ledger.Scope{}, false, false, false},
		{"operators", ledger.Anyone, true, true, true},
	} {
		if sees(tc.scope, a) != tc.a || sees(tc.scope, b) != tc.b {
			t.Errorf("%s sees a %v, b %v; want %v %v", tc.name, sees(tc.scope, a), sees(tc.scope, b), tc.a, tc.b)
		}
		if _, err := s.l.Bundle(ctx, "b-a", tc.scope); (err == nil) != tc.bundle {
			t.Errorf("%s reading a's response: %v", tc.name, err)
		}
		if _, err := s.l.History(ctx, a.TaskID, tc.scope); (err == nil) != tc.a {
			t.Errorf("%s reading a's history: %v", tc.name, err)
		}
		if _, err := s.l.TaskVersion(ctx, a.TaskID, 1, tc.scope); (err == nil) != tc.a {
			t.Errorf("%s reading a's version 1: %v", tc.name, err)
		}
		if got, err := s.l.ByIdentity(ctx, a.Identity, tc.scope); (err == nil) != tc.a || (err == nil && got.TaskID != a.TaskID) {
			t.Errorf("%s finding a's identity: %v", tc.name, err)
		}
		tasks, _, err := s.l.SearchTasks(ctx, ledger.TaskQuery{Scope: tc.scope})
		if err != nil || (len(tasks) == 2) != (tc.a && tc.b) || len(tasks) != count(tc.a, tc.b) {
			t.Errorf("%s searching: %d tasks, %v", tc.name, len(tasks), err)
		}
	}
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func testFocusKeys(t *testing.T, s *suite) {
	m1 := message(1, "a", "lab")
	m1.FocusKeys = []string{"ref:ServiceRequest/123"}
	s.accept(t, m1)
	s.c.Add(time.Second)
	m2 := message(2, "a", "lab")
	m2.FocusKeys = []string{"ref:ServiceRequest/123"}
	s.accept(t, m2)
	found, err := s.l.ByFocusKey(ctx, []string{"ref:ServiceRequest/123"}, ledger.FillerScope([]string{"lab"}))
	if err != nil || len(found) != 1 || found[0].TaskID != m2.TaskID {
		t.Fatalf("one placer: %+v %v (the newest, once)", found, err)
	}
	m3 := message(3, "b", "lab")
	m3.FocusKeys = []string{"ref:ServiceRequest/123"}
	s.accept(t, m3)
	if found, _ := s.l.ByFocusKey(ctx, []string{"ref:ServiceRequest/123"}, ledger.FillerScope([]string{"lab"})); len(found) != 2 {
		t.Errorf("two placers share the reference: %d candidates, want 2 (ambiguous)", len(found))
	}
	if found, _ := s.l.ByFocusKey(ctx, []string{"ref:ServiceRequest/123"}, ledger.PlacerScope("b")); len(found) != 1 || found[0].TaskID != m3.TaskID {
		t.Errorf("b's own orders: %+v", found)
	}
	if found, _ := s.l.ByFocusKey(ctx, []string{"ref:ServiceRequest/123"}, ledger.FillerScope([]string{"pharmacy"})); len(found) != 0 {
		t.Errorf("another filler: %+v", found)
	}
}

func testSearchAndPaging(t *testing.T, s *suite) {
	var ms []*ledger.Message
	for i := range 10 {
		ms = append(ms, s.accept(t, message(i, "a")))
	}
	// Every change has its own instant, even on a clock that stands still.
	seen := map[time.Time]bool{}
	for _, m := range ms {
		if seen[m.UpdatedAt] {
			t.Fatalf("two changes at %v", m.UpdatedAt)
		}
		seen[m.UpdatedAt] = true
	}
	all, total, err := s.l.SearchTasks(ctx, ledger.TaskQuery{Scope: ledger.Anyone, Total: true, Limit: 100})
	if err != nil || len(all) != 10 || total != 10 {
		t.Fatalf("all: %d %d %v", len(all), total, err)
	}
	for i := 1; i < len(all); i++ {
		if !all[i].UpdatedAt.After(all[i-1].UpdatedAt) {
			t.Fatal("not oldest first")
		}
	}
	desc, _, _ := s.l.SearchTasks(ctx, ledger.TaskQuery{Scope: ledger.Anyone, Descending: true, Limit: 100})
	if len(desc) != 10 || desc[0].TaskID != all[9].TaskID {
		t.Error("not newest first")
	}
	// Bounds.
	mid := all[4].UpdatedAt
	for _, tc := range []struct {
		q    ledger.TaskQuery
		want int
	}{
		{ledger.TaskQuery{UpdatedAfter: mid}, 5}, {ledger.TaskQuery{UpdatedFrom: mid}, 6},
		{ledger.TaskQuery{UpdatedBefore: mid}, 4}, {ledger.TaskQuery{UpdatedUntil: mid}, 5},
		{ledger.TaskQuery{UpdatedAfter: all[1].UpdatedAt, UpdatedBefore: all[3].UpdatedAt}, 1},
		{ledger.TaskQuery{Identity: "id-3"}, 1}, {ledger.TaskQuery{Statuses: []ledger.Status{ledger.StatusCompleted}}, 0},
	} {
		tc.q.Scope, tc.q.Limit, tc.q.Total = ledger.Anyone, 100, true
		got, total, err := s.l.SearchTasks(ctx, tc.q)
		if err != nil || len(got) != tc.want || total != tc.want {
			t.Errorf("%+v: %d (total %d), want %d: %v", tc.q, len(got), total, tc.want, err)
		}
	}
	// Paging with a cursor over a changing result: nothing skipped; a task
	// that changed after it was read comes again, at its new version.
	got := map[string]int{}
	q := ledger.TaskQuery{Scope: ledger.Anyone, Limit: 3}
	for page := 0; ; page++ {
		tasks, _, err := s.l.SearchTasks(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) == 0 {
			break
		}
		for _, m := range tasks {
			got[m.TaskID] = max(got[m.TaskID], m.Version)
		}
		if page == 1 { // change one already read, and one not yet read
			for _, m := range []*ledger.Message{ms[0], ms[8]} {
				if _, err := s.l.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeStatus}, ledger.To(ledger.StatusFailed, "x")); err != nil {
					t.Fatal(err)
				}
			}
		}
		q.Cursor = tasks[len(tasks)-1].UpdatedAt
	}
	if len(got) != 10 || got[ms[0].TaskID] != 2 || got[ms[8].TaskID] != 2 {
		t.Errorf("paged: %v", got)
	}
}

// testConcurrentInstants: writers at once never share or undercut an
// instant, so a poller repeating _lastUpdated=gt<greatest seen> sees every
// change.
func testConcurrentInstants(t *testing.T, s *suite) {
	const writers, tasks, rounds = 4, 20, 3
	for i := range tasks {
		s.accept(t, message(i, "a"))
	}
	stop := make(chan struct{})
	final := map[string]int{}
	var pollErr error
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		var after time.Time
		for {
			select {
			case <-stop:
			default:
			}
			page, _, err := s.l.SearchTasks(ctx, ledger.TaskQuery{Scope: ledger.Anyone, UpdatedAfter: after, Limit: 7})
			if err != nil {
				pollErr = err
				return
			}
			for _, m := range page {
				final[m.TaskID] = m.Version
				after = m.UpdatedAt
			}
			if len(page) == 0 {
				select {
				case <-stop:
					if last, _, _ := s.l.SearchTasks(ctx, ledger.TaskQuery{Scope: ledger.Anyone, UpdatedAfter: after, Limit: 7}); len(last) == 0 {
						return
					}
				default:
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for i := w; i < tasks; i += writers {
					r := &ledger.Response{BundleID: fmt.Sprintf("b-%d-%d", i, r), Identity: fmt.Sprintf("r-%d-%d", i, r),
						TaskID: fmt.Sprintf("task-a-%d", i), Code: "progress"}
					if err := s.l.AddResponse(ctx, r, nil); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-polled
	if pollErr != nil {
		t.Fatal(pollErr)
	}
	ledgerView, _, _ := s.l.SearchTasks(ctx, ledger.TaskQuery{Scope: ledger.Anyone, Limit: 1000})
	for _, m := range ledgerView {
		if final[m.TaskID] != m.Version {
			t.Errorf("%s: the poller ended at version %d, the ledger holds %d", m.TaskID, final[m.TaskID], m.Version)
		}
	}
}

func testRetention(t *testing.T, s *suite) {
	open := s.accept(t, message(1, "a"))
	closed := s.accept(t, message(2, "a"))
	if err := s.l.Published(ctx, ledger.OutboxEntry{Seq: open.OutboxSeqs[0], TaskID: open.TaskID},
		ledger.OutboxEntry{Seq: closed.OutboxSeqs[0], TaskID: closed.TaskID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.l.Apply(ctx, closed.TaskID, ledger.Change{Kind: ledger.ChangeStatus}, ledger.To(ledger.StatusCompleted, "done")); err != nil {
		t.Fatal(err)
	}
	if err := s.l.AddUnmatched(ctx, &ledger.Response{BundleID: "u-1", Identity: "u-1", Code: "ok"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.l.Purge(ctx, s.c.Now().Add(-time.Hour), 10); err != nil || n != 0 {
		t.Fatalf("nothing is old enough yet: %d %v", n, err)
	}
	s.c.Add(48 * time.Hour)
	if n, err := s.l.Purge(ctx, s.c.Now().Add(-time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("purged %d, want 1 (the closed exchange): %v", n, err)
	}
	if _, err := s.l.Task(ctx, open.TaskID, ledger.Anyone); err != nil {
		t.Errorf("an open exchange was purged: %v", err)
	}
	if _, err := s.l.Task(ctx, closed.TaskID, ledger.Anyone); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("the closed exchange is still there: %v", err)
	}
	if _, err := s.l.Bundle(ctx, "u-1", ledger.Anyone); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("an old unmatched response is still there: %v", err)
	}
	// A late answer for the open exchange is still recorded.
	if err := s.l.AddResponse(ctx, &ledger.Response{BundleID: "late", Identity: "late", TaskID: open.TaskID, Code: "ok"},
		ledger.To(ledger.StatusAccepted, "response ok")); err != nil {
		t.Errorf("a late answer: %v", err)
	}
	changes, _ := s.l.Changes(ctx, 0, 100)
	last := changes[len(changes)-1]
	purged := changes[len(changes)-2]
	if purged.Kind != ledger.ChangePurged || purged.TaskID != closed.TaskID || last.TaskID != open.TaskID {
		t.Errorf("the change log after the purge ends %+v, %+v", purged, last)
	}
}

func testOutbox(t *testing.T, s *suite) {
	m1 := s.accept(t, message(1, "a", "lab", "archive"))
	m2 := s.accept(t, message(2, "a"))
	pending, err := s.l.Pending(ctx, 0, 10)
	if err != nil || len(pending) != 3 || pending[0].TaskID != m1.TaskID || !bytes.Equal(pending[2].Body, m2.Body) {
		t.Fatalf("pending %+v %v", pending, err)
	}
	if after, _ := s.l.Pending(ctx, pending[0].Seq, 10); len(after) != 2 {
		t.Errorf("pending after the first: %d", len(after))
	}
	if err := s.l.Published(ctx, pending[0]); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.l.Task(ctx, m1.TaskID, ledger.Anyone); !got.RoutedAt.IsZero() || got.Version != 1 {
		t.Errorf("routed before every filler's publish: %+v", got)
	}
	if err := s.l.Published(ctx, pending[1], pending[2]); err != nil {
		t.Fatal(err)
	}
	got, _ := s.l.Task(ctx, m1.TaskID, ledger.Anyone)
	if got.RoutedAt.IsZero() || got.Version != 2 || got.BusinessStatus != "routed to lab, archive" {
		t.Errorf("after every publish: %+v", got)
	}
	if s.l.Backlog() != 0 {
		t.Errorf("backlog %d", s.l.Backlog())
	}
}

func testCallbacks(t *testing.T, s *suite) {
	m := message(1, "a")
	m.ResponseURL = "https://placer.example/fhir/$process-message"
	s.accept(t, m)
	for i := range 2 {
		if err := s.l.AddResponse(ctx, &ledger.Response{BundleID: fmt.Sprintf("b-%d", i), Identity: fmt.Sprintf("r-%d", i), TaskID: m.TaskID,
			Code: "ok", Body: []byte("{}")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	due, err := s.l.DueCallbacks(ctx, s.c.Now(), 0, 10)
	if err != nil || len(due) != 1 || due[0].BundleID != "b-0" || due[0].URL != m.ResponseURL || due[0].FHIRVersion != "4.0" {
		t.Fatalf("due %+v %v (one per task, the oldest)", due, err)
	}
	if err := s.l.CallbackFailed(ctx, due[0].Seq, s.c.Now().Add(time.Minute), "503"); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.l.DueCallbacks(ctx, s.c.Now(), 0, 10); len(due) != 0 {
		t.Errorf("a callback waiting for its retry is due: %+v (the later one waits behind it)", due)
	}
	s.c.Add(2 * time.Minute)
	due, _ = s.l.DueCallbacks(ctx, s.c.Now(), 0, 10)
	if len(due) != 1 || due[0].Attempts != 1 {
		t.Fatalf("after the wait: %+v", due)
	}
	if err := s.l.CallbackDone(ctx, due[0].Seq); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.l.DueCallbacks(ctx, s.c.Now(), 0, 10); len(due) != 1 || due[0].BundleID != "b-1" {
		t.Errorf("the next one: %+v", due)
	}
	if n, _ := s.l.Callbacks(ctx); n != 1 {
		t.Errorf("%d callbacks owed", n)
	}
	due, _ = s.l.DueCallbacks(ctx, s.c.Now(), 0, 10)
	if body, err := s.l.CallbackBody(ctx, due[0].Seq); err != nil || string(body) != "{}" {
		t.Errorf("callback body %q %v", body, err)
	}
	// A parked head blocks its task's later answers, and the Task says so.
	if err := s.l.AddResponse(ctx, &ledger.Response{BundleID: "b-2", Identity: "r-2", TaskID: m.TaskID, Code: "ok", Body: []byte("{}")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.l.CallbackParked(ctx, due[0].Seq, "placer answered 400"); err != nil {
		t.Fatal(err)
	}
	if err := s.l.CallbackParked(ctx, due[0].Seq, "again"); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.l.DueCallbacks(ctx, s.c.Now().Add(time.Hour), 0, 10); len(due) != 0 {
		t.Errorf("behind a parked callback: %+v", due)
	}
	parked, err := s.l.ParkedCallbacks(ctx, 10)
	if err != nil || len(parked) != 1 || parked[0].BundleID != "b-1" || parked[0].ParkReason != "placer answered 400" {
		t.Errorf("parked %+v %v", parked, err)
	}
	task, _ := s.l.Task(ctx, m.TaskID, ledger.Anyone)
	changes, _ := s.l.Changes(ctx, 0, 100)
	last := changes[len(changes)-1]
	if !strings.Contains(task.BusinessStatus, "placer answered 400") || last.Kind != ledger.ChangeCallbackParked || last.Version != task.Version {
		t.Errorf("the Task after parking: %q, last change %+v", task.BusinessStatus, last)
	}
}

func testFanOut(t *testing.T, s *suite) {
	m := s.accept(t, message(1, "a", "lab", "archive"))
	if len(m.FillerTasks) != 2 {
		t.Fatalf("filler Tasks %v", m.FillerTasks)
	}
	lab, archive := m.FillerTasks[0], m.FillerTasks[1]
	for i, id := range m.FillerTasks {
		sub, err := s.l.Task(ctx, id, ledger.Anyone)
		if err != nil || sub.PartOf != m.TaskID || len(sub.Fillers) != 1 || sub.Fillers[0] != m.Fillers[i] || sub.Status != ledger.StatusRequested {
			t.Fatalf("filler Task %s: %+v %v", id, sub, err)
		}
	}
	// The archive's delivery parks; the lab completes: both stand, and the
	// exchange follows the rule.
	if _, err := s.l.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeParked, Filler: "archive"}, ledger.To(ledger.StatusFailed, "delivery failed")); err != nil {
		t.Fatal(err)
	}
	if ex, _ := s.l.Task(ctx, m.TaskID, ledger.Anyone); ex.Status != ledger.StatusRequested {
		t.Errorf("after the archive failed, while the lab is open: %s", ex.Status)
	}
	r := &ledger.Response{BundleID: "b-1", Identity: "r-1", TaskID: m.TaskID, Filler: "lab", Code: "ok"}
	if err := s.l.AddResponse(ctx, r, ledger.To(ledger.StatusCompleted, "result final")); err != nil {
		t.Fatal(err)
	}
	ex, _ := s.l.Task(ctx, m.TaskID, ledger.Anyone)
	labTask, _ := s.l.Task(ctx, lab, ledger.Anyone)
	archiveTask, _ := s.l.Task(ctx, archive, ledger.Anyone)
	if ex.Status != ledger.StatusCompleted || labTask.Status != ledger.StatusCompleted || archiveTask.Status != ledger.StatusFailed || ex.Outputs != 1 {
		t.Errorf("exchange %s (%d outputs), lab %s, archive %s", ex.Status, ex.Outputs, labTask.Status, archiveTask.Status)
	}
	if !strings.Contains(ex.BusinessStatus, "lab completed") || !strings.Contains(ex.BusinessStatus, "archive failed") {
		t.Errorf("exchange business status %q", ex.BusinessStatus)
	}
	// Searches give exchange Tasks, unless they name part-of or owner.
	count := func(q ledger.TaskQuery) int {
		q.Scope, q.Limit = ledger.Anyone, 100
		got, _, err := s.l.SearchTasks(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if n := count(ledger.TaskQuery{}); n != 1 {
		t.Errorf("plain search: %d", n)
	}
	if n := count(ledger.TaskQuery{PartOf: m.TaskID}); n != 2 {
		t.Errorf("part-of: %d", n)
	}
	if n := count(ledger.TaskQuery{Owner: "archive"}); n != 1 {
		t.Errorf("owner archive: %d", n)
	}
	// A filler sees its own Task, not another filler's.
	if _, err := s.l.Task(ctx, lab, ledger.FillerScope([]string{"lab"})); err != nil {
		t.Errorf("the lab reading its Task: %v", err)
	}
	if _, err := s.l.Task(ctx, archive, ledger.FillerScope([]string{"lab"})); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("the lab reading the archive's Task: %v", err)
	}
	if _, err := s.l.ByIdentity(ctx, m.Identity, ledger.Anyone); err != nil {
		t.Errorf("the exchange by identity: %v", err)
	}
	if h, _ := s.l.History(ctx, archive, ledger.Anyone); len(h) < 2 {
		t.Errorf("the archive's history: %d versions", len(h))
	}
}

// A cancellation racing a delivery is decided in one transaction: either
// the delivery is stopped, or it counts as started and the cancellation
// fails; never both, never neither.
func testCancelRace(t *testing.T, s *suite) {
	for i := range 20 {
		m := s.accept(t, message(100+i, "a"))
		var started bool
		var cancelled ledger.Applied
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			var err error
			if started, err = s.l.StartDelivery(ctx, m.TaskID, "lab"); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			var err error
			if cancelled, err = s.l.CancelUndelivered(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeCancelled}, "cancelled"); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if started == cancelled.Changed {
			t.Fatalf("round %d: delivery started %v, cancelled %v", i, started, cancelled.Changed)
		}
		got, _ := s.l.Task(ctx, m.TaskID, ledger.Anyone)
		if (got.Status == ledger.StatusCancelled) != cancelled.Changed {
			t.Fatalf("round %d: status %s, cancelled %v", i, got.Status, cancelled.Changed)
		}
	}
}
