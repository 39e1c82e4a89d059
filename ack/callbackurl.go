package ack

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ErrCallbackURL marks a callback URL the gateway will not dial.
var ErrCallbackURL = errors.New("unusable callback URL")

// CallbackURL parses a placer's callback URL (a response-url, or a source
// endpoint's $process-message) into the URL that is dialled, so that an
// allow-list checks exactly what is called:
//
//   - the scheme is http or https; there is a host and no user info;
//   - the host is lower-cased and a default port (80, 443) dropped;
//   - the path is percent-decoded segment by segment and its "." and ".."
//     segments are resolved; an empty path is "/";
//   - the fragment is dropped; the query is kept.
//
// A path that would be read differently by servers that decode before
// resolving and servers that do not is refused: an encoded dot segment
// (/fhir/%2e%2e/admin), an encoded or literal backslash, an encoded slash,
// a control character, or ".." above the root. Errors wrap ErrCallbackURL.
func CallbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCallbackURL, err)
	}
	bad := func(why string) (*url.URL, error) { return nil, fmt.Errorf("%w: %s", ErrCallbackURL, why) }
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("the scheme must be http or https")
	case u.Opaque != "" || u.Host == "":
		return bad("it has no host")
	case u.User != nil:
		return bad("it carries user info")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return bad("it has no host")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("its port is out of range")
		}
	}
	if port == defaultPort(u.Scheme) {
		port = ""
	}
	switch {
	case port != "":
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"): // an IPv6 literal
		host = "[" + host + "]"
	}
	p, err := resolvePath(u.EscapedPath())
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: u.Scheme, Host: host, Path: p, RawQuery: u.RawQuery}, nil
}

// resolvePath decodes an escaped absolute path segment by segment and
// removes its dot segments (RFC 3986 section 5.2.4).
func resolvePath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	var out []string
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	for i, seg := range segs {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrCallbackURL, err)
		}
		switch {
		case strings.ContainsAny(dec, `/\`):
			return "", fmt.Errorf("%w: its path has an encoded slash or a backslash", ErrCallbackURL)
		case strings.ContainsFunc(dec, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return "", fmt.Errorf("%w: its path has a control character", ErrCallbackURL)
		case (dec == "." || dec == "..") && dec != seg:
			return "", fmt.Errorf("%w: its path has an encoded dot segment", ErrCallbackURL)
		}
		last := i == len(segs)-1
		switch dec {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) == 0 {
				return "", fmt.Errorf("%w: its path climbs above the root", ErrCallbackURL)
			}
			out = out[:len(out)-1]
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, dec)
		}
	}
	return "/" + strings.Join(out, "/"), nil
}

// defaultPort is the port a scheme implies.
func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// origin names the lane a callback URL is pushed in: scheme, lower-cased
// host and port, the default port made explicit. All AMQP reply callbacks
// share one lane.
func origin(u *url.URL) string {
	if u.Scheme == replyScheme {
		return replyScheme + ":"
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
