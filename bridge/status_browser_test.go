package bridge

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath is Debian's chromium package. The browser test needs it:
// in CI (CI set) a missing browser is a failure, elsewhere the test skips.
const chromiumPath = "/usr/bin/chromium"

func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (%v): CI installs Debian's chromium package (.ci/run)", chromiumPath, err)
		}
		t.Skipf("%s is missing: `apt-get install chromium` (Debian) to run the status page's browser test", chromiumPath)
	}
}

// newBrowser starts a headless Chromium with a fresh profile (call
// requireChromium first). The flags keep
// it off the network: without them Chromium keeps calling Google's services,
// which floods a closed network.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	var out syncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
		chromedp.CombinedOutput(&out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc) // waits for the browser to exit, before the profile is removed
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	// Start the browser on the long-lived context, then bound the test.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	ctx, cancelRun := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelRun)
	return ctx
}

// TestStatusBrowser signs in to the status page in headless Chromium and
// checks what an operator sees: the dispatch rows, the chart, the queue
// depth, nothing loaded from elsewhere, and a screenshot.
func TestStatusBrowser(t *testing.T) {
	requireChromium(t)
	h := newHarness(t, func(c *Config) { c.Version = "v0.0.0-browser" })
	f := seedStatus(h)
	ctx := newBrowser(t)

	var mu sync.Mutex
	var requested []string
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}))

	// The login form, then the page.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(h.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login")),
	))
	hasData, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("dashboard") !== null`))
	require.NoError(t, err)
	require.False(t, hasData, "no data before signing in")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), testToken),
		chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("dashboard")),
	))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, h.srv.URL+"/", loc, "the 303 led back to the page")

	version, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("version")))
	require.NoError(t, err)
	require.Equal(t, "v0.0.0-browser", version)

	// A dispatch's row: its channel, state and the skip in its trace.
	row, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("dispatch-"+itoa(f.sent))))
	require.NoError(t, err)
	require.Contains(t, row, "sms")
	require.Contains(t, row, "sent")
	require.Contains(t, row, "skipped")
	require.Contains(t, row, "dnc")
	failedRow, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("dispatch-"+itoa(f.failed))))
	require.NoError(t, err)
	require.Contains(t, failedRow, "failed")
	require.Contains(t, failedRow, "no_address")

	// The chart: inline SVG with a drawn, coloured bar for sms.
	bar, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(() => {
		const svg = document.querySelector("svg#chart-channels");
		const r = svg && svg.querySelector('rect[data-channel="sms"][data-kind="sent"]');
		if (!r) return {found: false};
		return {found: true, width: r.getBoundingClientRect().width, fill: getComputedStyle(r).fill,
			bars: svg.querySelectorAll('rect[data-channel="sms"]').length};
	})()`))
	require.NoError(t, err)
	require.Equal(t, true, bar["found"], "svg#chart-channels has a bar for sms")
	require.Greater(t, bar["width"].(float64), 10.0, "the bar is drawn")
	require.Equal(t, "rgb(31, 157, 85)", bar["fill"], "the stylesheet applies (CSP allows it)")
	require.EqualValues(t, 2, bar["bars"], "sms: sent and failed")

	pending, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("queue-pending")))
	require.NoError(t, err)
	require.Equal(t, "1", pending)
	backlog, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("backlog")))
	require.NoError(t, err)
	require.Equal(t, "0", backlog)

	// The session cookie is HttpOnly: invisible to the page's scripts.
	jsCookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	require.NoError(t, err)
	require.Empty(t, jsCookies)
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{h.srv.URL + "/"}})
	require.NoError(t, err)
	require.Len(t, cookies.Cookies, 1)
	require.Equal(t, sessionCookie, cookies.Cookies[0].Name)
	require.True(t, cookies.Cookies[0].HTTPOnly)
	require.Equal(t, network.CookieSameSiteStrict, cookies.Cookies[0].SameSite)

	// The filter links work.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav.filters a[href="?state=queued"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav.filters a.active[href="?state=queued"]`)),
	))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#dispatches tbody tr")].map(r => r.id)`))
	require.NoError(t, err)
	require.Equal(t, []string{"dispatch-" + itoa(f.queued)}, rows)

	// A screenshot of the page.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(h.srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("dashboard"))))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "status.png")
	require.NoError(t, os.WriteFile(file, shot, 0o600))
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Positive(t, st.Size())
	img, err := png.DecodeConfig(bytes.NewReader(shot))
	require.NoError(t, err, "a PNG")
	require.Equal(t, 1280, img.Width)
	require.Greater(t, img.Height, 400)
	t.Logf("screenshot: %dx%d, %d bytes", img.Width, img.Height, st.Size())

	// Signing out returns to the form and drops the cookie.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`form[action="logout"] button`)),
		chromedp.WaitVisible(chromedp.ID("login")),
	))
	cookies, err = chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{h.srv.URL + "/"}})
	require.NoError(t, err)
	require.Empty(t, cookies.Cookies)

	// Everything the browser fetched came from the sidecar.
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, requested)
	for _, u := range requested {
		require.True(t, strings.HasPrefix(u, h.srv.URL+"/") || strings.HasPrefix(u, "data:") || u == "about:blank",
			"the page loaded %s", u)
	}
}
