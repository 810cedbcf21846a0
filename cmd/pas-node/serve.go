package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// healthPath is the URL path of every simulated component's health report.
const healthPath = "/_pas/health"

// health is the body served at healthPath.
type health struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	State     string `json:"state"`
}

// runComponentCommand returns the command for pas-core, pas-ha or
// pas-storage: without arguments it runs the component until SIGTERM or
// SIGINT; "reset-config" writes the default configuration (maintainer
// scripts only).
func runComponentCommand(name string) func(*environment, []string) error {
	return func(env *environment, args []string) error {
		c := components[name]
		switch {
		case len(args) == 1 && args[0] == "reset-config" && name != "ha":
			return resetConfig(env, c)
		case len(args) == 2 && args[0] == "set-listen-port":
			return setListenPort(env, c, args[1])
		case len(args) > 0:
			return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
		}

		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		logger := slog.New(slog.NewTextHandler(env.stderr, nil)).With("component", name)
		return serveComponent(ctx, env, c, logger)
	}
}

// serveComponent checks c's configuration as checkconfig does, then serves
// until ctx ends. Core also proxies every other request to its upstream,
// or responds itself when no upstream is set. The end-to-end tests poll
// that response to measure downtime.
func serveComponent(ctx context.Context, env *environment, c component, logger *slog.Logger) error {
	if problems := checkComponent(env, c); len(problems) > 0 {
		return fmt.Errorf("not starting: %w", errors.Join(problems...))
	}
	s, err := loadConfig(env, c)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc(healthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(health{Component: c.name, Version: s.version, State: "running"})
	})
	if c.name == "core" {
		handler, err := coreHandler(s)
		if err != nil {
			return err
		}
		mux.Handle("/", handler)
	}

	addr := net.JoinHostPort(s.address, strconv.Itoa(s.port))
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s from %s: %w", addr, c.configFile, err)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("started", "address", listener.Addr().String(), "version", s.version)

	errc := make(chan error, 1)
	go func() { errc <- server.Serve(listener) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", addr, err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = server.Shutdown(shutdownCtx)
	logger.Info("stopped", "error", err)
	return nil
}

// coreHandler returns the proxy: a reverse proxy to upstream when one is
// configured, otherwise a fixed response naming the version.
func coreHandler(s settings) (http.Handler, error) {
	upstream := s.values["upstream"]
	if upstream == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-PAS-Version", s.version)
			fmt.Fprintf(w, "proxedo-api-security core %s\n", s.version)
		}), nil
	}
	target, err := url.Parse(upstream)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("upstream %q is not an absolute URL such as http://127.0.0.1:8081", upstream)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		resp.Header.Set("X-PAS-Version", s.version)
		return nil
	}
	return proxy, nil
}

// runMgmtCommand starts the management simulator with the settings of the
// mgmt config.yml, replacing this process so that the service manager
// tracks the simulator itself. It also takes the maintainer scripts'
// helpers reset-config and set-password.
func runMgmtCommand(env *environment, args []string) error {
	c := components["mgmt"]
	if len(args) > 0 {
		switch args[0] {
		case "reset-config":
			if len(args) == 1 {
				return resetConfig(env, c)
			}
		case "set-password":
			return setPasswordCommand(env, args[1:])
		}
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}

	if problems := checkComponent(env, c); len(problems) > 0 {
		return fmt.Errorf("not starting: %w", errors.Join(problems...))
	}
	s, err := loadConfig(env, c)
	if err != nil {
		return err
	}
	argv := mgmtSimArgv(env, s)
	// syscall.Exec only returns on failure.
	err = syscall.Exec(argv[0], argv, os.Environ())
	return fmt.Errorf("starting %s: %w", argv[0], err)
}

// mgmtSimBinary is the simulator's path in the mgmt package.
const mgmtSimBinary = "/opt/balasys/usr/bin/pas-mgmt-sim"

// mgmtSimArgv returns the simulator's command line for settings s.
func mgmtSimArgv(env *environment, s settings) []string {
	argv := []string{
		env.path(mgmtSimBinary),
		"--listen", net.JoinHostPort(s.address, strconv.Itoa(s.port)),
		"--htpasswd", env.path(s.values["users_file"]),
		"--state-dir", env.path(s.values["state_dir"]),
		"--version", s.version,
	}
	if s.values["tls_cert"] != "" || s.values["tls_key"] != "" {
		argv = append(argv, "--tls-cert", env.path(s.values["tls_cert"]),
			"--tls-key", env.path(s.values["tls_key"]))
	}
	if s.values["status_file"] != "" {
		argv = append(argv, "--status-file", env.path(s.values["status_file"]))
	}
	if s.values["enable_control"] == "true" {
		argv = append(argv, "--enable-control")
	}
	return argv
}
