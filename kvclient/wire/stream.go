package wire

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The KV stream is kvclient's fast path for get, put and delete: one TCP
// connection to an agent's HTTP port, upgraded from HTTP/1.1 (GET
// PathKVStream with "Upgrade: StreamProtocol"; the agent answers 101), then
// length-prefixed binary frames in both directions. Many requests are in
// flight on one connection at once, answered in any order and matched by
// their ID, and both sides write whatever frames are ready with one system
// call. It carries exactly what the HTTP KV endpoints carry, with the same
// error codes and semantics; the HTTP API stays for curl, humans and
// management. docs/api.md describes the frames.
const (
	PathKVStream   = "/v1/kv-stream"
	StreamProtocol = "carpkv-kv/1"
)

// StreamOp is the operation of a stream request.
type StreamOp uint8

const (
	StreamGet    StreamOp = 1
	StreamPut    StreamOp = 2
	StreamDelete StreamOp = 3
	// StreamPing asks the agent to show it is alive: it answers at once,
	// ok with no value, from the connection's reader, whatever Raft is
	// doing. kvclient pings a connection whose requests have gone
	// unanswered for a while (Config.LivenessTimeout). Key and value are
	// empty.
	StreamPing StreamOp = 4
)

// Stream request flags.
const (
	FlagStale uint8 = 1 << 0 // get: a local, possibly stale read (QueryStale)
	FlagCAS   uint8 = 1 << 1 // put, delete: conditional on Expect (QueryCAS)
)

// StreamRequest is one KV request on the stream.
//
// Frame: u32 length of what follows, big endian; then u64 ID, u8 op, u8
// flags, u64 ring epoch, u64 expected version, u32 timeout in
// microseconds (0: the agent's own), u32 key length, the key, and the
// value (the rest of the frame; put only).
type StreamRequest struct {
	ID        uint64
	Op        StreamOp
	Flags     uint8
	RingEpoch uint64 // 0: the client routes without a ring
	Expect    uint64 // with FlagCAS
	TimeoutUS uint32
	Key       []byte
	Value     []byte
}

// StreamRequestHeader is the fixed part of a request frame after its
// length.
const StreamRequestHeader = 8 + 1 + 1 + 8 + 8 + 4 + 4

// MaxStreamFrame is the largest frame length the u32 prefix can carry.
const MaxStreamFrame = 1<<32 - 1

// StreamResponse is one answer on the stream.
//
// Frame: u32 length of what follows; then u64 ID of the request, u8
// status (0 ok, 1 error). OK: u64 version, u64 Raft index, and the value
// (the rest; get only). Error: the Error as JSON (the rest).
type StreamResponse struct {
	ID      uint64
	Err     *Error // nil: success
	Version uint64
	Index   uint64
	Value   []byte
}

const (
	streamOK    = 0
	streamError = 1
)

// StreamResponseHeader is the fixed part of a successful answer's frame
// after its length: ID, status, version and index.
const StreamResponseHeader = 8 + 1 + 8 + 8

// ErrFrameTooLarge is returned by the frame readers for a frame over the
// reader's limit. The frame's ID has been read (FrameTooLargeError.ID) but
// not the rest: the stream is out of step unless the caller discards
// FrameTooLargeError.Remaining bytes.
var ErrFrameTooLarge = errors.New("frame over the limit")

// FrameTooLargeError carries what is needed to answer and skip an
// oversized frame.
type FrameTooLargeError struct {
	ID        uint64
	Size      uint32 // the frame's length
	Remaining int64  // bytes of the frame still unread
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes: %v", e.Size, ErrFrameTooLarge)
}
func (e *FrameTooLargeError) Unwrap() error { return ErrFrameTooLarge }

// AppendRequest appends r's frame to b.
func AppendRequest(b []byte, r *StreamRequest) []byte {
	n := StreamRequestHeader + len(r.Key) + len(r.Value)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint64(b, r.ID)
	b = append(b, byte(r.Op), r.Flags)
	b = binary.BigEndian.AppendUint64(b, r.RingEpoch)
	b = binary.BigEndian.AppendUint64(b, r.Expect)
	b = binary.BigEndian.AppendUint32(b, r.TimeoutUS)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Key)))
	b = append(b, r.Key...)
	return append(b, r.Value...)
}

// MalformedError is a request frame that was read whole but whose contents
// make no sense: the stream is still in step, and the request can be
// answered (invalid_argument) by its ID.
type MalformedError struct {
	ID     uint64
	Reason string
}

func (e *MalformedError) Error() string { return "malformed request: " + e.Reason }

// ReadRequest reads one request frame of at most max bytes (after the
// length) into a buffer of its own, which Key and Value share: they stay
// valid as long as the caller likes. A *MalformedError or a
// *FrameTooLargeError can be answered and the stream goes on; any other
// error ends the stream.
func ReadRequest(r io.Reader, max int) (StreamRequest, error) {
	var req StreamRequest
	f, err := readFrame(r, max, StreamRequestHeader)
	if err != nil {
		return req, err
	}
	req.ID = binary.BigEndian.Uint64(f)
	req.Op = StreamOp(f[8])
	req.Flags = f[9]
	req.RingEpoch = binary.BigEndian.Uint64(f[10:])
	req.Expect = binary.BigEndian.Uint64(f[18:])
	req.TimeoutUS = binary.BigEndian.Uint32(f[26:])
	klen := binary.BigEndian.Uint32(f[30:])
	rest := f[StreamRequestHeader:]
	if uint64(klen) > uint64(len(rest)) {
		return req, &MalformedError{ID: req.ID, Reason: fmt.Sprintf("key length %d over the frame's %d bytes", klen, len(rest))}
	}
	switch req.Op {
	case StreamGet, StreamPut, StreamDelete, StreamPing, StreamMultiPut, StreamMultiGet:
	default:
		return req, &MalformedError{ID: req.ID, Reason: fmt.Sprintf("unknown operation %d", req.Op)}
	}
	req.Key, req.Value = rest[:klen], rest[klen:]
	return req, nil
}

// AppendResponse appends r's frame to b.
func AppendResponse(b []byte, r *StreamResponse) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, r.ID)
	if r.Err != nil {
		b = append(b, streamError)
		j, err := json.Marshal(r.Err)
		if err != nil { // an Error always marshals; keep the code if not
			j = []byte(`{"code":"` + string(r.Err.Code) + `"}`)
		}
		b = append(b, j...)
	} else {
		b = append(b, streamOK)
		b = binary.BigEndian.AppendUint64(b, r.Version)
		b = binary.BigEndian.AppendUint64(b, r.Index)
		b = append(b, r.Value...)
	}
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// ReadResponse reads one response frame of at most max bytes into a
// buffer of its own (Value shares it). A *FrameTooLargeError can be
// skipped; any other error means the stream is unusable.
func ReadResponse(r io.Reader, max int) (StreamResponse, error) {
	var resp StreamResponse
	f, err := readFrame(r, max, 8+1)
	if err != nil {
		return resp, err
	}
	n := len(f)
	resp.ID = binary.BigEndian.Uint64(f)
	switch f[8] {
	case streamOK:
		if n < StreamResponseHeader {
			return resp, fmt.Errorf("malformed response: %d bytes", n)
		}
		resp.Version = binary.BigEndian.Uint64(f[9:])
		resp.Index = binary.BigEndian.Uint64(f[17:])
		resp.Value = f[StreamResponseHeader:]
	case streamError:
		var e Error
		if err := json.Unmarshal(f[9:], &e); err != nil || e.Code == "" {
			return resp, fmt.Errorf("malformed error answer: %.200q", f[9:])
		}
		resp.Err = &e
	default:
		return resp, fmt.Errorf("malformed response: status %d", f[8])
	}
	return resp, nil
}

// readFrame reads a frame's length, then its body into a new buffer. A
// frame shorter than min is malformed; one over max is a
// *FrameTooLargeError after its ID is read.
func readFrame(r io.Reader, max, min int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if int64(size) < int64(min) {
		return nil, fmt.Errorf("malformed frame: %d bytes, under the %d of its header", size, min)
	}
	if int64(size) > int64(max) {
		var id [8]byte
		if _, err := io.ReadFull(r, id[:]); err != nil {
			return nil, err
		}
		return nil, &FrameTooLargeError{ID: binary.BigEndian.Uint64(id[:]), Size: size, Remaining: int64(size) - 8}
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// WriteFrames writes the frames sent on ch to w until ch is closed (nil),
// stop is closed (nil), or a write fails (the error). It flushes only when
// no frame is waiting, so every frame ready at once goes out in one system
// call: under load, many requests or answers share one write.
func WriteFrames(w io.Writer, ch <-chan []byte, stop <-chan struct{}) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for {
		var f []byte
		var ok bool
		select {
		case f, ok = <-ch:
			if !ok {
				return nil
			}
		case <-stop:
			return nil
		}
		if _, err := bw.Write(f); err != nil {
			return err
		}
	drain:
		for {
			select {
			case f, ok = <-ch:
				if !ok {
					break drain
				}
				if _, err := bw.Write(f); err != nil {
					return err
				}
			default:
				break drain
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if !ok {
			return nil
		}
	}
}
