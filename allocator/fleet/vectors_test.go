package fleet

import (
	"encoding/json"
	"strings"
	"testing"
)

// Recorded firmware replies. Each vector is written from the public
// documentation or client code cited beside it; the expected values are
// read off the vector by hand.

// LuxOS "version" reply: LuxorLabs/luxos-tooling tests/data/messages/version.json.
const luxVersion = `{
  "STATUS": [{"Code": 22, "Description": "LUXminer", "Msg": "LUXminer versions", "STATUS": "S", "When": 1520678397}],
  "VERSION": [{"API": "3.7", "CompileTime": "Mon Jan 01 00:01:01 UTC 2000", "LUXminer": "2000.1.1.12345-aaabbbc", "Miner": "some id", "Type": "A model"}],
  "id": 1
}`

// LuxOS logon while a session exists: STATUS E code 402 "Another session
// is active", no SESSION section (LuxorLabs/luxos-tooling
// src/luxos/asyncops.py, logon).
const luxLogon402 = `{"STATUS":[{"Code":402,"Description":"LUXminer 2024.5.1","Msg":"Another session is active","STATUS":"E","When":1715000000}],"id":1}` + "\x00"

// LuxOS logon success: SESSION[0].SessionID (pyasic
// pyasic/rpc/luxminer.py auth reads data["SESSION"][0]["SessionID"]).
const luxLogonOK = `{"SESSION":[{"SessionID":"AbCdEf12"}],"STATUS":[{"Code":400,"Msg":"Session created","STATUS":"S","When":1715000000}],"id":1}` + "\x00"

// cgminer-API "summary" of a Foundry FDMiner S19 XP (FDMiner API document,
// {"command":"summary"}): GHS 5s 96000 = 96 TH/s.
const fdSummary = `{"STATUS":[{"STATUS":"S","When":1719163185,"Code":11,"Msg":"Summary","Description":"BCFMiner 2.4.2 Test2"}],
 "SUMMARY":[{"Elapsed":24930,"GHS 5s":96000,"GHS av":93000,"GHS 30m":93000,"Found Blocks":0,"Accepted":1787,"Rejected":3}],"id":1}`

// The same document's "devs": DEVS as an object keyed by name, one ASC
// enabled and alive.
const fdDevs = `{"STATUS":[{"STATUS":"S","When":1719163256,"Code":9,"Msg":"1 ASC(s)","Description":"BCFMiner 2.4.2 Test2"}],
 "DEVS":{"":{"ASC":0,"Name":"BTM_SOC","ID":0,"Enabled":"Y","Status":"Alive","MHS 5s":92000000}},"id":1}`

// LuxOS "power": POWER[0].Watts (pyasic pyasic/miners/backends/luxminer.py
// _get_wattage).
const luxPower = `{"POWER":[{"PSU":true,"Watts":3233}],"STATUS":[{"Code":336,"Msg":"Power","STATUS":"S","When":1715000000}],"id":1}`

// Antminer get_miner_conf.cgi (FDMiner API document, GET get_miner_conf.cgi;
// field set as in bitmaintech/Antminer_firmware's default cgminer.conf).
const amConf = `{
"pools" : [
{"url" : "stratum+tcp://btc.foundryusapool.com:3333", "user" : "ccc.S19XP_B1", "pass" : "X"},
{"url" : "stratum+tcp://btc.foundryusapool.com:443", "user" : "ccc.S19XP_B1", "pass" : "X"},
{"url" : "stratum+tcp://btc.foundryusapool.com:25", "user" : "ccc.S19XP_B1", "pass" : "X"}
]
,
"api-listen" : true,
"api-network" : true,
"api-groups" : "A:stats:pools:devs:summary:version",
"api-allow" : "A:0/0,W:*",
"bitmain-fan-ctrl" : true,
"bitmain-fan-pwm" : "10",
"bitmain-use-vil" : true,
"bitmain-freq" : "500",
"bitmain-voltage" : "14",
"bitmain-ccdelay" : "1",
"bitmain-pwth" : "1",
"bitmain-work-mode" : "3",
"bitmain-freq-level" : "70"
}`

// Antminer summary.cgi of modern stock firmware: SUMMARY[0].rate_5s with
// rate_unit (the field names bmminer sets, json_object_set_new(...,
// "rate_5s", ...), and pyasic's rate_unit handling).
const amSummary = `{"STATUS":{"STATUS":"S","when":1700000000,"Msg":"summary","api_version":"1.0.0"},
 "INFO":{"miner_version":"49.0.1.3","type":"Antminer S19"},
 "SUMMARY":[{"elapsed":3600,"rate_5s":95123.45,"rate_30m":95000.0,"rate_avg":94000.0,"rate_ideal":95000.0,"rate_unit":"GH/s","hw_all":0}]}`

// Whatsminer API v3 get.device.info and get.miner.status summary (field
// names per MicroBT's WhatsMiner API V3 as read by community clients:
// msg.salt, msg.miner.working, msg.summary["hash-realtime"] TH/s,
// ["power-realtime"] W).
const (
	wmInfo    = `{"code":0,"when":1759800000,"msg":{"miner":{"working":"true","type":"M30S"},"salt":"Abc123xy","system":{"api":"3.0.1"}},"desc":"get.device.info"}`
	wmSummary = `{"code":0,"when":1759800000,"msg":{"summary":{"elapsed":1200,"power-realtime":3344,"hash-realtime":88.5,"factory-hash":88,"up-freq-finish":1}},"desc":"get.miner.status"}`
	wmDenied  = `{"code":-4,"when":1759800000,"msg":"permission denied: invalid token","desc":"set.miner.service"}`
)

func TestRecordedCGMinerStyleReplies(t *testing.T) {
	r, err := parseCGReply([]byte(luxVersion))
	if err != nil || !r.ok() || r.status.Code != 22 {
		t.Fatalf("version: %+v %v", r.status, err)
	}
	var v struct{ API, Type string }
	if err := r.first("VERSION", &v); err != nil || v.API != "3.7" || v.Type != "A model" {
		t.Fatalf("VERSION %+v %v", v, err)
	}

	r, err = parseCGReply([]byte(luxLogon402))
	if err != nil || r.ok() || r.status.Code != luxCode402 || r.status.Msg != "Another session is active" {
		t.Fatalf("402: %+v %v", r.status, err)
	}
	if _, err := sessionID(r); err == nil {
		t.Fatal("a 402 reply yielded a session id")
	}
	r, err = parseCGReply([]byte(luxLogonOK))
	if err != nil {
		t.Fatal(err)
	}
	if sid, err := sessionID(r); err != nil || sid != "AbCdEf12" {
		t.Fatalf("session id %q %v", sid, err)
	}

	r, err = parseCGReply([]byte(fdSummary))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		GHS5s *number `json:"GHS 5s"`
	}
	if err := r.first("SUMMARY", &s); err != nil || float64(*s.GHS5s)/1e3 != 96 {
		t.Fatalf("summary %v %v", s.GHS5s, err)
	}
	r, err = parseCGReply([]byte(fdDevs))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := aliveDevices(r); err != nil || n != 1 {
		t.Fatalf("alive devices %d %v", n, err)
	}
	r, err = parseCGReply([]byte(luxPower))
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Watts number }
	if err := r.first("POWER", &p); err != nil || p.Watts != 3233 {
		t.Fatalf("power %v %v", p.Watts, err)
	}
}

func TestRecordedAntminerReplies(t *testing.T) {
	conf, err := parseMinerConf([]byte(amConf))
	if err != nil {
		t.Fatal(err)
	}
	if mode, err := workMode(conf); err != nil || mode != "3" {
		t.Fatalf("work mode %q %v", mode, err)
	}
	body, err := withWorkMode(conf, amSleep)
	if err != nil {
		t.Fatal(err)
	}
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(body, &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 14 || string(sent["bitmain-work-mode"]) != `"1"` || string(sent["bitmain-freq-level"]) != `"70"` {
		t.Fatalf("sent %d fields: %s", len(sent), body)
	}
	var pools []struct{ URL, User, Pass string }
	if err := json.Unmarshal(sent["pools"], &pools); err != nil || len(pools) != 3 || pools[2].URL != "stratum+tcp://btc.foundryusapool.com:25" || pools[0].User != "ccc.S19XP_B1" {
		t.Fatalf("pools %+v %v", pools, err)
	}
	ths, err := parseAntminerSummary([]byte(amSummary))
	if err != nil || !approx(ths, 95.12345) {
		t.Fatalf("summary %v TH/s %v", ths, err)
	}
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{`{"SUMMARY":[{"rate_5s":"120.5","rate_unit":"TH/s"}]}`, 120.5},
		{`{"SUMMARY":[{"rate_5s":90000}]}`, 90},
		{`{"SUMMARY":[{"rate_5s":2000000,"rate_unit":"MH/s"}]}`, 2},
	} {
		if got, err := parseAntminerSummary([]byte(tc.in)); err != nil || !approx(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseAntminerSummary([]byte(`{"SUMMARY":[{"rate_5s":1,"rate_unit":"H/s"}]}`)); err == nil {
		t.Error("unknown unit accepted")
	}
}

func TestRecordedWhatsminerReplies(t *testing.T) {
	ri, err := parseWMReply([]byte(wmInfo))
	if err != nil || *ri.Code != 0 {
		t.Fatal(err)
	}
	var di deviceInfo
	if err := json.Unmarshal(ri.Msg, &di); err != nil || di.Salt != "Abc123xy" {
		t.Fatalf("device info %+v %v", di, err)
	}
	rs, err := parseWMReply([]byte(wmSummary))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseWMStatus(di, rs.Msg)
	if err != nil || st.State != StateMining || st.HashrateTHs != 88.5 || st.PowerW != 3344 || !st.HasPower {
		t.Fatalf("status %+v %v", st, err)
	}
	working := "false"
	di.Miner.Working = &working
	if st, _ := parseWMStatus(di, rs.Msg); st.State != StateSleeping {
		t.Fatalf("working=false read %s", st.State)
	}
	rd, err := parseWMReply([]byte(wmDenied))
	if err != nil || *rd.Code != -4 || !strings.Contains(rd.msgString(), "permission denied") {
		t.Fatalf("denied %+v %v", rd, err)
	}
	// Token vectors recomputed with Python's hashlib/base64:
	// base64(sha256("set.miner.service" + "super" + "Abc123xy" + "1759800000"))[:8].
	if got := Token("set.miner.service", "super", "Abc123xy", 1759800000); got != "Cg2iuKaj" {
		t.Fatalf("token %q", got)
	}
	if got := Token("set.miner.service", "admin", "BQ5hoXV9", 1700000000); got != "j+wwpaF0" {
		t.Fatalf("token %q", got)
	}
}

func FuzzParseCGReply(f *testing.F) {
	for _, s := range []string{luxVersion, luxLogon402, luxLogonOK, fdSummary, fdDevs, luxPower, `{"STATUS":[]}`, "\x00", `{"STATUS":[{"STATUS":"S"}],"SUMMARY":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseCGReply(b)
		if err != nil {
			return
		}
		var s struct {
			GHS5s *number `json:"GHS 5s"`
		}
		_ = r.first("SUMMARY", &s)
		_, _ = sessionID(r)
		_, _ = aliveDevices(r)
	})
}

func FuzzParseAntminer(f *testing.F) {
	f.Add([]byte(amConf))
	f.Add([]byte(amSummary))
	f.Add([]byte(`{"pools":[],"bitmain-work-mode":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseAntminerSummary(b)
		conf, err := parseMinerConf(b)
		if err != nil {
			return
		}
		_, _ = workMode(conf)
		body, err := withWorkMode(conf, amSleep)
		if err != nil {
			return
		}
		var back map[string]json.RawMessage
		if err := json.Unmarshal(body, &back); err != nil || len(back) != len(conf)+boolInt(conf[amWorkMode] == nil) || string(back[amWorkMode]) != `"1"` {
			t.Fatalf("sent back %s for %s", body, b)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func FuzzParseWhatsminer(f *testing.F) {
	f.Add([]byte(wmInfo))
	f.Add([]byte(wmSummary))
	f.Add([]byte(wmDenied))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseWMReply(b)
		if err != nil {
			return
		}
		var di deviceInfo
		_ = json.Unmarshal(r.Msg, &di)
		st, err := parseWMStatus(di, r.Msg)
		if err == nil && (st.HashrateTHs < 0 || st.PowerW < 0) {
			t.Fatalf("accepted negative figures %+v", st)
		}
		_ = r.msgString()
	})
}
