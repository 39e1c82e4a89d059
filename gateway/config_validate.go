package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/fhirgw/fhirgw/adapters"
	"net/url"
	"strings"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
)

// maxPerOrigin bounds callbacks.perOrigin: the pusher's calls in flight in
// all (ack.PusherConfig.Concurrency's default).
const maxPerOrigin = 64

// Validate checks the configuration as a whole and names every problem.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	// checkID checks the id of list[i]: present, unique in seen, and free of
	// the characters a RabbitMQ name made from it may not hold.
	checkID := func(list string, i int, id string, seen map[string]bool, forbidden, described string) {
		switch {
		case id == "":
			bad("%s[%d].id is empty", list, i)
		case seen[id]:
			bad("%s[%d].id %q is used twice", list, i, id)
		case strings.ContainsAny(id, forbidden):
			bad("%s[%d].id %q may not contain %s (it names a RabbitMQ queue)", list, i, id, described)
		}
		seen[id] = true
	}

	if c.HTTP.Addr == "" {
		bad("http.addr is empty")
	}
	if !strings.HasPrefix(c.HTTP.BasePath, "/") {
		bad("http.basePath %q must start with /", c.HTTP.BasePath)
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		bad("http.maxBodyBytes must be positive")
	}
	if c.HTTP.PublicURL != "" {
		if u, err := url.Parse(c.HTTP.PublicURL); err != nil || u.Scheme == "" || u.Host == "" {
			bad("http.publicUrl %q is not an absolute URL", c.HTTP.PublicURL)
		}
	}
	if v, err := envelope.ParseVersion(c.FHIRVersion); err != nil || v == envelope.VersionAuto {
		bad("fhirVersion %q must be 4.0 or 5.0", c.FHIRVersion)
	}
	if c.AMQP.URL == "" {
		bad("amqp.url is empty")
	}
	if c.AMQP.Prefix == "" || strings.ContainsAny(c.AMQP.Prefix, " #*") {
		bad("amqp.prefix %q must be a non-empty name without spaces, '#' or '*'", c.AMQP.Prefix)
	}
	switch c.Ledger.Driver {
	case "sqlite":
		if c.Ledger.DSN == "" {
			bad("ledger.dsn is empty")
		}
	case "postgres":
		bad("ledger.driver postgres is not available in this release; use sqlite")
	default:
		bad("ledger.driver %q is unknown; use sqlite", c.Ledger.Driver)
	}
	if c.ReliableCacheMinutes <= 0 {
		bad("reliableCacheMinutes must be positive")
	}
	if c.Outbox.MaxBacklog <= 0 {
		bad("outbox.maxBacklog must be positive")
	}
	if c.Retention <= 0 {
		bad("retention must be a positive duration (e.g. 720h)")
	}

	fillers := map[string]bool{}
	for i, f := range c.Fillers {
		checkID("fillers", i, f.ID, fillers, " #*.", "spaces, '.', '#' or '*'")
		if f.Retry.MaxAttempts >= router.DefaultDeliveryLimit {
			bad("fillers[%d] (%s): retry.maxAttempts must stay under the queue's delivery limit of %d", i, f.ID, router.DefaultDeliveryLimit)
		}
		kind, ok := adapters.KindOf(f.Adapter)
		if !ok {
			bad("fillers[%d] (%s): adapter %q is unknown; use %s", i, f.ID, f.Adapter, adapters.KindNames())
		} else if err := kind.Check(f.Spec()); err != nil {
			bad("fillers[%d] (%s): %v", i, f.ID, err)
		}
	}
	for i, r := range c.Routes {
		if r.Event == "" {
			bad("routes[%d].event is empty", i)
		}
		if len(r.Fillers) == 0 {
			bad("routes[%d] (%s) names no fillers", i, r.Event)
		}
		for _, id := range r.Fillers {
			if !fillers[id] {
				bad("routes[%d] (%s) names filler %q, which is not in fillers", i, r.Event, id)
			}
		}
		if r.SyncTimeout < 0 || r.AckDeadline < 0 {
			bad("routes[%d] (%s): durations must not be negative", i, r.Event)
		}
	}
	partnerIDs, amqpUsers := map[string]bool{}, map[string]bool{}
	for i, p := range c.Partners {
		checkID("partners", i, p.ID, partnerIDs, " #*", "spaces, '#' or '*'")
		if p.AMQPUser != "" && amqpUsers[p.AMQPUser] {
			bad("partners[%d] (%s): amqpUser %q belongs to another partner too", i, p.ID, p.AMQPUser)
		}
		amqpUsers[p.AMQPUser] = true
		if j := p.JWT; j != (JWTConfig{}) {
			if u, err := url.Parse(j.JWKSURL); j.Issuer == "" || j.Audience == "" || err != nil || u.Host == "" {
				bad("partners[%d] (%s): jwt needs issuer, jwksUrl (an absolute URL) and audience", i, p.ID)
			}
		}
		if h, err := hex.DecodeString(p.APIKeySHA256); p.APIKeySHA256 != "" && (err != nil || len(h) != sha256.Size) {
			bad("partners[%d] (%s): apiKeySHA256 must be the hex SHA-256 of the key (64 hex digits)", i, p.ID)
		}
		if p.APIKeySHA256 == "" && p.JWT == (JWTConfig{}) && p.AMQPUser == "" {
			bad("partners[%d] (%s) has no credentials: set apiKeySHA256, jwt or amqpUser", i, p.ID)
		}
	}
	for i, p := range c.Callbacks.Allow {
		if u, err := url.Parse(p); err != nil || u.Scheme == "" || u.Host == "" {
			bad("callbacks.allow[%d] %q is not an absolute URL prefix", i, p)
		}
	}
	if r := c.Callbacks.Retry; r.MaxAttempts <= 0 || r.MaxAge <= 0 || r.InitialBackoff <= 0 || r.MaxBackoff <= 0 {
		bad("callbacks.retry.maxAttempts, .maxAge, .initialBackoff and .maxBackoff must be positive")
	} else if r.MaxBackoff < r.InitialBackoff {
		bad("callbacks.retry.maxBackoff (%s) must not be under callbacks.retry.initialBackoff (%s)", r.MaxBackoff.Std(), r.InitialBackoff.Std())
	}
	if n := c.Callbacks.PerOrigin; n <= 0 || n > maxPerOrigin {
		bad("callbacks.perOrigin must be between 1 and %d (the answers pushed at once in all)", maxPerOrigin)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
}
