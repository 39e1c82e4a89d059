package router

import "testing"

func TestRecentSetForgetsTheOldest(t *testing.T) {
	r := newRecentSet(3)
	for _, s := range []int64{1, 2, 3, 3, 4} {
		r.add(s)
	}
	for s, want := range map[int64]bool{1: false, 2: true, 3: true, 4: true, 5: false} {
		if r.has(s) != want {
			t.Errorf("has(%d) = %v, want %v", s, !want, want)
		}
	}
}
