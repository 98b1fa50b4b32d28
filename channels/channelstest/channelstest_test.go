package channelstest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	r.Fail("+1555", Failure{Kind: channels.KindUnreachable})
	r.Fail("player-9", Failure{Kind: channels.KindTransient, RetryAfter: time.Second, Times: 2})

	tests := []struct {
		name string
		msg  channels.Message
		want Outcome
		wait time.Duration
	}{
		{"ok", channels.Message{To: "a@example.com"}, OK, 0},
		{"always unreachable", channels.Message{To: "+1555"}, Unreachable, 0},
		{"again unreachable", channels.Message{To: "+1555"}, Unreachable, 0},
		{"push id transient 1", channels.Message{PushIDs: []string{"p1", "player-9"}}, Transient, time.Second},
		{"push id transient 2", channels.Message{PushIDs: []string{"player-9"}}, Transient, time.Second},
		{"push id recovered", channels.Message{PushIDs: []string{"player-9"}}, OK, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rcpt, err := r.Send(context.Background(), tc.msg)
			require.Equal(t, tc.want, OutcomeOf(err))
			require.Equal(t, tc.wait, channels.RetryAfterOf(err))
			if tc.want == OK {
				require.NotEmpty(t, rcpt.ProviderID)
			}
		})
	}
	require.Equal(t, len(tests), r.Count())
	require.Len(t, r.Messages(), 2)
	require.Len(t, r.Calls(), len(tests))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Send(ctx, channels.Message{To: "x"})
	require.ErrorIs(t, err, context.Canceled)

	r.Reset()
	require.Zero(t, r.Count())
	_, err = r.Send(context.Background(), channels.Message{To: "+1555"})
	require.NoError(t, err, "rules are gone after Reset")
}

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = r.Send(context.Background(), channels.Message{To: fmt.Sprint(i)})
		}()
	}
	wg.Wait()
	require.Equal(t, 50, r.Count())
}

func TestOutcomeOf(t *testing.T) {
	require.Equal(t, OK, OutcomeOf(nil))
	require.Equal(t, Transient, OutcomeOf(errors.New("plain")))
	require.Equal(t, Permanent, OutcomeOf(channels.Permanent(errors.New("x"))))
	require.Equal(t, Unreachable, OutcomeOf(channels.Unreachable(errors.New("x"))))
	require.Equal(t, OptedOut, OutcomeOf(channels.OptedOut(errors.New("x"))))
}

func TestRunStatusTable(t *testing.T) {
	// A tiny sender that maps the status it gets to kinds, to exercise the runner.
	build := func(t testing.TB, base string, c *http.Client) channels.Sender {
		return channels.SenderFunc(func(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base, nil)
			if err != nil {
				return channels.Receipt{}, err
			}
			resp, err := c.Do(req)
			if err != nil {
				return channels.Receipt{}, channels.Transient(err, 0)
			}
			defer resp.Body.Close()
			switch {
			case resp.StatusCode == 200:
				return channels.Receipt{ProviderID: resp.Header.Get("X-Id")}, nil
			case resp.StatusCode == 429:
				return channels.Receipt{}, channels.Transient(errors.New("429"), 5*time.Second)
			default:
				return channels.Receipt{}, channels.Permanent(fmt.Errorf("status %d", resp.StatusCode))
			}
		})
	}
	RunStatusTable(t, build, channels.Message{}, []StatusCase{
		{Name: "ok", Status: 200, Header: http.Header{"X-Id": {"abc"}}, Want: OK, ProviderID: "abc"},
		{Name: "limited", Status: 429, Want: Transient, RetryAfter: 5 * time.Second},
		{Name: "bad", Status: 400, Want: Permanent, ErrContains: "status 400"},
	})
}
