package ack

import (
	"net/url"
	"strings"
)

// UnderPrefix reports whether target is under the URL prefix: the same
// scheme and host (and port, when the prefix names one; a scheme's default
// port counts as named), no user info, and a path that starts with the
// prefix's path at a segment boundary. Plain string prefixes would let
// http://127.0.0.1.evil.example pass for http://127.0.0.1.
func UnderPrefix(target, prefix string) bool {
	t, err := url.Parse(target)
	if err != nil || t.User != nil || t.Host == "" {
		return false
	}
	p, err := url.Parse(prefix)
	if err != nil || p.Host == "" {
		return false
	}
	if !strings.EqualFold(t.Scheme, p.Scheme) || !strings.EqualFold(t.Hostname(), p.Hostname()) {
		return false
	}
	if p.Port() != "" && portOf(t) != p.Port() {
		return false
	}
	if p.Path == "" || p.Path == "/" {
		return true
	}
	return t.Path == strings.TrimSuffix(p.Path, "/") || strings.HasPrefix(t.Path, strings.TrimSuffix(p.Path, "/")+"/")
}

// portOf is u's port, its scheme's default when it names none.
func portOf(u *url.URL) string {
	switch {
	case u.Port() != "":
		return u.Port()
	case strings.EqualFold(u.Scheme, "https"):
		return "443"
	case strings.EqualFold(u.Scheme, "http"):
		return "80"
	}
	return ""
}
