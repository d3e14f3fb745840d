package config

import (
	"net/url"
	"time"
)

// NotifyFile is the [notify] table: where operator notifications (blocks
// found, confirmed, orphaned; node or ledger unhealthy) are POSTed.
type NotifyFile struct {
	URL       string `toml:"url"`
	SecretEnv string `toml:"secret_env"`
	Timeout   string `toml:"timeout"`
}

// NotifyConfig is the validated [notify] table. URL is nil when
// notifications go to the log only.
type NotifyConfig struct {
	URL *url.URL
	// SecretEnv names the environment variable holding the HMAC secret
	// that signs every POST (X-Wattpool-Signature).
	SecretEnv string
	Timeout   time.Duration
}

// DefaultNotifySecretEnv is notify.secret_env when the file names none.
const DefaultNotifySecretEnv = "WATTPOOL_NOTIFY_SECRET"

func defaultNotify() NotifyFile {
	return NotifyFile{SecretEnv: DefaultNotifySecretEnv, Timeout: "10s"}
}

// notify checks [notify]. The secret itself is read at start-up, never
// from the file: check-config only checks the variable's name.
func (v *validator) notify(f *File, c *Config) {
	n := f.Notify
	c.Notify.SecretEnv = n.SecretEnv
	c.Notify.Timeout = v.duration("notify.timeout", n.Timeout, 100*time.Millisecond)
	if c.Notify.Timeout > time.Minute {
		v.errorf("notify.timeout", "%v is too long (at most 1m: a notification must not hold up the next)", c.Notify.Timeout)
	}
	if n.URL == "" {
		return
	}
	u, err := url.Parse(n.URL)
	switch {
	case err != nil:
		v.errorf("notify.url", "does not parse as a URL")
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		v.errorf("notify.url", "want an http:// or https:// URL with a host")
	default:
		c.Notify.URL = u
	}
	if !envName.MatchString(n.SecretEnv) {
		v.errorf("notify.secret_env", "%q is not an environment variable name", n.SecretEnv)
	}
}
