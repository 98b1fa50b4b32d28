package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestProfileIsDeterministic(t *testing.T) {
	require.Equal(t, makeProfile(7, 123), makeProfile(7, 123))
	require.NotEqual(t, makeProfile(7, 123), makeProfile(8, 123))
}

func TestProfileProportions(t *testing.T) {
	const n = 20000
	var email, mobile, webPush, rules, dnc, emailHist, preferred, limited, paused int
	for id := int64(1); id <= n; id++ {
		p := makeProfile(1, id)
		if p.Email != "" {
			email++
		}
		if p.Mobile != "" {
			mobile++
		}
		if p.WebPush {
			webPush++
		}
		if len(p.Rules) > 0 {
			rules++
		}
		if len(p.DNC) > 0 {
			dnc++
		}
		if len(p.EmailSent) > 0 {
			emailHist++
		}
		for _, r := range p.Rules {
			if r.Preferred {
				preferred++
			}
			if r.Unit != "" {
				limited++
				require.Contains(t, []string{"DAY", "WEEK", "MONTH"}, r.Unit)
			}
			if r.PauseFrom > 0 && r.PauseTo < 0 {
				paused++
			}
		}
	}
	share := func(k int) float64 { return float64(k) / n }
	require.InDelta(t, pEmail, share(email), 0.02)
	require.InDelta(t, pMobile, share(mobile), 0.02)
	require.InDelta(t, pWebPush, share(webPush), 0.02)
	require.InDelta(t, pRules, share(rules), 0.02)
	require.InDelta(t, pDNC, share(dnc), 0.01)
	require.InDelta(t, pEmailStats, share(emailHist), 0.02)
	require.Positive(t, preferred)
	require.Positive(t, limited)
	require.Positive(t, paused)
}

func TestQueueChannel(t *testing.T) {
	p := profile{Email: "a@example.test", WebPush: true}
	require.Equal(t, "email", queueChannel(p, 0))
	require.Equal(t, "notification", queueChannel(p, 1))
	require.Equal(t, "sms", queueChannel(p, 2), "channels without an address come last")
	require.Equal(t, "email", queueChannel(p, 3))
	require.Equal(t, "email", queueChannel(profile{}, 0))
}

func TestProgressLine(t *testing.T) {
	require.Equal(t, "intake         500/1000 requests  250/s  2s  ETA 2s", progressLine("intake", 500, 1000, "requests", 2e9))
	require.Equal(t, "insert floor   300 commits  150/s  2s", progressLine("insert floor", 300, 0, "commits", 2e9))
}

func TestMaskedEnv(t *testing.T) {
	got := maskedEnv(map[string]string{"SIDECAR_TOKEN": "t0p", "TWILIO_AUTH_TOKEN": "x", "ONESIGNAL_REST_API_KEY": "k",
		"MAUTIC_SECRET_KEY": "s", "MAUTIC_DB_DSN": "root:pw@tcp(127.0.0.1:3306)/db", "SIDECAR_WORKERS": "16"})
	require.Equal(t, []string{"MAUTIC_DB_DSN=root:xxxxx@tcp(127.0.0.1:3306)/db", "MAUTIC_SECRET_KEY=xxxxx", "ONESIGNAL_REST_API_KEY=xxxxx",
		"SIDECAR_TOKEN=xxxxx", "SIDECAR_WORKERS=16", "TWILIO_AUTH_TOKEN=xxxxx"}, got)
}
