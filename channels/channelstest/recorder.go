package channelstest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mautic-mm/sidecar/channels"
)

// Failure tells a Recorder how to fail sends to one address.
type Failure struct {
	Kind       channels.Kind
	RetryAfter time.Duration // transient only
	// Times is how many sends fail before the address succeeds again;
	// 0 means every send fails.
	Times int
}

// Call is one Send a Recorder received, with the error it returned.
type Call struct {
	Msg channels.Message
	Err error
}

// Recorder is a fake channels.Sender, safe for concurrent use. It records
// every call and succeeds, unless told to fail for the message's address
// (msg.To, or any of msg.PushIDs) with Fail.
type Recorder struct {
	mu    sync.Mutex
	calls []Call
	fail  map[string]*Failure
	seq   int
}

var _ channels.Sender = (*Recorder)(nil)

// NewRecorder returns a Recorder that accepts everything.
func NewRecorder() *Recorder { return &Recorder{fail: map[string]*Failure{}} }

// Fail makes sends to address fail as f says (replacing an earlier rule).
func (r *Recorder) Fail(address string, f Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail[address] = &f
}

// Send implements channels.Sender. A done ctx fails the send as transient,
// without recording a success.
func (r *Recorder) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := ctx.Err()
	if err != nil {
		err = channels.Transient(fmt.Errorf("recorder: %w", err), 0)
	} else {
		err = r.failure(msg)
	}
	r.calls = append(r.calls, Call{Msg: msg, Err: err})
	if err != nil {
		return channels.Receipt{}, err
	}
	r.seq++
	return channels.Receipt{ProviderID: fmt.Sprintf("rec-%d", r.seq), SentAt: time.Now().UTC()}, nil
}

// failure returns the configured error for msg, consuming one of its Times.
// r.mu is held.
func (r *Recorder) failure(msg channels.Message) error {
	addrs := append([]string{msg.To}, msg.PushIDs...)
	for _, a := range addrs {
		f, ok := r.fail[a]
		if !ok {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				delete(r.fail, a)
			}
		}
		err := fmt.Errorf("recorder: %s failure for %q", f.Kind, a)
		if f.Kind == channels.KindTransient {
			return channels.Transient(err, f.RetryAfter)
		}
		return &channels.Error{Kind: f.Kind, Err: err}
	}
	return nil
}

// Calls returns every call so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Messages returns the messages sent successfully, in order.
func (r *Recorder) Messages() []channels.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []channels.Message
	for _, c := range r.calls {
		if c.Err == nil {
			out = append(out, c.Msg)
		}
	}
	return out
}

// Count returns the number of calls so far, failed ones included.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// Reset forgets the calls and the failure rules.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
	r.fail = map[string]*Failure{}
	r.seq = 0
}
