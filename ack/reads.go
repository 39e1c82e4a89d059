package ack

import (
	"context"
	"errors"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
)

// Every read is scoped to what the asker may see (Party.Visible); anything
// else is ErrNotFound, exactly as for what does not exist.

// Task returns an exchange's Task at its current version, with the
// responses it lists.
func (c *Core) Task(ctx context.Context, from Party, taskID string) (*ledger.Message, []ledger.Response, error) {
	m, err := c.ledger.Task(ctx, taskID, from.Visible())
	if err != nil {
		return nil, nil, notFound(err, "Task/"+taskID)
	}
	outs, err := c.outputs(ctx, m)
	return m, outs, err
}

// TaskVersion returns a Task as it was at version, with the responses it
// listed then.
func (c *Core) TaskVersion(ctx context.Context, from Party, taskID string, version int) (*ledger.Message, []ledger.Response, error) {
	m, err := c.ledger.TaskVersion(ctx, taskID, version, from.Visible())
	if err != nil {
		return nil, nil, notFound(err, "Task/"+taskID+"/_history/"+itoa(version))
	}
	outs, err := c.outputs(ctx, m)
	return m, outs, err
}

// History returns every version of a Task, newest first, and every
// response it lists (each version lists the first Outputs of them).
func (c *Core) History(ctx context.Context, from Party, taskID string) ([]*ledger.Message, []ledger.Response, error) {
	vs, err := c.ledger.History(ctx, taskID, from.Visible())
	if err != nil {
		return nil, nil, notFound(err, "Task/"+taskID)
	}
	outs, err := c.ledger.Outputs(ctx, taskID)
	return vs, outs[taskID], err
}

// Search returns the Tasks q selects among those from may see, with the
// responses of each, and the number of matches when q.Total asks.
func (c *Core) Search(ctx context.Context, from Party, q ledger.TaskQuery) ([]*ledger.Message, map[string][]ledger.Response, int, error) {
	q.Scope = from.Visible()
	tasks, total, err := c.ledger.SearchTasks(ctx, q)
	if err != nil {
		return nil, nil, 0, err
	}
	ids := make([]string, len(tasks))
	for i, m := range tasks {
		ids[i] = m.TaskID
	}
	outs, err := c.ledger.Outputs(ctx, ids...)
	return tasks, outs, total, err
}

// Bundle returns a stored response or progress message and the FHIR
// version of its exchange (def for an unmatched one).
func (c *Core) Bundle(ctx context.Context, from Party, bundleID string, def envelope.Version) (*ledger.Response, envelope.Version, error) {
	r, err := c.ledger.Bundle(ctx, bundleID, from.Visible())
	if err != nil {
		return nil, def, notFound(err, "Bundle/"+bundleID)
	}
	if r.TaskID != "" {
		if m, err := c.ledger.Task(ctx, r.TaskID, ledger.Anyone); err == nil {
			v, _ := envelope.ParseVersion(m.FHIRVersion)
			return r, v, nil
		}
	}
	return r, def, nil
}

// Ping checks that the ledger answers.
func (c *Core) Ping(ctx context.Context) error {
	_, err := c.ledger.Task(ctx, "readiness-probe", ledger.Anyone)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	}
	return err
}

// outputs are the responses m lists at its version.
func (c *Core) outputs(ctx context.Context, m *ledger.Message) ([]ledger.Response, error) {
	all, err := c.ledger.Outputs(ctx, m.TaskID)
	if err != nil {
		return nil, err
	}
	return OutputsAt(m, all[m.TaskID]), nil
}

// OutputsAt is the part of a task's responses its version m listed.
func OutputsAt(m *ledger.Message, all []ledger.Response) []ledger.Response {
	return all[:min(len(all), m.Outputs)]
}

// notFound is ErrNotFound for name when err is the ledger's, else err.
func notFound(err error, name string) error {
	if errors.Is(err, ledger.ErrNotFound) {
		return reject(ErrNotFound, envelope.IssueNotFound, "", "there is no %s", name)
	}
	return err
}
