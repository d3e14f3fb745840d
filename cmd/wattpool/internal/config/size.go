package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps the accepted unit suffixes (lower case) to bytes: IEC
// binary units and SI decimal ones, as operators write disk sizes.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
}

// ParseSize reads a byte size such as "4GiB", "500MiB", "2GB" or "1048576"
// (bytes). Fractions are allowed ("1.5GiB"); the result is rounded down to
// whole bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	x, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || !ok {
		return 0, fmt.Errorf("%q is not a size (write e.g. \"4GiB\", \"500MiB\" or a number of bytes)", s)
	}
	b := math.Floor(x * mult)
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(b), nil
}
