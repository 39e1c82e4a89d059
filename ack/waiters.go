package ack

import "sync"

// waiters hands a filler's response to the synchronous submission waiting
// for it. It is safe for concurrent use.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan []byte
}

func newWaiters() *waiters { return &waiters{m: map[string]chan []byte{}} }

// add registers a wait for taskID's first response.
func (w *waiters) add(taskID string) chan []byte {
	ch := make(chan []byte, 1)
	w.mu.Lock()
	w.m[taskID] = ch
	w.mu.Unlock()
	return ch
}

// remove ends the wait registered as ch.
func (w *waiters) remove(taskID string, ch chan []byte) {
	w.mu.Lock()
	if w.m[taskID] == ch {
		delete(w.m, taskID)
	}
	w.mu.Unlock()
}

// deliver hands body to the wait for taskID, if any; only the first response
// is delivered.
func (w *waiters) deliver(taskID string, body []byte) {
	w.mu.Lock()
	ch, ok := w.m[taskID]
	delete(w.m, taskID)
	w.mu.Unlock()
	if ok {
		ch <- body
	}
}
