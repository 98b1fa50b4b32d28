package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/mautic-mm/sidecar/bridge"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/migrations"
)

// runServe is `sidecar serve`.
func runServe(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg, _, err := parseCommand("serve", args, environ, stderr, nil)
	if err != nil {
		return err
	}
	if cfg.Token == "" {
		return errors.New("SIDECAR_TOKEN is required: serve refuses to start without it")
	}
	log := newLogger(cfg, stderr)
	db, err := openChecked(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv, err := startServer(ctx, cfg, db, log, ln)
	if err != nil {
		return err
	}
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			_ = srv.stop()
			return err
		}
		defer stopPprof()
	}
	<-ctx.Done()
	return srv.stop()
}

// openChecked opens Mautic's database and refuses to go on when the schema,
// the migrations or the server would not work.
func openChecked(ctx context.Context, cfg Config, log *slog.Logger) (*mautic.DB, error) {
	db, err := mautic.Open(ctx, mautic.Config{DSN: cfg.dsn(), Prefix: cfg.TablePrefix, MaxOpenConns: cfg.DBMaxConns})
	if err != nil {
		return nil, err
	}
	si, err := db.Server(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	if !si.SkipLocked() {
		db.Close()
		return nil, fmt.Errorf("%s does not support FOR UPDATE SKIP LOCKED (MariaDB 10.6+ or MySQL 8.0.1+ needed)", si)
	}
	problems, err := db.CheckSchema(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, p := range problems {
		if !p.Optional {
			db.Close()
			return nil, fmt.Errorf("Mautic's schema is incomplete (%s); is MAUTIC_TABLE_PREFIX right? run `sidecar check`", p)
		}
	}
	st, err := migrations.Read(db.DB.DB, cfg.TablePrefix)
	if err != nil {
		db.Close()
		return nil, err
	}
	if !st.Current() {
		db.Close()
		return nil, fmt.Errorf("the sidecar schema is at %s: %s", st, st.Advice())
	}
	log.Info("database ready", "server", si.String(), "prefix", cfg.TablePrefix, "tweets", mautic.HasTweets(problems))
	return db, nil
}

// server is a running sidecar: HTTP API plus workers.
type server struct {
	cfg     Config
	log     *slog.Logger
	http    *http.Server
	app     *bridge.App
	senders *senderSet
	errc    chan error
	URL     string
}

// startServer builds the senders and the bridge and serves on ln.
func startServer(ctx context.Context, cfg Config, db *mautic.DB, log *slog.Logger, ln net.Listener) (*server, error) {
	metrics := bridge.NewMetrics()
	set, err := buildSenders(ctx, cfg, db, log, metrics.Registry)
	if err != nil {
		return nil, err
	}
	if len(set.Registry.Names()) == 0 {
		set.Close()
		return nil, errNoSender
	}
	for _, s := range set.Status {
		if s.Live {
			log.Info("sender ready", "channel", string(s.Channel), "detail", s.Detail)
		} else {
			log.Info("sender off", "channel", string(s.Channel), "reason", s.Detail)
		}
	}
	problems, _ := db.CheckSchema(ctx)
	app := bridge.New(bridge.Config{
		Token:           string(cfg.Token),
		TwilioAuthToken: set.TwilioAuthToken,
		PublicURL:       cfg.PublicURL,
		SMSRegion:       cfg.SMSDefaultRegion,
		QueueWorker:     cfg.Queue == "sidecar",
		DedupWindow:     cfg.DedupWindow,
		MaxBacklog:      cfg.MaxBacklog,
		IntakeWriters:   cfg.IntakeWriters,
		Version:         version,
		Pipeline: bridge.Options{
			Workers: cfg.Workers, BatchSize: cfg.BatchSize, QueueBatchSize: cfg.QueueBatch, Lease: cfg.Lease, SendTimeout: cfg.SendTimeout,
			RetryMax: cfg.RetryMax, RetryBase: cfg.RetryBase, FrequencyDefaults: cfg.frequencyDefaults(),
			MessageCacheTTL: time.Second,
		},
	}, db, set.Registry, log, metrics)
	app.SetTweets(mautic.HasTweets(problems))
	hs := newHTTPServer(app.Handler(), log, apiLimits())
	app.Start()
	s := &server{cfg: cfg, log: log, http: hs, app: app, senders: set, errc: make(chan error, 1),
		URL: "http://" + ln.Addr().String()}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
		close(s.errc)
	}()
	log.Info("serving", "addr", ln.Addr().String(), "queue", cfg.Queue, "workers", cfg.Workers, "version", version)
	return s, nil
}

// httpLimits bound what one client can hold of the HTTP server.
type httpLimits struct {
	ReadHeader time.Duration // the request line and headers (slow-header clients)
	Read       time.Duration // the whole request, body included (slow bodies)
	Write      time.Duration // from the end of the headers to the end of the answer
	Idle       time.Duration // a keep-alive connection between requests
	MaxHeader  int           // bytes of request line and headers; more is a 431
}

// apiLimits are the API's limits: a webhook call is one small request (a
// body of at most 64 KiB) answered within the intake's 20 s bound.
func apiLimits() httpLimits {
	return httpLimits{ReadHeader: 5 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second,
		MaxHeader: 64 << 10}
}

// newHTTPServer is the API's http.Server with limits l.
func newHTTPServer(h http.Handler, log *slog.Logger, l httpLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		WriteTimeout:      l.Write,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeader,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// stop shuts down gracefully within SIDECAR_SHUTDOWN_TIMEOUT: stop
// accepting, answer in-flight requests, finish or release in-flight work.
func (s *server) stop() error {
	start := time.Now()
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	s.app.Stop(max(time.Until(start.Add(s.cfg.ShutdownTimeout))-500*time.Millisecond, 100*time.Millisecond))
	s.senders.Close()
	if serr := <-s.errc; serr != nil {
		return serr
	}
	s.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// servePprof serves Go's profiles on addr (its own listener, never the API's).
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SIDECAR_PPROF %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Info("profiling endpoint", "addr", ln.Addr().String())
	return func() { _ = hs.Close() }, nil
}
