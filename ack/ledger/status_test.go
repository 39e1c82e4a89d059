package ledger

import "testing"

func TestAdvance(t *testing.T) {
	cases := []struct {
		from, to, want Status
		moved          bool
	}{
		{"requested", "accepted", "accepted", true},
		{"accepted", "received", "accepted", false},
		{"accepted", "in-progress", "in-progress", true},
		{"in-progress", "in-progress", "in-progress", false},
		{"in-progress", "completed", "completed", true},
		{"completed", "in-progress", "completed", false},
		{"completed", "failed", "completed", false},
		{"requested", "rejected", "rejected", true},
		{"accepted", "bogus", "accepted", false},
		{"in-progress", "on-hold", "on-hold", true},
		{"on-hold", "in-progress", "in-progress", true},
		{"failed", "requested", "failed", false},
		{"requested", "received", "received", true},
		{"received", "requested", "received", false},
	}
	for _, tc := range cases {
		if got, moved := Advance(tc.from, tc.to); got != tc.want || moved != tc.moved {
			t.Errorf("%s -> %s: %s %v, want %s %v", tc.from, tc.to, got, moved, tc.want, tc.moved)
		}
	}
}

func TestStatusTable(t *testing.T) {
	for s := range statusTable {
		for _, n := range statusTable[s].next {
			if !n.Known() {
				t.Errorf("%s moves to %s, which is not in the table", s, n)
			}
		}
		if s.Terminal() != (len(statusTable[s].next) == 0) {
			t.Errorf("%s: Terminal %v", s, s.Terminal())
		}
	}
	for _, s := range []Status{StatusCompleted, StatusRejected, StatusFailed, StatusCancelled} {
		if !s.Terminal() {
			t.Errorf("%s is not terminal", s)
		}
	}
	if !StatusFailed.Resendable() || !StatusRejected.Resendable() || StatusCompleted.Resendable() {
		t.Error("only failed and rejected deliveries are resent")
	}
}

func TestDerive(t *testing.T) {
	cases := []struct {
		fillers []Status
		want    Status
	}{
		{[]Status{"requested", "requested"}, "requested"},
		{[]Status{"received", "requested"}, "received"},
		{[]Status{"completed", "requested"}, "requested"},
		{[]Status{"completed", "in-progress"}, "in-progress"},
		{[]Status{"completed", "failed"}, "completed"},
		{[]Status{"failed", "completed"}, "completed"},
		{[]Status{"failed", "rejected"}, "rejected"},
		{[]Status{"failed", "cancelled"}, "failed"},
		{[]Status{"cancelled", "cancelled"}, "cancelled"},
	}
	for _, tc := range cases {
		if got := Derive(tc.fillers); got != tc.want {
			t.Errorf("Derive(%v) = %s, want %s", tc.fillers, got, tc.want)
		}
	}
}
