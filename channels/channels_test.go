package channels_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

func TestErrorKinds(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		err       error
		kind      channels.Kind
		permanent bool
	}{
		{channels.Permanent(base), channels.KindPermanent, true},
		{channels.Unreachable(base), channels.KindUnreachable, true},
		{channels.OptedOut(base), channels.KindOptedOut, true},
		{channels.Transient(base, time.Second), channels.KindTransient, false},
		{base, channels.KindTransient, false},
		{fmt.Errorf("wrapped: %w", channels.Unreachable(base)), channels.KindUnreachable, true},
	}
	for _, tc := range cases {
		require.Equal(t, tc.kind, channels.KindOf(tc.err), tc.err.Error())
		require.Equal(t, tc.permanent, errors.Is(tc.err, channels.ErrPermanent), tc.err.Error())
		require.ErrorIs(t, tc.err, base, "the cause stays reachable")
	}
	require.True(t, errors.Is(channels.Unreachable(base), channels.ErrUnreachable))
	require.False(t, errors.Is(channels.Permanent(base), channels.ErrUnreachable))
	require.Equal(t, time.Second, channels.RetryAfterOf(fmt.Errorf("x: %w", channels.Transient(base, time.Second))))
	require.Zero(t, channels.RetryAfterOf(base))
	require.Equal(t, "opted_out", channels.KindOptedOut.String())
}

func TestRegistry(t *testing.T) {
	r := channels.NewRegistry()
	s := channels.SenderFunc(func(context.Context, channels.Message) (channels.Receipt, error) { return channels.Receipt{}, nil })
	require.NoError(t, r.Add("sms", s))
	require.NoError(t, r.Add("email", s))
	require.Error(t, r.Add("sms", s), "a name is added once")
	require.Error(t, r.Add("", s))
	require.Error(t, r.Add("x", nil))
	require.Equal(t, []channels.Name{"email", "sms"}, r.Names())
	require.True(t, r.Has("email"))
	_, ok := r.Get("tweet")
	require.False(t, ok)
}
