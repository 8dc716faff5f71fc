package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func TestStreamRequestsRoundTrip(t *testing.T) {
	reqs := []wire.StreamRequest{
		{ID: 1, Op: wire.StreamGet, Key: []byte("k")},
		{ID: 2, Op: wire.StreamGet, Flags: wire.FlagStale, RingEpoch: 7, TimeoutUS: 1500, Key: []byte("a/b%c")},
		{ID: 3, Op: wire.StreamPut, Flags: wire.FlagCAS, Expect: 0, Key: []byte("k"), Value: []byte("v\x00alue")},
		{ID: 1 << 60, Op: wire.StreamDelete, Flags: wire.FlagCAS, Expect: 42, RingEpoch: 1 << 40, Key: []byte{0, 255}},
	}
	var b []byte
	for i := range reqs {
		b = wire.AppendRequest(b, &reqs[i])
	}
	r := bytes.NewReader(b)
	for i, want := range reqs {
		got, err := wire.ReadRequest(r, 1<<20)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if len(got.Value) == 0 {
			got.Value = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("request %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := wire.ReadRequest(r, 1<<20); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestStreamResponsesRoundTrip(t *testing.T) {
	resps := []wire.StreamResponse{
		{ID: 9, Version: 3, Index: 120, Value: []byte("hello")},
		{ID: 10, Version: 4, Index: 121},
		{ID: 11, Err: &wire.Error{Code: wire.CodeNotLeader, Message: "not the leader", Leader: &wire.Leader{ID: "n2", HTTP: "127.0.0.1:2"}}},
		{ID: 12, Err: &wire.Error{Code: wire.CodeWrongGroup, Message: "owned by g2", Epoch: 5}},
	}
	var b []byte
	for i := range resps {
		b = wire.AppendResponse(b, &resps[i])
	}
	r := bytes.NewReader(b)
	for i, want := range resps {
		got, err := wire.ReadResponse(r, 1<<20)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if len(got.Value) == 0 {
			got.Value = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("response %d: got %+v, want %+v", i, got, want)
		}
	}
}

// A frame over the reader's limit is reported with its ID and how much of
// it to skip, so the stream can answer it and go on in step.
func TestStreamFrameOverTheLimitCanBeSkipped(t *testing.T) {
	big := wire.StreamRequest{ID: 77, Op: wire.StreamPut, Key: []byte("k"), Value: make([]byte, 1000)}
	next := wire.StreamRequest{ID: 78, Op: wire.StreamGet, Key: []byte("k")}
	b := wire.AppendRequest(nil, &big)
	b = wire.AppendRequest(b, &next)
	r := bytes.NewReader(b)
	_, err := wire.ReadRequest(r, 100)
	var tl *wire.FrameTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, wire.ErrFrameTooLarge) || tl.ID != 77 {
		t.Fatalf("got %v, want a FrameTooLargeError for ID 77", err)
	}
	if _, err := io.CopyN(io.Discard, r, tl.Remaining); err != nil {
		t.Fatal(err)
	}
	got, err := wire.ReadRequest(r, 100)
	if err != nil || got.ID != 78 {
		t.Fatalf("after skipping: %+v, %v; want request 78", got, err)
	}
}

func TestStreamMalformedRequests(t *testing.T) {
	frame := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	valid := wire.AppendRequest(nil, &wire.StreamRequest{ID: 5, Op: wire.StreamGet, Key: []byte("key")})[4:]

	badOp := bytes.Clone(valid)
	badOp[8] = 99
	badKeyLen := bytes.Clone(valid)
	binary.BigEndian.PutUint32(badKeyLen[30:], 1000)

	for _, tc := range []struct {
		name      string
		in        []byte
		answer    bool // a *MalformedError the stream can answer and survive
		malformed bool
	}{
		{"unknown op", frame(badOp), true, true},
		{"key longer than the frame", frame(badKeyLen), true, true},
		{"shorter than the header", frame(valid[:10]), false, true},
		{"cut short", frame(valid)[:20], false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wire.ReadRequest(bytes.NewReader(tc.in), 1<<20)
			if err == nil {
				t.Fatal("no error")
			}
			var me *wire.MalformedError
			if got := errors.As(err, &me); got != tc.answer {
				t.Fatalf("%v: MalformedError %v, want %v", err, got, tc.answer)
			}
			if tc.answer && me.ID != 5 {
				t.Fatalf("MalformedError for ID %d, want 5", me.ID)
			}
			if !tc.malformed && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestStreamMalformedResponses(t *testing.T) {
	ok := wire.AppendResponse(nil, &wire.StreamResponse{ID: 1, Version: 2, Index: 3})
	short := append(binary.BigEndian.AppendUint32(nil, 12), ok[4:16]...)
	errBody := wire.AppendResponse(nil, &wire.StreamResponse{ID: 1, Err: &wire.Error{Code: wire.CodeInternal}})
	garbled := append(bytes.Clone(errBody[:13]), []byte("{not json")...)
	binary.BigEndian.PutUint32(garbled, uint32(len(garbled)-4))
	badStatus := bytes.Clone(ok)
	badStatus[12] = 7
	for name, in := range map[string][]byte{"ok too short": short, "error not JSON": garbled, "unknown status": badStatus} {
		if _, err := wire.ReadResponse(bytes.NewReader(in), 1<<20); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

type countingWriter struct {
	writes int
	bytes.Buffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// Frames that are ready together leave in one write: the point of the
// stream over HTTP/1.1's write per answer.
func TestWriteFramesBatchesWhatIsReady(t *testing.T) {
	ch := make(chan []byte, 10)
	var want []byte
	for i := range 10 {
		f := wire.AppendResponse(nil, &wire.StreamResponse{ID: uint64(i), Version: 1, Index: 1})
		want = append(want, f...)
		ch <- f
	}
	close(ch)
	var w countingWriter
	if err := wire.WriteFrames(&w, ch, nil); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 || !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("%d writes of %d bytes, want 1 of %d", w.writes, w.Len(), len(want))
	}
}
