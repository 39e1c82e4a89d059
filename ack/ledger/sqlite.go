package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// SQLite is the embedded ledger: one file, WAL, synchronous=FULL.
type SQLite struct {
	write    *sql.DB // one connection, owned by the writer goroutine
	read     *sql.DB // readers; WAL lets them run beside the writer
	now      func() time.Time
	window   time.Duration
	maxBatch int
	// lastAt is the instant (µs) of the newest change, owned by the writer:
	// every change gets a later one (see stamp).
	lastAt int64

	conn  *sql.Conn            // the writer's connection, held while Run runs
	stmts map[string]*sql.Stmt // the writer's prepared statements, by SQL text

	ops       chan *op
	closing   chan struct{}
	closeOnce sync.Once
	stopped   chan struct{}
	running   atomic.Bool
	backlog   atomic.Int64 // outbox rows, kept in step with commits
}

type op struct {
	// isolated runs fn in a savepoint, so that its failure undoes its own
	// writes only. Without it fn must fail only before writing (returning
	// an error wrapped by unwritten); any other failure aborts the batch.
	isolated bool
	fn       func(tx *wtx) error
	// after runs once the transaction holding fn has committed (fn succeeded).
	after func()
	done  chan error
	// ctx is the caller's: an operation whose caller gave up before the
	// writer reached it is skipped, never half-observed.
	ctx context.Context
}

// OpenSQLite opens (creating if needed) the ledger at path and migrates its
// schema. Call Run to start writing and Close when done.
func OpenSQLite(ctx context.Context, path string, opts Options) (*SQLite, error) {
	opts = opts.withDefaults()
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	// No checkpoints in the writer's commits: they would stall it for tens of
	// milliseconds; Run checkpoints from a reader connection instead.
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	l := &SQLite{
		write: w, read: r, now: opts.Now, window: opts.DuplicateWindow, maxBatch: opts.MaxBatch,
		ops: make(chan *op), closing: make(chan struct{}), stopped: make(chan struct{}),
	}
	if err := migrate(ctx, w); err != nil {
		l.closeDBs()
		return nil, err
	}
	var n int64
	if err := r.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("ledger: count outbox: %w", err)
	}
	l.backlog.Store(n)
	if err := r.QueryRowContext(ctx, `SELECT coalesce(max(at), 0) FROM changes`).Scan(&l.lastAt); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("ledger: read the change log: %w", err)
	}
	return l, nil
}

// Run writes until ctx ends or Close is called, then finishes the operations
// already queued. It returns nil after Close, ctx's error otherwise.
func (l *SQLite) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("ledger: Run called twice")
	}
	defer close(l.stopped)
	conn, err := l.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	l.conn, l.stmts = conn, map[string]*sql.Stmt{}
	defer func() {
		for _, s := range l.stmts {
			s.Close()
		}
		conn.Close()
	}()
	checkpointed := make(chan struct{})
	stopCheckpoints := make(chan struct{})
	go func() { l.checkpoints(stopCheckpoints); close(checkpointed) }()
	defer func() { close(stopCheckpoints); <-checkpointed }()
	for {
		select {
		case o := <-l.ops:
			l.commit(l.gather(o))
		case <-l.closing:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkpoints copies the WAL back into the database every 5 seconds without
// blocking the writer (PASSIVE), so the WAL stays small.
func (l *SQLite) checkpoints(stop <-chan struct{}) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = l.read.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
			cancel()
		}
	}
}

// gather collects the operations already waiting, up to MaxBatch.
func (l *SQLite) gather(first *op) []*op {
	batch := []*op{first}
	for len(batch) < l.maxBatch {
		select {
		case o := <-l.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// commit runs a batch in one transaction, each operation in a savepoint.
func (l *SQLite) commit(batch []*op) {
	results := make([]error, len(batch))
	ctx := context.Background() // a started commit finishes; callers may stop waiting
	tx := &wtx{ctx: ctx, l: l}
	if _, err := tx.exec("BEGIN IMMEDIATE"); err != nil {
		for _, o := range batch {
			o.done <- fmt.Errorf("ledger: begin: %w", err)
		}
		return
	}
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if !o.isolated {
			err := o.fn(tx)
			var clean *unwrittenError
			if err != nil && !errors.As(err, &clean) {
				l.abort(tx, batch, fmt.Errorf("ledger: batch aborted: %w", err))
				return
			}
			if clean != nil {
				err = clean.err // the caller sees its own error, not the marker
			}
			results[i] = err
			continue
		}
		if _, err := tx.exec("SAVEPOINT op"); err != nil {
			results[i] = err
			continue
		}
		if err := o.fn(tx); err != nil {
			results[i] = err
			if _, rerr := tx.exec("ROLLBACK TO op"); rerr != nil {
				results[i] = errors.Join(err, rerr)
			}
		}
		if _, err := tx.exec("RELEASE op"); err != nil && results[i] == nil {
			results[i] = err
		}
	}
	if _, err := tx.exec("COMMIT"); err != nil {
		l.abort(tx, batch, fmt.Errorf("ledger: commit: %w", err))
		return
	}
	for i, o := range batch {
		if results[i] == nil && o.after != nil {
			o.after()
		}
		o.done <- results[i]
	}
}

// abort rolls the batch back and fails every operation in it with err.
func (l *SQLite) abort(tx *wtx, batch []*op, err error) {
	_, _ = tx.exec("ROLLBACK")
	for _, o := range batch {
		o.done <- err
	}
}

// unwrittenError marks an operation's failure that happened before it wrote
// anything, so the batch can commit without it.
type unwrittenError struct{ err error }

func (e *unwrittenError) Error() string { return e.err.Error() }
func (e *unwrittenError) Unwrap() error { return e.err }

// unwritten wraps the failure of an operation that wrote nothing.
func unwritten(err error) error { return &unwrittenError{err} }

// do queues fn for the writer, in a savepoint of its own, and waits for its
// commit.
func (l *SQLite) do(ctx context.Context, fn func(*wtx) error, after func()) error {
	return l.submit(ctx, &op{isolated: true, fn: fn, after: after})
}

// doUnisolated queues fn without a savepoint (see op.isolated): for the
// frequent operations, whose expected failures happen before they write.
func (l *SQLite) doUnisolated(ctx context.Context, fn func(*wtx) error, after func()) error {
	return l.submit(ctx, &op{fn: fn, after: after})
}

func (l *SQLite) submit(ctx context.Context, o *op) error {
	o.done, o.ctx = make(chan error, 1), ctx
	select {
	case l.ops <- o:
	case <-l.closing:
		return ErrClosed
	case <-l.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// The writer owns o now: it skips o if ctx has ended by the time it gets
	// there, and otherwise finishes it (a commit is short), so the caller
	// always learns the real outcome and fn's captures are never raced.
	select {
	case err := <-o.done:
		return err
	case <-l.stopped:
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// wtx is the writer's open transaction. Its statements run on the writer's
// connection and are prepared once for the ledger's life, so SQL is parsed
// once, not once per operation.
type wtx struct {
	ctx context.Context
	l   *SQLite
}

func (t *wtx) stmt(query string) (*sql.Stmt, error) {
	if s, ok := t.l.stmts[query]; ok {
		return s, nil
	}
	s, err := t.l.conn.PrepareContext(t.ctx, query)
	if err != nil {
		return nil, fmt.Errorf("ledger: prepare: %w", err)
	}
	t.l.stmts[query] = s
	return s, nil
}

func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	s, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(t.ctx, args...)
}

func (t *wtx) queryRow(query string, args ...any) rowScanner {
	s, err := t.stmt(query)
	if err != nil {
		return errRow{err}
	}
	return s.QueryRowContext(t.ctx, args...)
}

func (t *wtx) query(query string, args ...any) (*sql.Rows, error) {
	s, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(t.ctx, args...)
}

// stamp is the instant of a change, in microseconds: the clock's, or one
// past the newest change's when the clock is not ahead of it. The writer
// assigns stamps in commit order, so no later commit can undercut an
// instant a reader has seen.
func (t *wtx) stamp() int64 {
	at := t.l.now().UnixMicro()
	if at <= t.l.lastAt {
		at = t.l.lastAt + 1
	}
	t.l.lastAt = at
	return at
}

// stamps reserves n consecutive instants (see stamp) and returns the first.
func (t *wtx) stamps(n int) int64 {
	first := t.stamp()
	t.l.lastAt = first + int64(max(n, 1)) - 1
	return first
}

// errRow is a row that fails to scan with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// Close stops the writer once the operations already handed to it have
// committed, then closes the database.
func (l *SQLite) Close(ctx context.Context) error {
	l.closeOnce.Do(func() { close(l.closing) })
	if l.running.Load() {
		select {
		case <-l.stopped:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return l.closeDBs()
}

func (l *SQLite) closeDBs() error {
	return errors.Join(l.read.Close(), l.write.Close())
}

// Backlog is how many publishes the outbox holds.
func (l *SQLite) Backlog() int { return int(l.backlog.Load()) }

func (l *SQLite) ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

var _ Ledger = (*SQLite)(nil)
