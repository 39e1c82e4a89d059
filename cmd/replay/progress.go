package replay

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Progress shows a run's results as they finish: a bar redrawn in place on
// a terminal, one plain line per message otherwise (logs, CI).
type Progress struct {
	w      io.Writer
	bar    bool
	total  int
	mu     sync.Mutex
	done   int
	failed int
}

// NewProgress writes to w; bar draws a bar instead of lines.
func NewProgress(w io.Writer, total int, bar bool) *Progress {
	return &Progress{w: w, bar: bar, total: total}
}

// IsTerminal reports whether f is a terminal (a character device).
func IsTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// Done records one finished message; Runner.Done takes it.
func (p *Progress) Done(r Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if v := r.Verdict(); v == VerdictFail || v == VerdictError {
		p.failed++
	}
	if !p.bar {
		fmt.Fprintf(p.w, "%-5s %s %s (%s)\n", r.Verdict(), r.Name, r.Outcome(), ms(r.Settled))
		return
	}
	const width = 30
	filled := width * p.done / max(p.total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d, %d failed ", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.done, p.total, p.failed)
}

// Finish ends the bar's line.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar && p.done > 0 {
		fmt.Fprintln(p.w)
	}
}
