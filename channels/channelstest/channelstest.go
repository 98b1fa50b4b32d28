// Package channelstest holds helpers shared by the sender tests and the
// bridge's tests: a leak check for credentials, a status-code table runner
// that drives a real sender against a local HTTP server, and a recording
// fake sender.
//
// It imports testify and net/http/httptest, so only test code should import it.
package channelstest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

// AssertNoSecret fails the test when err is nil, or when its text (plain or
// with %+v) contains any of the secrets. Each secret must be non-empty: an
// empty secret would make the check vacuous.
func AssertNoSecret(t testing.TB, err error, secrets ...string) {
	t.Helper()
	require.Error(t, err, "the send was expected to fail")
	AssertNoSecretIn(t, "error", err.Error(), secrets...)
	AssertNoSecretIn(t, "error (%+v)", fmt.Sprintf("%+v", err), secrets...)
}

// AssertNoSecretIn fails the test when text contains any of the secrets.
// what names the text in the failure message (e.g. "log", "String()").
func AssertNoSecretIn(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	require.NotEmpty(t, secrets, "no secret to look for")
	for i, s := range secrets {
		require.NotEmpty(t, s, "secret %d is empty", i)
		require.NotContains(t, text, s, "%s leaks secret %d", what, i)
	}
}

// NewClient returns an HTTP client with the given timeout and its own
// transport (not http.DefaultTransport), so that gock.InterceptClient and
// gock.Off leave it usable. Idle connections are closed when the test ends.
func NewClient(t testing.TB, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: timeout, Transport: tr}
}

// Outcome is the expected result of a send in a StatusCase: OK, or the name
// of a channels.Kind.
type Outcome string

// The outcomes. Apart from OK they equal channels.Kind.String().
const (
	OK          Outcome = "ok"
	Transient   Outcome = "transient"
	Permanent   Outcome = "permanent"
	Unreachable Outcome = "unreachable"
	OptedOut    Outcome = "opted_out"
)

// OutcomeOf returns OK for a nil error, else the name of its kind.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return OK
	}
	return Outcome(channels.KindOf(err).String())
}

// StatusCase is one provider answer and the outcome the sender must turn it into.
type StatusCase struct {
	Name   string
	Status int
	Header http.Header
	Body   string
	Want   Outcome
	// RetryAfter is the expected channels.RetryAfterOf(err), compared
	// within a second (HTTP-date values are computed against the clock).
	RetryAfter time.Duration
	// ErrContains, when set, must appear in the error text.
	ErrContains string
	// ProviderID, when set, is the expected Receipt.ProviderID on OK.
	ProviderID string
}

// Build makes the sender under test, pointed at baseURL and using client.
type Build func(t testing.TB, baseURL string, client *http.Client) channels.Sender

// RunStatusTable runs each case as a subtest: a local httptest server answers
// the case's status, headers and body to whatever the sender asks, the sender
// built by build sends msg, and the outcome, Retry-After, error text and
// provider id are checked. Each case gets its own server, so the runner is
// safe next to gock tests (it never touches gock's global state) as long as
// build does not intercept the client.
func RunStatusTable(t *testing.T, build Build, msg channels.Message, cases []StatusCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				for k, vs := range tc.Header {
					for _, v := range vs {
						w.Header().Add(k, v)
					}
				}
				w.WriteHeader(tc.Status)
				_, _ = io.WriteString(w, tc.Body)
			}))
			t.Cleanup(srv.Close)

			s := build(t, srv.URL, NewClient(t, 5*time.Second))
			rcpt, err := s.Send(context.Background(), msg)
			require.Equal(t, tc.Want, OutcomeOf(err), "error: %v", err)
			if tc.Want == OK {
				if tc.ProviderID != "" {
					require.Equal(t, tc.ProviderID, rcpt.ProviderID)
				}
				return
			}
			if tc.ErrContains != "" {
				require.Contains(t, strings.ToLower(err.Error()), strings.ToLower(tc.ErrContains))
			}
			require.InDelta(t, tc.RetryAfter.Seconds(), channels.RetryAfterOf(err).Seconds(), 1.0,
				"retry after %v", channels.RetryAfterOf(err))
		})
	}
}
