// Command pas-mgmt-sim simulates the management component of Proxedo API
// Security for the lab and for manual tests: it serves the management REST
// API with the same handler as the in-process fake in mgmtapi/mgmtapitest.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

const usage = `Usage: pas-mgmt-sim --listen ADDR --htpasswd FILE --state-dir DIR [options]

pas-mgmt-sim serves the PAS management REST API (login, configuration
export and import, config apply, status, pending changes, version) for the
lab and for tests. It keeps its state in --state-dir, so it can be stopped
and started again as the mgmt service is during an upgrade.

Options:
%s
Logins are checked against --htpasswd, read again at each login; it accepts
"{SHA}" (htpasswd -s) and bcrypt (htpasswd -B) hashes.

Configuration files are YAML whose first line is "pas_config_version: X.Y.Z".
An import whose version differs from --version is rejected with 400 and the
error code "incompatible_config".

With --status-file, GET /api/status serves the nodes and components in that
JSON file (the shape of the status reply), read at each request, with each
component's reload_success taken from the simulator's own apply results.

Control endpoints (only with --enable-control; not part of the product API,
no login needed):
  POST   /_sim/faults          add a fault, JSON {"kind": ..., ...}:
           {"kind":"status","path":P,"count":N,"status":S,"retry_after":SEC}
               answer the next N requests to P with S and a JSON error,
               without reading the request body
           {"kind":"html","path":P,"count":N,"status":S}
               the same with an HTML error page (S may also be 200)
           {"kind":"delay","path":P,"count":N,"delay":NANOSECONDS}
               handle the request, then wait before replying
           {"kind":"drop","path":P,"count":N,"after_bytes":B}
               write B bytes of the reply body, then close the connection
               (B 0: close before the status line)
           {"kind":"apply_fail","nodes":[...]}
               the next config apply fails with these nodes FAILED
           {"kind":"apply_hang"}
               the next config apply stays "running" until the faults
               are cleared
           {"kind":"node_reload_failed","nodes":[...]}
               these nodes report FAILED until the next successful apply
         P is an exact path or a prefix ending in "*"; empty matches all;
         count 0 means 1 and a negative count means until cleared.
  DELETE /_sim/faults          remove every fault; a hung config apply
                               then finishes as it would have without it
  POST   /_sim/expire-tokens   invalidate every login token
  PUT    /_sim/running-config  replace the running configuration with the
                               body, or with a generated one of
                               ?synthetic_size=BYTES
  GET    /_sim/state           version, running configuration version, size
                               and SHA-256, pending changes, node reload
                               states, faults and the request log (which
                               holds no password, token or header)
`

// config holds the command line.
type config struct {
	listen, htpasswd, stateDir, version string
	tlsCert, tlsKey, statusFile         string
	enableControl, debug                bool
	applyDuration                       time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("pas-mgmt-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "`ADDR`ess (host:port) to listen on")
	fs.StringVar(&c.htpasswd, "htpasswd", "", "htpasswd `FILE` that logins are checked against (required)")
	fs.StringVar(&c.stateDir, "state-dir", "", "`DIR`ectory that keeps the state across restarts (required, created if missing)")
	fs.StringVar(&c.version, "version", "4.8.0", "PAS `VERSION` to simulate")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate `FILE` (with --tls-key, serve HTTPS)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key `FILE` of --tls-cert")
	fs.StringVar(&c.statusFile, "status-file", "", "JSON `FILE` with the nodes and components that GET /api/status serves")
	fs.BoolVar(&c.enableControl, "enable-control", false, "serve the /_sim/ control endpoints")
	fs.DurationVar(&c.applyDuration, "apply-duration", time.Second, "how long a config apply stays running")
	fs.BoolVar(&c.debug, "debug", false, "log every request")

	fs.Usage = func() {
		var defaults flagDefaults
		fs.SetOutput(&defaults)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, usage, defaults)
	}

	if err := fs.Parse(args); err != nil {
		return c, err
	}

	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q; pas-mgmt-sim takes only flags", fs.Arg(0))
	case c.htpasswd == "":
		return c, errors.New("missing --htpasswd FILE")
	case c.stateDir == "":
		return c, errors.New("missing --state-dir DIR")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return c, errors.New("--tls-cert and --tls-key go together; give both or neither")
	}
	return c, nil
}

// flagDefaults collects the output of PrintDefaults.
type flagDefaults []byte

func (d *flagDefaults) Write(p []byte) (int, error) { *d = append(*d, p...); return len(p), nil }
func (d flagDefaults) String() string               { return string(d) }

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pas-mgmt-sim: %v\nRun 'pas-mgmt-sim --help' for usage.\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, c, os.Stderr, nil); err != nil {
		fmt.Fprintf(os.Stderr, "pas-mgmt-sim: %v\n", err)
		os.Exit(1)
	}
}

// serve runs the simulator until ctx is cancelled. It sends the listening
// address to ready when that is not nil.
func serve(ctx context.Context, c config, logOut io.Writer, ready chan<- string) error {
	level := slog.LevelInfo
	if c.debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		return fmt.Errorf("creating the state directory: %w", err)
	}
	if _, err := os.Stat(c.htpasswd); err != nil {
		return fmt.Errorf("invalid --htpasswd: %w", err)
	}
	h, err := mgmtapitest.NewHandler(mgmtapitest.Options{
		Version:       c.version,
		StateDir:      c.stateDir,
		HtpasswdFile:  c.htpasswd,
		StatusFile:    c.statusFile,
		EnableControl: c.enableControl,
		ApplyDuration: c.applyDuration,
		Logger:        logger,
	})
	if err != nil {
		return err
	}

	// Load the key pair before listening, so a bad file fails the start.
	var tlsConfig *tls.Config
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return fmt.Errorf("loading --tls-cert and --tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listening on --listen %s: %w", c.listen, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if c.tlsCert != "" {
		scheme = "https"
	}
	logger.Info("pas-mgmt-sim started", "url", scheme+"://"+ln.Addr().String(),
		"version", c.version, "state_dir", c.stateDir, "control", c.enableControl)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	logger.Info("pas-mgmt-sim stopped")
	return err
}
