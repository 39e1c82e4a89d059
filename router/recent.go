package router

// recentSet remembers the last n seqs added, forgetting the oldest first.
// It is not safe for concurrent use.
type recentSet struct {
	ring []int64
	next int
	set  map[int64]struct{}
}

func newRecentSet(n int) *recentSet {
	return &recentSet{ring: make([]int64, n), set: make(map[int64]struct{}, n)}
}

func (r *recentSet) add(seq int64) {
	if _, ok := r.set[seq]; ok {
		return
	}
	if len(r.set) == len(r.ring) { // full: forget the oldest
		delete(r.set, r.ring[r.next])
	}
	r.ring[r.next] = seq
	r.set[seq] = struct{}{}
	r.next++
	if r.next == len(r.ring) {
		r.next = 0
	}
}

func (r *recentSet) has(seq int64) bool {
	_, ok := r.set[seq]
	return ok
}
