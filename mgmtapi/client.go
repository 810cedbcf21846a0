package mgmtapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"
)

// DefaultBaseURL is the base URL the vendor's upgrade tool uses when
// --frontend-baseurl is not given.
const DefaultBaseURL = "http://localhost"

// Defaults of the client's options.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultPollInterval = time.Second
)

// Client calls the management REST API. Create it with New, call Login,
// then the other methods. A Client is safe for concurrent use.
//
// The password given to Login stays in memory for one automatic re-login.
// It and the token never appear in logs or errors.
type Client struct {
	base   *url.URL
	rc     *resty.Client
	paths  Endpoints
	log    *slog.Logger
	retry  RetryPolicy
	poll   time.Duration
	tmo    time.Duration
	sleep  func(context.Context, time.Duration) error
	caFile string

	progress func(done, total int64)

	mu       sync.Mutex
	user     string
	password string
	token    string
	// pendingPassword is the password of a login in progress, redacted
	// from error text like the stored one.
	pendingPassword string
}

// options collects what the Option functions set.
type options struct {
	caFile       string
	caPEM        []byte
	timeout      time.Duration
	retry        RetryPolicy
	logger       *slog.Logger
	httpClient   *http.Client
	endpoints    Endpoints
	pollInterval time.Duration
	progress     func(done, total int64)
}

// Option configures a Client.
type Option func(*options)

// WithCAFile trusts the CA certificates in the PEM bundle at path (the full
// chain, as the upgrade tool's --cacert takes) instead of the system's.
func WithCAFile(path string) Option { return func(o *options) { o.caFile = path } }

// WithCAPEM trusts the CA certificates in pem instead of the system's.
func WithCAPEM(pem []byte) Option { return func(o *options) { o.caPEM = pem } }

// WithTimeout bounds each API call that is not a transfer of a
// configuration file: from sending the request to reading the whole reply.
// For export and import it bounds the wait for the reply's status line and
// each time the file's bytes stop moving: an export that receives nothing,
// or an import whose server takes nothing, for that long fails.
// Default DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRetry sets the retry policy of safe requests.
func WithRetry(p RetryPolicy) Option { return func(o *options) { o.retry = p } }

// WithLogger sets the logger for requests, retries and re-logins. It never
// receives a password or a token. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHTTPClient sends requests through hc. With a CA option, hc's
// Transport must be nil or an *http.Transport, which the client clones to
// set the CA. A transport that skips certificate verification is rejected.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }

// WithEndpoints overrides API paths. Empty fields keep their defaults.
func WithEndpoints(e Endpoints) Option { return func(o *options) { o.endpoints = e } }

// WithPollInterval sets how often WaitApplied reads an apply's state.
// Default DefaultPollInterval.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.pollInterval = d } }

// WithProgress sets a function that export and import call as the bytes
// of a configuration file move, with the total from Content-Length or the
// file size, or -1 when unknown. It is called once per buffer, from the
// goroutine that moves the bytes, which for an import may belong to the
// HTTP transport.
func WithProgress(fn func(done, total int64)) Option {
	return func(o *options) { o.progress = fn }
}

// New returns a client of the management API at baseURL, such as
// "https://pas-mgmt.example:8443" (DefaultBaseURL when empty). It fails at
// once on an unusable base URL or CA bundle. TLS certificates are always
// verified: there is no option to skip that. Redirects are followed only
// within the base URL's scheme, host and port.
func New(baseURL string, opts ...Option) (*Client, error) {
	o := options{
		timeout:      DefaultTimeout,
		retry:        DefaultRetryPolicy(),
		pollInterval: DefaultPollInterval,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("invalid timeout %s: must be positive", o.timeout)
	}
	if o.pollInterval <= 0 {
		return nil, fmt.Errorf("invalid poll interval %s: must be positive", o.pollInterval)
	}

	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if base.Scheme == "http" && (o.caFile != "" || o.caPEM != nil) {
		// Redirects stay on the same origin, so the bundle would never
		// be used: the caller most likely meant https.
		return nil, fmt.Errorf("a CA bundle was given for %s, which is plain HTTP: use an https:// URL, or leave the CA bundle out", base)
	}
	hc, err := buildHTTPClient(o, base)
	if err != nil {
		return nil, err
	}

	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc := resty.NewWithClient(hc).
		SetBaseURL(strings.TrimSuffix(base.String(), "/")).
		SetLogger(restyLogger{logger}).
		SetRetryCount(0).
		SetHeader("User-Agent", "pasupgrade-mgmtapi")

	return &Client{
		base:   base,
		rc:     rc,
		paths:  o.endpoints.WithDefaults(),
		log:    logger,
		retry:  o.retry.withDefaults(),
		poll:   o.pollInterval,
		tmo:    o.timeout,
		sleep:  sleepContext,
		caFile: o.caFile,

		progress: o.progress,
	}, nil
}

// String describes the client without its credentials.
func (c *Client) String() string { return "mgmtapi.Client(" + c.base.String() + ")" }

// GoString is String, so %#v does not print the password either.
func (c *Client) GoString() string { return c.String() }

// BaseURL returns the base URL the client sends requests to.
func (c *Client) BaseURL() string { return c.base.String() }

func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid management URL %q: %w; use a URL such as %s", raw, err, DefaultBaseURL)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid management URL %q: want http:// or https:// and a host, such as %s",
			raw, DefaultBaseURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("invalid management URL %s: it contains credentials; "+
			"give the user and password separately", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid management URL %q: remove the query and fragment", raw)
	}
	return u, nil
}

// buildHTTPClient returns a copy of the injected or default HTTP client
// that trusts the configured CAs and follows redirects only within base.
func buildHTTPClient(o options, base *url.URL) (*http.Client, error) {
	hc := &http.Client{}
	if o.httpClient != nil {
		copied := *o.httpClient
		hc = &copied
	}
	hc.CheckRedirect = sameOriginRedirects(base, hc.CheckRedirect)

	pool, err := loadCAs(o)
	if err != nil {
		return nil, err
	}

	// Clone the transport to set the CAs and a bound on the wait for the
	// status line, which also covers export and import.
	var transport *http.Transport
	switch t := hc.Transport.(type) {
	case nil:
		transport = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		transport = t.Clone()
	default:
		if pool != nil {
			return nil, fmt.Errorf("cannot use the CA bundle %s: the HTTP client's transport is %T, "+
				"not *http.Transport; set the CA in that transport's TLS config and pass no CA bundle",
				caSource(o), t)
		}
		return hc, nil
	}
	// Checked on the clone, because a nil Transport means
	// http.DefaultTransport, which a program may have changed.
	if transport.TLSClientConfig != nil && transport.TLSClientConfig.InsecureSkipVerify {
		return nil, errors.New("the HTTP transport skips TLS certificate verification, which mgmtapi " +
			"does not allow; give the server's CA with a CA bundle instead")
	}
	if pool != nil {
		if transport.TLSClientConfig == nil {
			transport.TLSClientConfig = &tls.Config{}
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	if transport.ResponseHeaderTimeout == 0 {
		transport.ResponseHeaderTimeout = o.timeout
	}
	hc.Transport = transport
	return hc, nil
}

// errRedirectElsewhere marks a redirect to another server, which the client
// does not follow.
var errRedirectElsewhere = errors.New("redirect to another server")

// maxRedirects is the redirect limit of net/http's default policy.
const maxRedirects = 10

// sameOriginRedirects returns a redirect policy that follows only
// redirects with the scheme, host and port of base, and then applies next
// when it is set. net/http would re-send a login body after a 307 or 308,
// with the password in it, to any server. It would also send the token to
// another port of the same host.
func sameOriginRedirects(base *url.URL, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if origin(req.URL) != origin(base) {
			return fmt.Errorf("%w: the server redirected to %s, which mgmtapi does not follow, so that "+
				"the password and the token go only to %s; if the new location is right, use it as the "+
				"management URL", errRedirectElsewhere, req.URL.Redacted(), origin(base))
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
}

// origin returns the scheme, host and port of u in lower case, with the
// scheme's default port when u has none.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port))
}

// loadCAs returns the pool of the CA options, or nil when none is set.
func loadCAs(o options) (*x509.CertPool, error) {
	data := o.caPEM
	if o.caFile != "" {
		var err error
		data, err = os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA bundle: %w", err)
		}
	} else if data == nil {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%w: no PEM certificates in %s; a DER file converts with "+
			"'openssl x509 -inform der -in FILE -out FILE.pem'", ErrInvalidCA, caSource(o))
	}
	return pool, nil
}

func caSource(o options) string {
	if o.caFile != "" {
		return o.caFile
	}
	return "the CA PEM given"
}

// restyLogger sends resty's own messages to the debug level: its warnings
// (such as a token sent over plain HTTP, the guide's default) would
// otherwise reach every user.
type restyLogger struct{ l *slog.Logger }

func (r restyLogger) Errorf(format string, v ...any) {
	r.l.Debug("resty: " + fmt.Sprintf(format, v...))
}
func (r restyLogger) Warnf(format string, v ...any) { r.l.Debug("resty: " + fmt.Sprintf(format, v...)) }
func (r restyLogger) Debugf(format string, v ...any) {
	r.l.Debug("resty: " + fmt.Sprintf(format, v...))
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
