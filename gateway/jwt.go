package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// JWKS caching: a key set is kept this long, and refetched at most this
// often when a token names a key the set lacks (keys rotate).
const (
	jwksTTL          = 10 * time.Minute
	jwksMinRefresh   = 10 * time.Second
	jwtAcceptedSkew  = 30 * time.Second
	jwksFetchTimeout = 10 * time.Second
)

// jwksCache holds one partner's JSON Web Key Set (lestrrat-go/jwx fetches
// and parses it).
type jwksCache struct {
	url string

	mu      sync.Mutex
	set     jwk.Set
	fetched time.Time
}

// keys returns the key set, fetching it when missing, stale, or (refresh)
// when a token named a key it lacked and the last fetch is old enough.
func (c *jwksCache) keys(ctx context.Context, refresh bool) (jwk.Set, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	age := time.Since(c.fetched)
	if c.set != nil && age < jwksTTL && (!refresh || age < jwksMinRefresh) {
		return c.set, nil
	}
	fctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	set, err := jwk.Fetch(fctx, c.url)
	if err != nil {
		if c.set != nil {
			return c.set, nil // keep serving the last good set
		}
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	c.set, c.fetched = set, time.Now()
	return set, nil
}

// looksLikeJWT reports whether a bearer credential is a compact JWS.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// verifyJWT returns the partner whose issuer signed the token, if the token
// is valid: signature by a key of the partner's JWKS, issuer, audience,
// and an expiry that has not passed.
func (a *authenticator) verifyJWT(ctx context.Context, token string) (*partner, error) {
	unverified, err := jwt.ParseInsecure([]byte(token))
	if err != nil {
		return nil, fmt.Errorf("not a JWT: %w", err)
	}
	iss, _ := unverified.Issuer()
	subject := tokenSubject(unverified)
	// Partners naming the token's subject first; then an issuer's partner
	// that names no subject (it takes every subject of its issuer).
	for _, exact := range []bool{true, false} {
		for _, p := range a.partners {
			if p.jwks == nil || p.JWT.Issuer != iss || (p.JWT.Subject != "") != exact || (exact && p.JWT.Subject != subject) {
				continue
			}
			verified, err := p.parseJWT(ctx, token, false)
			if err != nil && strings.Contains(err.Error(), "key") {
				verified, err = p.parseJWT(ctx, token, true) // perhaps a rotated key
			}
			if err != nil {
				return nil, err
			}
			if _, ok := verified.Expiration(); !ok {
				return nil, errors.New("the token has no expiry")
			}
			return p, nil
		}
	}
	return nil, fmt.Errorf("no partner trusts the issuer %q with the subject %q", iss, subject)
}

// tokenSubject is the token's sub claim, or its client_id claim when it
// has no sub (OAuth2 client-credentials tokens of some servers).
func tokenSubject(t jwt.Token) string {
	if sub, ok := t.Subject(); ok && sub != "" {
		return sub
	}
	var clientID string
	if err := t.Get("client_id", &clientID); err == nil {
		return clientID
	}
	return ""
}

func (p *partner) parseJWT(ctx context.Context, token string, refresh bool) (jwt.Token, error) {
	set, err := p.jwks.keys(ctx, refresh)
	if err != nil {
		return nil, err
	}
	return jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithIssuer(p.JWT.Issuer),
		jwt.WithAudience(p.JWT.Audience), jwt.WithAcceptableSkew(jwtAcceptedSkew))
}
