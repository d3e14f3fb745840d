package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wattpool/wattpool/internal/digest"
)

// Antminer drives stock Bitmain firmware through its web CGI with HTTP
// digest auth (realm "antMiner Configuration", user root by default):
// GET /cgi-bin/get_miner_conf.cgi returns the whole configuration (pools,
// fan and frequency settings, "bitmain-work-mode": "0" normal, "1" sleep,
// "3" low power); POST /cgi-bin/set_miner_conf.cgi with a JSON body
// replaces it and answers {"stats": "success", "code": "M000", ...};
// GET /cgi-bin/summary.cgi reports SUMMARY[0].rate_5s in rate_unit (GH/s).
// Sources: pyasic pyasic/web/antminer.py (AntminerModernWebAPI, digest
// auth, JSON body), pyasic's MiningModeConfig.from_am_modern (work modes),
// and Foundry's FDMiner API document (get_miner_conf.cgi reply).
//
// The firmware replaces the whole configuration it is sent, so Curtail and
// Resume read the configuration, change only bitmain-work-mode, and send
// every other field back unchanged (pools included); a configuration
// without pools is refused rather than sent.
type Antminer struct {
	opts   DriverOptions
	client *http.Client
}

// NewAntminer returns the driver with its own HTTP transport. Keep-alives
// are off: each call is a handful of requests to one of thousands of
// hosts, and idle connections would hold goroutines between calls.
func NewAntminer(o DriverOptions) *Antminer {
	o = o.withDefaults()
	tr := &http.Transport{DisableKeepAlives: true, MaxResponseHeaderBytes: 16 << 10}
	return &Antminer{opts: o, client: &http.Client{
		Transport: tr,
		// The CGI never redirects; following one would send the
		// digest to somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (d *Antminer) close() { d.client.CloseIdleConnections() }

// Name is "antminer".
func (*Antminer) Name() string { return "antminer" }

// CanCurtail is true: stock firmware has a sleep work mode.
func (*Antminer) CanCurtail() bool { return true }

const (
	amConfPath    = "/cgi-bin/get_miner_conf.cgi"
	amSetPath     = "/cgi-bin/set_miner_conf.cgi"
	amSummaryPath = "/cgi-bin/summary.cgi"
	amWorkMode    = "bitmain-work-mode"
	amSleep       = "1"
	amNormal      = "0"
)

// Status reads the work mode and the summary hashrate. Stock firmware
// reports no power.
func (d *Antminer) Status(ctx context.Context, m Miner) (MinerState, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	conf, err := d.getConf(ctx, m)
	if err != nil {
		return MinerState{}, err
	}
	mode, err := workMode(conf)
	if err != nil {
		return MinerState{}, err
	}
	st := MinerState{State: StateMining}
	if mode == amSleep {
		st.State = StateSleeping
	}
	raw, err := d.do(ctx, m, http.MethodGet, amSummaryPath, nil)
	if err != nil {
		return MinerState{}, err
	}
	st.HashrateTHs, err = parseAntminerSummary(raw)
	if err != nil {
		return MinerState{}, err
	}
	return st, nil
}

// parseAntminerSummary reads SUMMARY[0].rate_5s in rate_unit as TH/s.
func parseAntminerSummary(raw []byte) (float64, error) {
	var s struct {
		SUMMARY []struct {
			Rate5s   *number `json:"rate_5s"`
			RateUnit string  `json:"rate_unit"`
		} `json:"SUMMARY"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("summary.cgi: %w: %w (%s)", ErrBadReply, err, snippet(raw))
	}
	if len(s.SUMMARY) == 0 || s.SUMMARY[0].Rate5s == nil {
		return 0, fmt.Errorf("summary.cgi: %w: no SUMMARY[0].rate_5s", ErrBadReply)
	}
	v := float64(*s.SUMMARY[0].Rate5s)
	switch strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(s.SUMMARY[0].RateUnit), "/s")) {
	case "", "GH":
		v /= 1e3
	case "TH":
	case "MH":
		v /= 1e6
	default:
		return 0, fmt.Errorf("summary.cgi: %w: rate_unit %q", ErrBadReply, s.SUMMARY[0].RateUnit)
	}
	if err := nonNeg("rate_5s", v); err != nil {
		return 0, fmt.Errorf("summary.cgi: %w", err)
	}
	return v, nil
}

// workMode returns bitmain-work-mode as a string ("0", "1", ...); the
// firmware sends a string, some builds a number.
func workMode(conf map[string]json.RawMessage) (string, error) {
	raw, ok := conf[amWorkMode]
	if !ok {
		return "", fmt.Errorf("get_miner_conf.cgi: %w: no %s", ErrBadReply, amWorkMode)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("get_miner_conf.cgi: %w: %s is %s", ErrBadReply, amWorkMode, snippet(raw))
}

// Curtail sets bitmain-work-mode "1".
func (d *Antminer) Curtail(ctx context.Context, m Miner) error { return d.setMode(ctx, m, amSleep) }

// Resume sets bitmain-work-mode "0".
func (d *Antminer) Resume(ctx context.Context, m Miner) error { return d.setMode(ctx, m, amNormal) }

func (d *Antminer) setMode(ctx context.Context, m Miner, mode string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	conf, err := d.getConf(ctx, m)
	if err != nil {
		return err
	}
	body, err := withWorkMode(conf, mode)
	if err != nil {
		return err
	}
	raw, err := d.do(ctx, m, http.MethodPost, amSetPath, body)
	if err != nil {
		return err
	}
	var r struct {
		Stats string `json:"stats"`
		Code  string `json:"code"`
		Msg   string `json:"msg"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("set_miner_conf.cgi: %w: %w (%s)", ErrBadReply, err, snippet(raw))
	}
	if r.Stats != "success" {
		return fmt.Errorf("set_miner_conf.cgi: %w: stats %q code %q msg %q", ErrRefused, clip(r.Stats), clip(r.Code), clip(r.Msg))
	}
	return nil
}

// withWorkMode returns the configuration to send back: every field as it
// was read, bitmain-work-mode replaced. A configuration without a
// non-empty pools array is refused: sending it would wipe the pools.
func withWorkMode(conf map[string]json.RawMessage, mode string) ([]byte, error) {
	var pools []json.RawMessage
	if err := json.Unmarshal(conf["pools"], &pools); err != nil || len(pools) == 0 {
		return nil, fmt.Errorf("get_miner_conf.cgi: %w: no pools in the configuration; not sending it back (the firmware would lose its pools)", ErrBadReply)
	}
	out := make(map[string]json.RawMessage, len(conf))
	for k, v := range conf {
		out[k] = v
	}
	q, _ := json.Marshal(mode)
	out[amWorkMode] = q
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("set_miner_conf.cgi: encode: %w", err)
	}
	return b, nil
}

func (d *Antminer) getConf(ctx context.Context, m Miner) (map[string]json.RawMessage, error) {
	raw, err := d.do(ctx, m, http.MethodGet, amConfPath, nil)
	if err != nil {
		return nil, err
	}
	return parseMinerConf(raw)
}

// parseMinerConf decodes get_miner_conf.cgi into its fields, undecoded.
func parseMinerConf(raw []byte) (map[string]json.RawMessage, error) {
	var conf map[string]json.RawMessage
	if err := json.Unmarshal(raw, &conf); err != nil || conf == nil {
		return nil, fmt.Errorf("get_miner_conf.cgi: %w: not a JSON object (%s)", ErrBadReply, snippet(raw))
	}
	return conf, nil
}

// do makes one request, answering the digest challenge: a first request
// without credentials draws the 401 and its nonce, the second carries the
// digest. A second 401 is ErrAuth.
func (d *Antminer) do(ctx context.Context, m Miner, method, path string, body []byte) ([]byte, error) {
	url := "http://" + m.Address + path
	resp, err := d.send(ctx, method, url, body, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		chal := resp.Header.Get("WWW-Authenticate")
		drain(resp)
		c, err := digest.ParseChallenge(chal)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w: %w", method, path, ErrBadReply, err)
		}
		user := m.User
		if user == "" {
			user = "root"
		}
		auth, err := digest.Authorization(c, user, m.Password(), method, path)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w: %w", method, path, ErrBadReply, err)
		}
		resp, err = d.send(ctx, method, url, body, auth)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			drain(resp)
			return nil, fmt.Errorf("%s %s: %w: the firmware refused user %q's digest", method, path, ErrAuth, user)
		}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, d.opts.MaxReplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read reply: %w", method, path, ioErr(ctx, err))
	}
	if int64(len(raw)) > d.opts.MaxReplyBytes {
		return nil, fmt.Errorf("%s %s: %w: reply over %d bytes", method, path, ErrBadReply, d.opts.MaxReplyBytes)
	}
	if resp.StatusCode != http.StatusOK {
		kind := ErrRefused
		if resp.StatusCode == http.StatusForbidden {
			kind = ErrAuth
		}
		return nil, fmt.Errorf("%s %s: %w: HTTP %d", method, path, kind, resp.StatusCode)
	}
	return raw, nil
}

func (d *Antminer) send(ctx context.Context, method, url string, body []byte, auth string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %w", method, url, ErrUnreachable, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		// url.Error wraps the dial or read failure; the deadline case is
		// a miner that never answered.
		var ue interface{ Timeout() bool }
		if ctx.Err() != nil || (errors.As(err, &ue) && ue.Timeout()) {
			return nil, fmt.Errorf("%s %s: %w: no answer before the deadline", method, req.URL.Path, ErrUnreachable)
		}
		if strings.Contains(err.Error(), "malformed HTTP") {
			// Something answered, but not HTTP.
			return nil, fmt.Errorf("%s %s: %w: %w", method, req.URL.Path, ErrBadReply, err)
		}
		return nil, fmt.Errorf("%s %s: %w: %w", method, req.URL.Path, ErrUnreachable, err)
	}
	return resp, nil
}

// drain discards a small body so the connection can close cleanly.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
}
