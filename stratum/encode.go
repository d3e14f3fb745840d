package stratum

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/wattpool/wattpool/stratum/work"
)

// Replies always carry both "result" and "error" (null when unused), which
// is what deployed miner firmware expects; notifications carry "id":null.

// appendResult appends {"id":<id>,"result":<result>,"error":null}\n.
func appendResult(b, id, result []byte) []byte {
	b = append(b, `{"id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, ",\"error\":null}\n"...)
}

// appendError appends a reply with the Stratum error triple
// [code, message, null] and a null result.
func appendError(b, id []byte, code int, msg string) []byte {
	b = append(b, `{"id":`...)
	b = append(b, id...)
	b = append(b, `,"result":null,"error":[`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ',')
	b = appendString(b, msg)
	return append(b, ",null]}\n"...)
}

func appendNotificationStart(b []byte, method string) []byte {
	b = append(b, `{"id":null,"method":"`...)
	b = append(b, method...)
	return append(b, `","params":[`...)
}

func appendNotificationEnd(b []byte) []byte { return append(b, "]}\n"...) }

// appendDiff writes a difficulty in the shortest form that parses back to
// the same float64 (fractional difficulties are legal).
func appendDiff(b []byte, diff float64) []byte {
	return strconv.AppendFloat(b, diff, 'g', -1, 64)
}

// appendSetDifficulty appends mining.set_difficulty.
func appendSetDifficulty(b []byte, diff float64) []byte {
	b = appendNotificationStart(b, "mining.set_difficulty")
	b = appendDiff(b, diff)
	return appendNotificationEnd(b)
}

// appendSetExtranonce appends mining.set_extranonce [en1hex, en2size].
func appendSetExtranonce(b, en1 []byte, en2Size int) []byte {
	b = appendNotificationStart(b, "mining.set_extranonce")
	b = append(b, '"')
	b = hex.AppendEncode(b, en1)
	b = append(b, `",`...)
	b = strconv.AppendInt(b, int64(en2Size), 10)
	return appendNotificationEnd(b)
}

// appendSetVersionMask appends mining.set_version_mask ["1fffe000"].
func appendSetVersionMask(b []byte, mask uint32) []byte {
	b = appendNotificationStart(b, "mining.set_version_mask")
	b = appendHex32(b, mask)
	return appendNotificationEnd(b)
}

// appendReconnect appends client.reconnect; an empty host asks the miner to
// reconnect to the same address.
func appendReconnect(b []byte, host string, port, waitSeconds int) []byte {
	b = appendNotificationStart(b, "client.reconnect")
	if host != "" {
		b = appendString(b, host)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(port), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(waitSeconds), 10)
	}
	return appendNotificationEnd(b)
}

// appendShowMessage appends client.show_message.
func appendShowMessage(b []byte, msg string) []byte {
	b = appendNotificationStart(b, "client.show_message")
	b = appendString(b, msg)
	return appendNotificationEnd(b)
}

// appendNotify appends mining.notify with the job's fields in the
// protocol's order.
func appendNotify(b []byte, n work.Notify) []byte {
	b = appendNotificationStart(b, "mining.notify")
	for _, s := range [...]string{n.JobID, n.PrevHash, n.Coinb1, n.Coinb2} {
		b = appendString(b, s)
		b = append(b, ',')
	}
	b = append(b, '[')
	for i, h := range n.MerkleBranch {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, h)
	}
	b = append(b, "],"...)
	for _, s := range [...]string{n.Version, n.NBits, n.NTime} {
		b = appendString(b, s)
		b = append(b, ',')
	}
	b = strconv.AppendBool(b, n.CleanJobs)
	return appendNotificationEnd(b)
}

// appendHex32 appends a quoted 8-digit big-endian hex number.
func appendHex32(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return append(b, '"')
}

// appendString appends s as a JSON string. Plain ASCII (every string the
// server itself produces) is copied directly; anything else goes through
// encoding/json, which also replaces invalid UTF-8.
func appendString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, err := json.Marshal(s)
	if err != nil { // cannot happen for a string; keep the output valid anyway
		return append(b, `""`...)
	}
	return append(b, q...)
}
