package config

import (
	"net/url"
	"strings"
)

// Redact returns a URL safe to log: the password (in the user info or a
// password= query parameter) is replaced by "xxxxx". A string that does not
// parse as a URL is replaced entirely, since it may hold a secret anywhere.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "<unparsable URL>"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if strings.EqualFold(k, "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
