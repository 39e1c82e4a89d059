package gateway

import (
	"context"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/router"
)

// LedgerOutbox lets the router's relay read the ledger's outbox.
type LedgerOutbox struct{ Ledger *ledger.SQLite }

var _ router.Outbox = LedgerOutbox{}

// Pending returns the oldest deliveries still owed to the broker.
func (o LedgerOutbox) Pending(ctx context.Context, limit int) ([]router.Delivery, error) {
	es, err := o.Ledger.Pending(ctx, 0, limit)
	ds := make([]router.Delivery, len(es))
	for i, e := range es {
		ds[i] = router.Delivery{Seq: e.Seq, TaskID: e.TaskID, Filler: e.Filler, Identity: e.Identity, Event: e.Event, FHIRVersion: e.FHIRVersion, Body: e.Body}
	}
	return ds, err
}

// Published forgets deliveries the broker confirmed.
func (o LedgerOutbox) Published(ctx context.Context, ds ...router.Delivery) error {
	es := make([]ledger.OutboxEntry, len(ds))
	for i, d := range ds {
		es[i] = ledger.OutboxEntry{Seq: d.Seq, TaskID: d.TaskID}
	}
	return o.Ledger.Published(ctx, es...)
}
