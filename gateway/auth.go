package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"github.com/gin-gonic/gin"
)

// partnerKey is where the authenticated partner is kept in a request.
const partnerKey = "fhirgw.partner"

// partner is a configured partner organization, ready for checks.
type partner struct {
	PartnerConfig
	keyHash [sha256.Size]byte
	hasKey  bool
	jwks    *jwksCache // set for partners with JWT credentials
}

// authenticator knows the partners and tells who a request comes from.
type authenticator struct {
	disabled bool
	partners []*partner
}

func newAuthenticator(cfg Config) (*authenticator, error) {
	a := &authenticator{disabled: cfg.Auth.Disabled}
	for _, pc := range cfg.Partners {
		p := &partner{PartnerConfig: pc}
		if pc.APIKeySHA256 != "" {
			h, err := hex.DecodeString(pc.APIKeySHA256)
			if err != nil || len(h) != sha256.Size {
				return nil, fmt.Errorf("%w: partners %s: apiKeySHA256 is not a hex SHA-256", ErrConfig, pc.ID)
			}
			copy(p.keyHash[:], h)
			p.hasKey = true
		}
		if pc.JWT.JWKSURL != "" {
			p.jwks = &jwksCache{url: pc.JWT.JWKSURL}
		}
		a.partners = append(a.partners, p)
	}
	return a, nil
}

// credential reads an API key from X-API-Key or an Authorization: Bearer
// header.
func credential(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authenticate returns the partner a request comes from: nil with auth
// disabled, else an error answered 401 with WWW-Authenticate.
func (a *authenticator) authenticate(r *http.Request) (*partner, *Error) {
	if a.disabled {
		return nil, nil
	}
	cred := credential(r)
	if cred == "" {
		return nil, unauthorized("the request carries no credentials: send X-API-Key or Authorization: Bearer")
	}
	sum := sha256.Sum256([]byte(cred))
	for _, p := range a.partners {
		if p.hasKey && subtle.ConstantTimeCompare(sum[:], p.keyHash[:]) == 1 {
			return p, nil
		}
	}
	if looksLikeJWT(cred) {
		p, err := a.verifyJWT(r.Context(), cred)
		if err != nil {
			return nil, unauthorized("the bearer token is not accepted: " + err.Error())
		}
		return p, nil
	}
	return nil, unauthorized("the credentials match no partner")
}

// amqpPartner returns the partner whose amqpUser published a message with
// user_id userID (RabbitMQ checks user_id against the connection's user):
// nil with auth disabled, else an error answered as 401.
func (a *authenticator) amqpPartner(userID string) (*partner, *Error) {
	if a.disabled {
		return nil, nil
	}
	if userID == "" {
		return nil, unauthorized("the message carries no user_id: publish with user_id set to your RabbitMQ user")
	}
	for _, p := range a.partners {
		if p.AMQPUser != "" && p.AMQPUser == userID {
			return p, nil
		}
	}
	return nil, unauthorized(fmt.Sprintf("the RabbitMQ user %s is no partner's", userID))
}

func unauthorized(why string) *Error {
	return edgeError(http.StatusUnauthorized, ErrUnauthorized, envelope.IssueType("login"), "", "%s", why)
}

func forbidden(format string, args ...any) *Error {
	return edgeError(http.StatusForbidden, ErrForbidden, envelope.IssueType("forbidden"), "", format, args...)
}

// requireAuth is the middleware that authenticates every request it guards.
func (g *Gateway) requireAuth(c *gin.Context) {
	p, e := g.auth.authenticate(c.Request)
	if e != nil {
		c.Header("WWW-Authenticate", `Bearer realm="fhirgw"`)
		g.fail(c, e)
		return
	}
	if p != nil {
		c.Set(partnerKey, p)
	}
	c.Next()
}

// caller is the request's authenticated partner (nil: auth disabled).
func caller(c *gin.Context) *partner {
	if v, ok := c.Get(partnerKey); ok {
		return v.(*partner)
	}
	return nil
}

// mayPlace reports whether p may send a request with event ev.
func (p *partner) mayPlace(ev envelope.Event) bool {
	if p == nil {
		return true
	}
	for _, pattern := range p.Events {
		if router.EventMatches(pattern, ev) {
			return true
		}
	}
	return false
}

// checkPlace is mayPlace as the 403 a refusal gets.
func (p *partner) checkPlace(ev envelope.Event) *Error {
	if p.mayPlace(ev) {
		return nil
	}
	return forbidden("partner %s may not send the event %s", p.ID, ev)
}

// mayFill reports whether p may answer for one of the fillers.
func (p *partner) mayFill(fillers []string) bool {
	if p == nil {
		return true
	}
	for _, f := range fillers {
		for _, mine := range p.Fillers {
			if f == mine {
				return true
			}
		}
	}
	return false
}

// mayCallBack reports whether target, normalised as the pusher dials it
// (ack.CallbackURL), is under one of p's callback prefixes
// (any, when p lists none; the global allow-list applies in any case).
func (p *partner) mayCallBack(target string) bool {
	if p == nil || len(p.Callbacks) == 0 {
		return true
	}
	u, err := ack.CallbackURL(target)
	if err != nil {
		return false
	}
	for _, prefix := range p.Callbacks {
		if underPrefix(u.String(), prefix) {
			return true
		}
	}
	return false
}
