package replay

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
)

// Runner sends a Plan to a Target and checks each answer.
type Runner struct {
	// Target takes the messages.
	Target Target
	// Concurrency is how many messages are in flight at once (default 1:
	// one after the other).
	Concurrency int
	// Rate caps how many messages are sent per second (0: no cap).
	Rate float64
	// Fresh, when set, gives every message new identities (--fresh-ids).
	Fresh *Freshener
	// Options are the target's: their APIKey and Timeout also serve the
	// Task reads.
	Options TargetOptions
	// Poll is how often a Task is read while waiting (default 100ms).
	Poll time.Duration
	// Done, when set, is called as each message finishes.
	Done func(r Result)
}

// Result is what one message got, and its verdict.
type Result struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Status is the immediate answer's HTTP status (0: nothing came back).
	Status int `json:"status"`
	// Issues are the answer's OperationOutcome issue codes; Diagnostics the
	// first issue's diagnostics.
	Issues      []string `json:"issues,omitempty"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Duplicate   bool     `json:"duplicate"`
	// Location is the Task (or Bundle) the answer concerns.
	Location string `json:"location,omitempty"`
	// Response, Task and Fillers are what followed: the filler's response
	// code, the Task's status and its fillers, as last seen.
	Response string   `json:"response,omitempty"`
	Task     string   `json:"task,omitempty"`
	Fillers  []string `json:"fillers,omitempty"`
	// Elapsed is the time to the immediate answer; Settled the time until
	// the expectations were met or the wait ended.
	Elapsed time.Duration `json:"-"`
	Settled time.Duration `json:"-"`
	// Expect is what was expected (empty: nothing checked).
	Expect Expect `json:"expect"`
	// Error says why the message could not be sent or followed.
	Error string `json:"error,omitempty"`
	// Differences are the expectations not met, one sentence each.
	Differences []string `json:"differences,omitempty"`
}

// Run sends the plan and returns one result per item, in plan order. It
// stops sending when ctx ends; unsent items get an error result.
func (rn *Runner) Run(ctx context.Context, plan Plan) []Result {
	out := make([]Outgoing, len(plan))
	results := make([]Result, len(plan))
	parser := envelope.NewParser(envelope.Options{})
	for i, it := range plan { // freshened in plan order: ids map the same on every run
		results[i] = Result{Name: it.Name, File: it.File, Expect: it.Expect}
		b, err := os.ReadFile(it.File)
		if err != nil {
			results[i].Error = err.Error()
			continue
		}
		out[i] = Outgoing{Body: b, FHIRVersion: it.FHIRVersion, Async: it.Async}
		// A valid message says its version, and may get fresh ids; anything
		// else goes as it is, with the gateway's default version.
		if msg, err := parser.Parse(b, envelope.VersionAuto); err == nil {
			out[i].FHIRVersion = firstSet(it.FHIRVersion, msg.Version.String())
			if rn.Fresh != nil {
				out[i].Body = rn.Fresh.freshen(msg)
			}
		}
	}
	tasks := newClient(rn.Options)
	done := make([]chan struct{}, len(plan))
	for i := range done {
		done[i] = make(chan struct{})
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(rn.Concurrency, 1) {
		wg.Go(func() {
			for i := range work {
				rn.one(ctx, tasks, plan[i], out[i], &results[i], done[i], done)
			}
		})
	}
	var tick <-chan time.Time
	if rn.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rn.Rate))
		defer t.Stop()
		tick = t.C
	}
	for i := range plan {
		if tick != nil && i > 0 {
			select {
			case <-tick:
			case <-ctx.Done():
			}
		}
		work <- i
	}
	close(work)
	wg.Wait()
	return results
}

// one sends a message once what it waits for has finished (done holds
// every item's completion), follows it up, checks it, and closes finished.
func (rn *Runner) one(ctx context.Context, tasks *client, it Item, m Outgoing, r *Result, finished chan struct{}, done []chan struct{}) {
	defer close(finished)
	defer func() {
		if rn.Done != nil {
			rn.Done(*r)
		}
	}()
	for _, j := range it.After {
		select {
		case <-done[j]:
		case <-ctx.Done():
		}
	}
	if r.Error != "" {
		return
	}
	if ctx.Err() != nil {
		r.Error = "not sent: " + ctx.Err().Error()
		return
	}
	start := time.Now()
	x, err := rn.Target.Send(ctx, m)
	r.Elapsed = time.Since(start)
	if err != nil {
		r.Error = err.Error()
		return
	}
	a := x.Answer
	r.Status, r.Duplicate, r.Location = a.Status, a.Duplicate, a.Location
	r.Issues, r.Diagnostics = issueCodes(a.Body)
	r.Response = responseCode(a.Body)
	if it.Expect.follows() {
		follow(ctx, tasks, rn.Poll, it, x, r)
	}
	r.Settled = time.Since(start)
	r.Differences = differences(it.Expect, *r, it.Within)
}

// follow waits, up to the item's time limit, for what the answer leads to:
// answers on the reply queue, and the Task's status and fillers.
func follow(ctx context.Context, c *client, every time.Duration, it Item, x Exchange, r *Result) {
	if !isTask(r.Location) {
		return // a rejection, or an answer about a Bundle: nothing follows
	}
	deadline := time.NewTimer(it.Within)
	defer deadline.Stop()
	poll := time.NewTicker(firstSet(every, 100*time.Millisecond))
	defer poll.Stop()
	for {
		t, err := c.readTask(ctx, r.Location)
		if err != nil {
			r.Error = err.Error()
			return
		}
		r.Task, r.Fillers = t.Status, t.Fillers
		if r.Response == "" {
			r.Response = t.Response
		}
		if met(it.Expect, *r) || ledger.Status(t.Status).Terminal() {
			return
		}
		select {
		case a := <-x.Later:
			if code := responseCode(a.Body); code != "" && r.Response == "" {
				r.Response = code
			}
		case <-poll.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// met reports whether everything that follows the answer is as expected.
func met(e Expect, r Result) bool {
	return (e.Response == "" || e.Response == r.Response) && (e.Task == "" || e.Task == r.Task) &&
		(len(e.Fillers) == 0 || sameSet(e.Fillers, r.Fillers))
}

// differences are the expectations r does not meet, one sentence each.
func differences(e Expect, r Result, limit time.Duration) []string {
	var out []string
	if e.Status != 0 && e.Status != r.Status {
		out = append(out, fmt.Sprintf("status: want %d, got %d", e.Status, r.Status))
	}
	if e.Issue != "" && !slices.Contains(r.Issues, e.Issue) {
		out = append(out, fmt.Sprintf("issue: want %s, got %s", e.Issue, orNone(strings.Join(r.Issues, ", "))))
	}
	if e.Duplicate != nil && *e.Duplicate != r.Duplicate {
		out = append(out, fmt.Sprintf("duplicate: want %t, got %t", *e.Duplicate, r.Duplicate))
	}
	within := fmt.Sprintf(" within %v", limit)
	if e.Response != "" && e.Response != r.Response {
		out = append(out, fmt.Sprintf("response: want %s%s, got %s", e.Response, within, orNone(r.Response)))
	}
	if e.Task != "" && e.Task != r.Task {
		out = append(out, fmt.Sprintf("task: want %s%s, got %s", e.Task, within, orNone(r.Task)))
	}
	if len(e.Fillers) > 0 && !sameSet(e.Fillers, r.Fillers) {
		out = append(out, fmt.Sprintf("fillers: want %s, got %s", strings.Join(e.Fillers, ", "), orNone(strings.Join(r.Fillers, ", "))))
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
