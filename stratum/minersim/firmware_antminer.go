package minersim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wattpool/wattpool/internal/digest"
)

// The stock Antminer web CGI: digest auth (realm "antMiner
// Configuration"), GET /cgi-bin/get_miner_conf.cgi (the whole
// configuration), POST /cgi-bin/set_miner_conf.cgi (replaces it: fields
// left out are lost, pools included), GET /cgi-bin/summary.cgi (rate_5s in
// GH/s). bitmain-work-mode "1" sleeps, "0" mines.

const (
	antminerRealm = "antMiner Configuration"
	// maxNonces bounds the digest nonces remembered: a client answers a
	// challenge right away.
	maxNonces = 256
	// maxConfBody bounds a posted configuration.
	maxConfBody = 64 << 10
)

func defaultAntminerConf(m *Miner) map[string]json.RawMessage {
	pools := []map[string]string{
		{"url": "stratum+tcp://" + m.cfg.Addr, "user": m.cfg.User, "pass": m.cfg.Password},
		{"url": "stratum+tcp://backup1.pool.invalid:3333", "user": m.cfg.User, "pass": "x"},
		{"url": "stratum+tcp://backup2.pool.invalid:443", "user": m.cfg.User, "pass": "x"},
	}
	fields := map[string]any{
		"pools": pools, "api-listen": true, "api-network": true,
		"api-groups": "A:stats:pools:devs:summary:version", "api-allow": "A:0/0,W:*",
		"bitmain-fan-ctrl": false, "bitmain-fan-pwm": "100", "bitmain-use-vil": true,
		"bitmain-freq": "675", "bitmain-voltage": "1400", "bitmain-ccdelay": "0",
		"bitmain-pwth": "0", "bitmain-work-mode": "0", "bitmain-freq-level": "100",
	}
	out := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		out[k], _ = json.Marshal(v)
	}
	return out
}

// AntminerConfig returns the stored configuration as JSON (for tests and
// the demo: the pools must survive a sleep).
func (f *Firmware) AntminerConfig() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(f.conf)
	return b
}

// PoolsLost reports whether a posted configuration came without pools.
func (f *Firmware) PoolsLost() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.poolsLost
}

func (f *Firmware) serveHTTP(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cgi-bin/get_miner_conf.cgi", f.auth(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.AntminerConfig())
	}))
	mux.HandleFunc("POST /cgi-bin/set_miner_conf.cgi", f.auth(f.setMinerConf))
	mux.HandleFunc("GET /cgi-bin/summary.cgi", f.auth(f.summaryCGI))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: apiIdle, ReadTimeout: apiIdle, WriteTimeout: apiIdle}
	stop := context.AfterFunc(ctx, func() {
		_ = srv.Close()
		f.closeConns()
	})
	defer stop()
	err := srv.Serve(ln)
	f.closeConns()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// auth wraps h with digest authentication.
func (f *Firmware) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if hdr := r.Header.Get("Authorization"); hdr != "" {
			cr, err := digest.ParseAuthorization(hdr)
			if err == nil && cr.URI == r.URL.RequestURI() && f.takeNonce(cr.Nonce) {
				pw := f.cfg.Password
				if f.faulty(FaultWrongPassword) {
					pw = "\x00not-the-password"
				}
				if digest.Verify(cr, f.cfg.User, pw, antminerRealm, cr.Nonce, r.Method) {
					h(w, r)
					return
				}
			}
		}
		nonce, err := digest.NewNonce()
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		f.addNonce(nonce)
		w.Header().Set("WWW-Authenticate", digest.ChallengeHeader(antminerRealm, nonce))
		http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
	}
}

func (f *Firmware) addNonce(n string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.nonceRing) >= maxNonces {
		delete(f.nonces, f.nonceRing[0])
		f.nonceRing = f.nonceRing[1:]
	}
	f.nonces[n] = struct{}{}
	f.nonceRing = append(f.nonceRing, n)
}

// takeNonce accepts a nonce this server issued, once.
func (f *Firmware) takeNonce(n string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nonces[n]; !ok {
		return false
	}
	delete(f.nonces, n)
	return true
}

func (f *Firmware) setMinerConf(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxConfBody+1))
	var conf map[string]json.RawMessage
	if err == nil && len(body) <= maxConfBody {
		err = json.Unmarshal(body, &conf)
	}
	if err != nil || len(body) > maxConfBody || conf == nil {
		writeJSON(w, http.StatusOK, map[string]string{"stats": "error", "code": "M001", "msg": "Bad configuration"})
		return
	}
	var mode string
	if raw, ok := conf["bitmain-work-mode"]; ok {
		if json.Unmarshal(raw, &mode) != nil {
			var n json.Number
			if json.Unmarshal(raw, &n) == nil {
				mode = n.String()
			}
		}
	}
	var pools []json.RawMessage
	_ = json.Unmarshal(conf["pools"], &pools)
	f.mu.Lock()
	f.conf = conf // the firmware keeps exactly what it was sent
	if len(pools) == 0 {
		f.poolsLost = true
	}
	f.mu.Unlock()
	f.setSleep(strings.TrimSpace(mode) == "1")
	writeJSON(w, http.StatusOK, map[string]string{"stats": "success", "code": "M000", "msg": "OK!"})
}

func (f *Firmware) summaryCGI(w http.ResponseWriter, _ *http.Request) {
	v := f.view()
	writeJSON(w, http.StatusOK, map[string]any{
		"STATUS": map[string]any{"STATUS": "S", "when": f.unixNow(), "Msg": "summary", "api_version": "1.0.0"},
		"INFO":   map[string]any{"miner_version": "49.0.1.3", "CompileTime": time.Unix(0, 0).UTC().Format(time.UnixDate), "type": v.modelName},
		"SUMMARY": []map[string]any{{
			"elapsed": 0, "rate_5s": v.ths * 1e3, "rate_30m": v.ths * 1e3, "rate_avg": v.ths * 1e3,
			"rate_ideal": v.nominalTHs * 1e3, "rate_unit": "GH/s", "hw_all": 0, "bestshare": 0,
		}},
	})
}
