package loadgen

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Op is a kind of operation.
type Op uint8

// The operations, in the order reports list them.
const (
	OpPut Op = iota
	OpGet
	OpCAS
	OpDelete
	numOps
)

var opNames = [numOps]string{"put", "get", "cas", "delete"}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Ops lists every operation.
func Ops() []Op { return []Op{OpPut, OpGet, OpCAS, OpDelete} }

// Mix is the share of each operation, in percent; the shares sum to 100.
type Mix [numOps]int

// ParseMix parses "put=50,get=50": comma-separated op=percent pairs, ops
// among put, get, cas and delete, each at most once, integer percentages
// summing to 100. Unnamed ops get 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	var seen [numOps]bool
	if strings.TrimSpace(s) == "" {
		return m, fmt.Errorf("empty mix: want op=percent pairs such as put=50,get=50")
	}
	sum := 0
	for part := range strings.SplitSeq(s, ",") {
		name, pct, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return m, fmt.Errorf("%q is not op=percent (as in put=50,get=50)", part)
		}
		op, known := opByName(name)
		if !known {
			return m, fmt.Errorf("unknown op %q: want put, get, cas or delete", name)
		}
		if seen[op] {
			return m, fmt.Errorf("%s is given twice", name)
		}
		seen[op] = true
		n, err := strconv.Atoi(strings.TrimSpace(pct))
		if err != nil || n < 0 || n > 100 {
			return m, fmt.Errorf("%s=%s: the percentage must be a whole number from 0 to 100", name, strings.TrimSpace(pct))
		}
		m[op] = n
		sum += n
	}
	if sum != 100 {
		return m, fmt.Errorf("the percentages sum to %d, not 100", sum)
	}
	return m, nil
}

func opByName(name string) (Op, bool) {
	for i, n := range opNames {
		if n == name {
			return Op(i), true
		}
	}
	return 0, false
}

// Validate checks that the shares are in [0, 100] and sum to 100.
func (m Mix) Validate() error {
	sum := 0
	for op, n := range m {
		if n < 0 || n > 100 {
			return fmt.Errorf("%s=%d is not a percentage", Op(op), n)
		}
		sum += n
	}
	if sum != 100 {
		return fmt.Errorf("the percentages sum to %d, not 100", sum)
	}
	return nil
}

// String is the mix in ParseMix's syntax, zero shares left out.
func (m Mix) String() string {
	var parts []string
	for op, n := range m {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", Op(op), n))
		}
	}
	return strings.Join(parts, ",")
}

// MarshalJSON writes {"put": 50, "get": 50, ...} with every op.
func (m Mix) MarshalJSON() ([]byte, error) {
	o := make(map[string]int, numOps)
	for op, n := range m {
		o[Op(op).String()] = n
	}
	return json.Marshal(o)
}

// UnmarshalJSON reads what MarshalJSON writes; ops not named get 0.
func (m *Mix) UnmarshalJSON(b []byte) error {
	var o map[string]int
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*m = Mix{}
	for name, n := range o {
		op, ok := opByName(name)
		if !ok {
			return fmt.Errorf("unknown op %q in mix", name)
		}
		m[op] = n
	}
	return nil
}

// pick maps a uniform number in [0, 100) to an op by the shares.
func (m Mix) pick(r int) Op {
	for op, n := range m {
		if r < n {
			return Op(op)
		}
		r -= n
	}
	return OpGet // unreachable for a valid mix
}
