package ledger

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// owe accepts a task pushed to url and records n responses for it.
func owe(t *testing.T, l *SQLite, task, url string, n int) {
	t.Helper()
	ctx := context.Background()
	m := &Message{TaskID: task, Identity: "id-" + task, FHIRVersion: "5.0", Event: "e", Body: []byte("{}"), ResponseURL: url,
		Status: "requested", Answer: Answer{Status: 202}}
	if err := l.Accept(ctx, m); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := &Response{BundleID: fmt.Sprintf("%s-b%d", task, i), Identity: fmt.Sprintf("%s-r%d", task, i), TaskID: task, Code: "ok",
			Body: []byte(fmt.Sprintf("%s body %d", task, i))}
		if err := l.AddResponse(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// heads lists the due heads as task/bundle pairs.
func heads(t *testing.T, l *SQLite, now time.Time, after int64, limit int) ([]string, []Callback) {
	t.Helper()
	cs, err := l.DueCallbacks(context.Background(), now, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.BundleID)
	}
	return out, cs
}

func TestDueCallbacksGivesEachTaskItsHead(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	owe(t, l, "a", "https://a.example/fhir", 3)
	c.Add(time.Second)
	owe(t, l, "b", "https://b.example/fhir", 2)
	owe(t, l, "polled", "", 2)

	got, cs := heads(t, l, c.Now(), 0, 10)
	if fmt.Sprint(got) != "[a-b0 b-b0]" {
		t.Fatalf("due heads %v, want [a-b0 b-b0]", got)
	}
	a := cs[0]
	if a.TaskID != "a" || a.URL != "https://a.example/fhir" || a.FHIRVersion != "5.0" || a.Attempts != 0 || a.Body != nil ||
		!a.CreatedAt.Equal(c.Now().Add(-time.Second)) {
		t.Errorf("head of a: %+v", a)
	}
	if body, err := l.CallbackBody(ctx, a.Seq); err != nil || string(body) != "a body 0" {
		t.Errorf("body %q, %v", body, err)
	}
	// Paging: after the first head only the second is left; a limit of one
	// gives the first.
	if got, _ := heads(t, l, c.Now(), a.Seq, 10); fmt.Sprint(got) != "[b-b0]" {
		t.Errorf("after %d: %v", a.Seq, got)
	}
	if got, _ := heads(t, l, c.Now(), 0, 1); fmt.Sprint(got) != "[a-b0]" {
		t.Errorf("limit 1: %v", got)
	}

	// A failed head is not due until its next attempt, and its task's later
	// callbacks wait for it.
	if err := l.CallbackFailed(ctx, a.Seq, c.Now().Add(time.Minute), "status 503"); err != nil {
		t.Fatal(err)
	}
	if got, _ := heads(t, l, c.Now(), 0, 10); fmt.Sprint(got) != "[b-b0]" {
		t.Errorf("with a's head waiting: %v", got)
	}
	c.Add(time.Minute)
	if _, cs := heads(t, l, c.Now(), 0, 10); len(cs) != 2 || cs[0].Attempts != 1 || cs[0].LastError != "status 503" {
		t.Errorf("a's head again: %+v", cs)
	}
	// Done: the next callback is the head.
	if err := l.CallbackDone(ctx, a.Seq); err != nil {
		t.Fatal(err)
	}
	got, cs = heads(t, l, c.Now(), 0, 10)
	if fmt.Sprint(got) != "[a-b1 b-b0]" {
		t.Fatalf("after a's first was done: %v", got)
	}

	// A parked head blocks its task; the other task carries on.
	c.Add(time.Second)
	if err := l.CallbackParked(ctx, cs[0].Seq, "8 attempts failed"); err != nil {
		t.Fatal(err)
	}
	if got, _ := heads(t, l, c.Now().Add(time.Hour), 0, 10); fmt.Sprint(got) != "[b-b0]" {
		t.Errorf("with a's head parked: %v", got)
	}
	if err := l.CallbackParked(ctx, cs[0].Seq, "again"); err != nil {
		t.Fatal(err)
	}
	parked, err := l.ParkedCallbacks(ctx, 10)
	if err != nil || len(parked) != 1 {
		t.Fatalf("parked %+v, %v", parked, err)
	}
	if p := parked[0]; p.BundleID != "a-b1" || p.ParkReason != "8 attempts failed" || !p.ParkedAt.Equal(c.Now()) || p.TaskID != "a" {
		t.Errorf("parked %+v", p)
	}
	if n, _ := l.Callbacks(ctx); n != 4 {
		t.Errorf("%d callbacks owed, want 4 (a parked, one of a waiting behind it, two of b)", n)
	}
	if _, err := l.CallbackBody(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("body of a missing callback: %v", err)
	}
}
