package store

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var sampleCommands = []Command{
	put("k", "v"),
	put("k", ""),
	putCAS("k", "v", 0),
	putCAS("key", "value", 1<<63+5),
	{Op: OpPut, Key: []byte{0, 0xff, 0}, Value: bytes.Repeat([]byte{0xff, 0}, 300)},
	del("k"),
	delCAS("k", 7),
	delCAS("k", 0),
	{Op: OpRegisterNode, Node: NodeInfo{ID: "n1", RaftAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:7101"}},
	{Op: OpRegisterNode, Node: NodeInfo{ID: "n2"}},
	{Op: OpRemoveNode, Node: NodeInfo{ID: "n1"}},
	ringCmd(1),
	ringCmd(^uint64(0)),
	{Op: OpSetRing, Ring: RingSpec{Epoch: 2, Mode: "spec", Groups: []RingGroup{{"a", 1.5}, {"b", 0.25}}}},
	{Op: OpPut, Key: []byte("k"), Value: []byte("v"), RingEpoch: 9},
	{Op: OpDelete, Key: []byte("k"), HasCAS: true, Expect: 3, RingEpoch: 1},
	{Op: OpPutBatch, Body: EncodePuts([]KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b")}})},
	{Op: OpPutBatch, Body: EncodePuts([]KV{{Key: []byte("k"), Value: []byte("v")}}), RingEpoch: 4},
}

// encodedFields keeps only the fields Marshal encodes for c's op.
func encodedFields(c Command) Command {
	out := Command{Op: c.Op}
	switch c.Op {
	case OpPut, OpDelete:
		out.Key = append([]byte{}, c.Key...)
		if c.Op == OpPut {
			out.Value = append([]byte{}, c.Value...)
		}
		out.HasCAS = c.HasCAS
		if c.HasCAS {
			out.Expect = c.Expect
		}
	case OpRegisterNode:
		out.Node = c.Node
	case OpRemoveNode:
		out.Node.ID = c.Node.ID
	case OpSetRing:
		out.Ring = c.Ring
	case OpPutBatch:
		out.Body = append([]byte{}, c.Body...)
	}
	if c.Op == OpPut || c.Op == OpDelete || c.Op == OpPutBatch {
		out.RingEpoch = c.RingEpoch
	}
	return out
}

func equalCommands(a, b Command) bool {
	a, b = encodedFields(a), encodedFields(b)
	return a.Op == b.Op && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		a.HasCAS == b.HasCAS && a.Expect == b.Expect && a.Node == b.Node && a.RingEpoch == b.RingEpoch &&
		reflect.DeepEqual(a.Ring, b.Ring) && bytes.Equal(a.Body, b.Body)
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands {
		t.Run(c.Op.String(), func(t *testing.T) {
			enc := c.Marshal()
			got, err := UnmarshalCommand(enc)
			if err != nil {
				t.Fatalf("UnmarshalCommand(%x): %v", enc, err)
			}
			if !equalCommands(got, c) {
				t.Fatalf("round trip: got %+v, want %+v", got, c)
			}
		})
	}
}

func TestMarshalIgnoresFieldsOfOtherOps(t *testing.T) {
	c := ringCmd(3)
	c.Key, c.Node, c.HasCAS, c.Expect = []byte("k"), NodeInfo{ID: "x"}, true, 9
	if got, want := c.Marshal(), ringCmd(3).Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("Marshal = %x, want %x", got, want)
	}
}

func TestUnmarshalCommandRejectsMalformedInput(t *testing.T) {
	valid := put("key", "value").Marshal()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"version only", []byte{codecVersion}},
		{"unknown version", append([]byte{2}, valid[1:]...)},
		{"op zero", []byte{codecVersion, 0}},
		{"unknown op", []byte{codecVersion, 99, 0}},
		{"unknown flag", []byte{codecVersion, byte(OpPut), 2, 1, 'k', 0}},
		{"trailing byte", append(append([]byte{}, valid...), 0)},
		{"length past end", []byte{codecVersion, byte(OpDelete), 0, 5, 'a', 'b'}},
		{"huge length", []byte{codecVersion, byte(OpDelete), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"varint overflow", []byte{codecVersion, byte(OpSetRing), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"non-minimal varint", []byte{codecVersion, byte(OpSetRing), 0x81, 0x00}},
		{"non-minimal length", []byte{codecVersion, byte(OpRemoveNode), 0x81, 0x00, 'n'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := UnmarshalCommand(tc.data); !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("UnmarshalCommand(%x) = %+v, %v; want ErrInvalidCommand", tc.data, c, err)
			}
		})
	}
}

func TestUnmarshalCommandRejectsEveryTruncation(t *testing.T) {
	for _, c := range sampleCommands {
		enc := c.Marshal()
		for n := range len(enc) {
			if _, err := UnmarshalCommand(enc[:n]); !errors.Is(err, ErrInvalidCommand) {
				t.Errorf("%v truncated to %d of %d bytes: err = %v, want ErrInvalidCommand", c.Op, n, len(enc), err)
			}
		}
	}
}

func TestCommandValidate(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		ok   bool
	}{
		{"put", put("k", "v"), true},
		{"put empty value", put("k", ""), true},
		{"put empty key", put("", "v"), false},
		{"put key at bbolt limit", put(strings.Repeat("k", 32768), ""), true},
		{"put key over bbolt limit", put(strings.Repeat("k", 32769), ""), false},
		{"delete empty key", del(""), false},
		{"register", Command{Op: OpRegisterNode, Node: NodeInfo{ID: "n1"}}, true},
		{"register without id", Command{Op: OpRegisterNode, Node: NodeInfo{RaftAddr: "a"}}, false},
		{"remove without id", Command{Op: OpRemoveNode}, false},
		{"epoch 0", Command{Op: OpSetRing}, false},
		{"epoch", ringCmd(1), true},
		{"unknown op", Command{Op: 42}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("Validate = %v, want ErrInvalidCommand", err)
			}
		})
	}
}

// FuzzUnmarshalCommand checks that decoding never panics, that every error
// is an ErrInvalidCommand, and that the encoding is canonical: whatever
// decodes re-encodes to exactly the same bytes.
func FuzzUnmarshalCommand(f *testing.F) {
	for _, c := range sampleCommands {
		f.Add(c.Marshal())
	}
	f.Add([]byte{})
	f.Add([]byte{codecVersion, byte(OpSetRing), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02})
	f.Add([]byte{codecVersion, byte(OpPut), 1, 0xff, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := UnmarshalCommand(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("error %v is not ErrInvalidCommand", err)
			}
			return
		}
		if enc := c.Marshal(); !bytes.Equal(enc, data) {
			t.Fatalf("not canonical: %x decodes to %+v which encodes to %x", data, c, enc)
		}
	})
}
