package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/internal/webhookclient"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

// benchClients is the number of concurrent clients of the intake benchmarks
// (Mautic's webhook calls): 32, as the issue measures.
const benchClients = 32

// bulkContacts inserts n contacts with an email and a mobile in one
// statement per 1000 rows and returns the first id.
func bulkContacts(tb testing.TB, db *testdb.DB, n int) int64 {
	tb.Helper()
	var first int64
	for done := 0; done < n; done += 1000 {
		k := min(1000, n-done)
		var sb strings.Builder
		sb.WriteString(db.Fmt("INSERT INTO {p}leads (is_published, date_added, points, email, mobile) VALUES "))
		args := make([]any, 0, k*2)
		now := time.Now().UTC()
		for i := 0; i < k; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(1, ?, 0, ?, ?)")
			args = append(args, now, fmt.Sprintf("c%d@example.test", done+i), fmt.Sprintf("+1415555%04d", (done+i)%10000))
		}
		res, err := db.Exec(sb.String(), args...)
		require.NoError(tb, err)
		if first == 0 {
			first, _ = res.LastInsertId()
		}
	}
	return first
}

func benchApp(tb testing.TB, db *testdb.DB, opts Options, send channels.Sender) *App {
	tb.Helper()
	reg := channels.NewRegistry()
	for _, ch := range []string{"email", "sms", "notification"} {
		require.NoError(tb, reg.Add(channels.Name(ch), send))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.MessageCacheTTL == 0 {
		opts.MessageCacheTTL = time.Second // as serve runs it
	}
	return New(Config{Token: testToken, DedupWindow: 24 * time.Hour, MaxBacklog: 10_000_000, Pipeline: opts}, db.Mautic, reg, log, nil)
}

var countingSender = func(n *atomic.Int64) channels.Sender {
	return channels.SenderFunc(func(ctx context.Context, m channels.Message) (channels.Receipt, error) {
		n.Add(1)
		return channels.Receipt{ProviderID: "bench", SentAt: time.Now()}, nil
	})
}

// BenchmarkBareInsertCommit is the floor of BenchmarkIntake: single-row
// INSERT commits with 32 concurrent connections, in the same run.
func BenchmarkBareInsertCommit(b *testing.B) {
	db := testdb.New(b, testdb.WithoutSchema(), testdb.WithoutMigrations())
	db.MustExec(b, "CREATE TABLE bench_floor (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, contact_id BIGINT UNSIGNED NOT NULL, created_at DATETIME(6) NOT NULL) ENGINE=InnoDB")
	db.DB.SetMaxOpenConns(benchClients)
	b.SetParallelism(benchClientsPerProc())
	var seq atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Exec("INSERT INTO bench_floor (contact_id, created_at) VALUES (?, ?)", seq.Add(1), time.Now().UTC()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// benchClientsPerProc makes RunParallel use 32 goroutines in all.
func benchClientsPerProc() int {
	procs := runtime.GOMAXPROCS(0)
	return max(1, (benchClients+procs-1)/procs)
}

// BenchmarkIntake measures POST /v1/campaign/message answered 200 by the
// real HTTP server, 32 concurrent clients, each request for another contact.
func BenchmarkIntake(b *testing.B) {
	db := testdb.New(b)
	s := seed.New(db.DB, db.Prefix)
	ctx := context.Background()
	email, err := s.Email(ctx, seed.Email{Subject: "s", HTML: "<p>x</p>"})
	require.NoError(b, err)
	msg, err := s.Message(ctx, "MM", seed.Channel{Channel: "email", ChannelID: email})
	require.NoError(b, err)
	const contacts = 50000
	first := bulkContacts(b, db, contacts)
	var sent atomic.Int64
	app := benchApp(b, db, Options{Workers: 0}, countingSender(&sent))
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	// The clients of cmd/loadgen: net/http's client would take about as
	// much CPU per call as the handler, on the same two cores.
	target, err := webhookclient.NewTarget(srv.URL, testToken)
	require.NoError(b, err)
	var seq atomic.Int64
	fixed := "&message_id=" + strconv.FormatInt(msg, 10) + "&idempotency_key=bench-"
	b.SetParallelism(benchClientsPerProc())
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn := target.Conn()
		defer conn.Close()
		for pb.Next() {
			i := seq.Add(1)
			form := "contact_id=" + strconv.FormatInt(first+i%contacts, 10) + fixed + strconv.FormatInt(i, 10)
			status, body, err := conn.Post(context.Background(), form)
			if err != nil {
				b.Error(err)
				return
			}
			if status != http.StatusOK {
				b.Errorf("status %d: %s", status, body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	app.intake.Close()
	if m := (&dto.Metric{}); app.metrics.IntakeBatch.Write(m) == nil && m.Histogram.GetSampleCount() > 0 {
		b.ReportMetric(m.Histogram.GetSampleSum()/float64(m.Histogram.GetSampleCount()), "reqs/commit")
	}
}

// BenchmarkDispatchEndToEnd measures accepted → sent through the real
// pipeline with a fake sender: b.N dispatches are accepted first, then the
// workers route them; the timer covers routing only.
func BenchmarkDispatchEndToEnd(b *testing.B) {
	db := testdb.New(b)
	s := seed.New(db.DB, db.Prefix)
	ctx := context.Background()
	email, err := s.Email(ctx, seed.Email{Subject: "s", HTML: "<p>x</p>"})
	require.NoError(b, err)
	smsID, err := s.SMS(ctx, seed.SMS{Message: "hi"})
	require.NoError(b, err)
	msg, err := s.Message(ctx, "MM", seed.Channel{Channel: "email", ChannelID: email}, seed.Channel{Channel: "sms", ChannelID: smsID})
	require.NoError(b, err)
	contacts := max(b.N, 1000)
	first := bulkContacts(b, db, contacts)
	// A realistic share of preferences: a preferred sms rule with a limit for
	// a third of the contacts.
	var sb strings.Builder
	sb.WriteString(db.Fmt("INSERT INTO {p}lead_frequencyrules (lead_id, date_added, frequency_number, frequency_time, channel, preferred_channel) VALUES "))
	var args []any
	for i := 0; i < contacts; i += 3 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?, ?, 5, 'WEEK', 'sms', 1)")
		args = append(args, first+int64(i), time.Now().UTC())
	}
	_, err = db.Exec(sb.String(), args...)
	require.NoError(b, err)

	st := store.New(db.DB, db.Prefix)
	for done := 0; done < b.N; done += 1000 {
		var batch []store.NewDispatch
		for i := done; i < min(done+1000, b.N); i++ {
			c := first + int64(i%contacts)
			batch = append(batch, store.NewDispatch{ContactID: c, MessageID: msg, IdempotencyKey: fmt.Sprintf("e2e-%d", i),
				Key: store.KeyFor(fmt.Sprintf("e2e-%d", i), 0, 0, msg, c)})
		}
		_, err := st.Accept(ctx, batch, time.Now(), time.Hour)
		require.NoError(b, err)
	}
	var sent atomic.Int64
	opts := Options{Workers: 16, BatchSize: 128, MessageCacheTTL: time.Second, FrequencyDefaults: map[string]mautic.Limit{}}
	app := benchApp(b, db, opts, countingSender(&sent))
	b.ResetTimer()
	app.Start()
	deadline := time.Now().Add(10 * time.Minute)
	for sent.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	app.Stop(10 * time.Second)
	require.Equal(b, int64(b.N), sent.Load())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dispatches/s")
}
