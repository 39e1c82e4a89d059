package ack

import (
	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
)

// Party is who sends a message or asks about one: an authenticated
// partner, or with authentication off the anonymous party (the zero
// Party), whose scope is the exchanges nobody placed.
type Party struct {
	// ID is the partner's id ("" for the anonymous party).
	ID string
	// Anonymous: authentication is off, and the party may do anything.
	Anonymous bool
	// Events are the event patterns it may send as requests.
	Events []string
	// Fillers are the fillers it answers for.
	Fillers []string
	// Callbacks, when set, are URL prefixes its response-urls must be under.
	Callbacks []string
}

// Visible is what p may read, search and follow: the exchanges it placed
// and those routed to a filler it answers for.
func (p Party) Visible() ledger.Scope {
	if p.Anonymous {
		return ledger.Scope{}
	}
	return ledger.Scope{Placer: p.ID, Fillers: p.Fillers}
}

// asFiller is where p's responses and progress may correlate: the
// exchanges routed to a filler it answers for.
func (p Party) asFiller() ledger.Scope {
	if p.Anonymous {
		return ledger.Scope{}
	}
	return ledger.FillerScope(p.Fillers)
}

// asPlacer is where p's cancellations may correlate: its own orders.
func (p Party) asPlacer() ledger.Scope { return ledger.PlacerScope(p.ID) }

// mayPlace reports whether p may send a request with event ev.
func (p Party) mayPlace(ev envelope.Event) bool {
	if p.Anonymous {
		return true
	}
	for _, pattern := range p.Events {
		if router.EventMatches(pattern, ev) {
			return true
		}
	}
	return false
}

// mayCallBack reports whether target, normalised as the pusher dials it
// (CallbackURL), is under one of p's callback prefixes (any, when it lists
// none; callbacks.allow applies in any case).
func (p Party) mayCallBack(target string) bool {
	if p.Anonymous || len(p.Callbacks) == 0 {
		return true
	}
	u, err := CallbackURL(target)
	if err != nil {
		return false
	}
	for _, prefix := range p.Callbacks {
		if UnderPrefix(u.String(), prefix) {
			return true
		}
	}
	return false
}
