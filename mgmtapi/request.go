package mgmtapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RetryPolicy bounds the retries of requests that are safe to repeat: GETs
// and the login. Other POSTs are never retried, because the server may have
// acted on them.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt. Zero
	// disables retries.
	MaxRetries int
	// BaseDelay is the wait before the first retry. It doubles for each
	// further retry, and a random jitter takes up to half of it off.
	BaseDelay time.Duration
	// MaxDelay caps one wait, including one that a Retry-After header
	// requests.
	MaxDelay time.Duration
}

// DefaultRetryPolicy returns 3 retries starting at 250ms, at most 10s each.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 3, BaseDelay: 250 * time.Millisecond, MaxDelay: 10 * time.Second}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.BaseDelay <= 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	return p
}

// backoff returns the wait before retry number attempt (0 for the first).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.BaseDelay << min(attempt, 20)
	if d <= 0 || d > p.MaxDelay {
		d = p.MaxDelay
	}
	return d/2 + rand.N(d/2+1)
}

// request describes one API call.
type request struct {
	method string
	path   string
	query  url.Values
	header map[string]string

	// jsonBody is sent as application/json; it is re-sent on a retry.
	jsonBody []byte
	// stream is sent once and never retried. streamLength is its length,
	// or -1 when unknown, which sends it chunked.
	stream       io.Reader
	streamLength int64

	// auth sends the token. safe allows retries and one re-login on 401.
	// relogin allows only the re-login: a 401 reply proves the server did
	// not act, so a request without a body can be sent again after it.
	auth    bool
	safe    bool
	relogin bool

	// secretReply keeps the reply's body out of error text, because it
	// may hold a token.
	secretReply bool
}

// maxJSONReply bounds the JSON replies read into memory.
const maxJSONReply = 8 << 20

// do sends req and returns the reply with its body unread, for a status
// below 400. The caller closes the body. A safe request is retried on
// connection failures and on 502, 503 and 504, and repeated once after a
// re-login when the token is rejected.
func (c *Client) do(ctx context.Context, req request) (*http.Response, error) {
	relogged := false
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, req)
		if err == nil && resp.StatusCode == http.StatusUnauthorized && req.auth && (req.safe || req.relogin) &&
			!relogged {
			discard(resp)
			relogged = true
			c.log.Info("token rejected; logging in again", "method", req.method, "path", req.path)
			if err := c.relogin(ctx); err != nil {
				return nil, err
			}
			attempt--
			continue
		}

		wait, reason := c.retryWait(ctx, req, resp, err, attempt)
		if wait < 0 {
			if err != nil {
				return nil, c.networkError(req, err)
			}
			if resp.StatusCode >= 400 {
				return nil, c.apiError(req, resp)
			}
			return resp, nil
		}
		if resp != nil {
			discard(resp)
		}
		c.log.Warn("retrying request", "method", req.method, "url", c.urlOf(req.path),
			"retry", attempt+1, "max_retries", c.retry.MaxRetries, "wait", wait, "reason", reason)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.method, c.urlOf(req.path), err)
		}
	}
}

// send makes one attempt.
func (c *Client) send(ctx context.Context, req request) (*http.Response, error) {
	token := ""
	if req.auth {
		token = c.currentToken()
		if token == "" {
			return nil, ErrNotLoggedIn
		}
	}
	if req.stream != nil {
		return c.sendStream(ctx, req, token)
	}

	r := c.rc.R().SetContext(ctx).SetDoNotParseResponse(true)
	if token != "" {
		r.SetAuthToken(token)
	}
	for k, v := range req.header {
		r.SetHeader(k, v)
	}
	if req.query != nil {
		r.SetQueryParamsFromValues(req.query)
	}
	if req.jsonBody != nil {
		r.SetHeader("Content-Type", "application/json").SetBody(req.jsonBody)
	}

	resp, err := r.Execute(req.method, req.path)
	if err != nil {
		return nil, err
	}
	c.log.Debug("request", "method", req.method, "url", c.urlOf(req.path), "status", resp.StatusCode())
	return resp.RawResponse, nil
}

// sendStream sends a request whose body is a stream through the client's
// http.Client directly. resty v2.17.2 reads an io.Reader body into memory
// to set http.Request.GetBody (getBodyCopy in its middleware.go), which
// would hold a whole configuration file.
func (c *Client) sendStream(ctx context.Context, req request, token string) (*http.Response, error) {
	u, err := url.Parse(c.urlOf(req.path))
	if err != nil {
		return nil, err
	}
	u.RawQuery = req.query.Encode()
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), req.stream)
	if err != nil {
		return nil, err
	}
	if req.streamLength >= 0 {
		hr.ContentLength = req.streamLength
	}
	for k, v := range c.rc.Header {
		hr.Header[k] = v
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.rc.GetClient().Do(hr)
	if err != nil {
		return nil, err
	}
	c.log.Debug("request", "method", req.method, "url", c.urlOf(req.path), "status", resp.StatusCode)
	return resp, nil
}

// retryWait returns how long to wait before retrying, or -1 when the
// outcome is final.
func (c *Client) retryWait(ctx context.Context, req request, resp *http.Response, err error, attempt int) (time.Duration, string) {
	if !req.safe || attempt >= c.retry.MaxRetries || ctx.Err() != nil {
		return -1, ""
	}
	if err != nil {
		if !isTransient(err) {
			return -1, ""
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return c.retry.backoff(attempt), err.Error()
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		wait := c.retry.backoff(attempt)
		if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok && after > wait {
			wait = min(after, c.retry.MaxDelay)
		}
		return wait, resp.Status
	}
	return -1, ""
}

// isTransient reports whether a request failed in a way that a new
// connection may fix: refused (the service is restarting), reset, or
// closed before the reply.
func isTransient(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(value string, now time.Time) (time.Duration, bool) {
	if value == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(value)); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(value); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// callJSON sends req and decodes the JSON reply into out, within the
// client's timeout. A safe request whose reply is cut off, as when the
// service restarts while it sends, is sent again like one that failed to
// connect.
func (c *Client) callJSON(ctx context.Context, req request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.tmo)
	defer cancel()
	for attempt := 0; ; attempt++ {
		resp, err := c.do(ctx, req)
		if err != nil {
			return c.timeoutError(ctx, err)
		}
		err = c.decodeJSON(req, resp, out)
		resp.Body.Close()
		if err == nil {
			return nil
		}
		if !req.safe || attempt >= c.retry.MaxRetries || ctx.Err() != nil || !errors.Is(err, errReplyCut) {
			return c.timeoutError(ctx, err)
		}
		wait := c.retry.backoff(attempt)
		c.log.Warn("retrying request", "method", req.method, "url", c.urlOf(req.path),
			"retry", attempt+1, "max_retries", c.retry.MaxRetries, "wait", wait, "reason", "the reply was cut off")
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s %s: %w", req.method, c.urlOf(req.path), err)
		}
	}
}

// errReplyCut marks a reply whose body ended early or whose connection
// broke while it was read.
var errReplyCut = errors.New("the reply was cut off")

// timeoutError rewrites a deadline error of the client's own timeout.
func (c *Client) timeoutError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		// err names the request already.
		return fmt.Errorf("no complete reply within %s: %w", c.tmo, err)
	}
	return err
}

// decodeJSON reads a JSON reply into out.
//
// An HTML page is rejected at once. Any other Content-Type is accepted when
// the body decodes, because the API is undocumented and some servers label
// JSON as text/plain.
func (c *Client) decodeJSON(req request, resp *http.Response, out any) error {
	if isHTML(resp.Header.Get("Content-Type")) {
		return fmt.Errorf("%w: %s %s returned %s with status %d where JSON was expected: %s",
			ErrInvalidReply, req.method, c.urlOf(req.path), contentType(resp), resp.StatusCode,
			c.snippet(resp.Body))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONReply+1))
	if err != nil {
		if isTransient(err) {
			err = fmt.Errorf("%w: %w", errReplyCut, err)
		}
		return fmt.Errorf("%w: reading the reply of %s %s: %w", ErrInvalidReply, req.method, c.urlOf(req.path), err)
	}
	if len(data) > maxJSONReply {
		return fmt.Errorf("%w: the reply of %s %s is larger than %d bytes", ErrInvalidReply,
			req.method, c.urlOf(req.path), maxJSONReply)
	}
	if err := json.Unmarshal(data, out); err != nil {
		body := c.snippet(bytes.NewReader(data))
		if req.secretReply {
			body = fmt.Sprintf("(%d bytes, not shown because they may hold a token)", len(data))
		}
		return fmt.Errorf("%w: decoding the reply of %s %s (%s): %v: %s", ErrInvalidReply, req.method,
			c.urlOf(req.path), contentType(resp), err, body)
	}
	return nil
}

// apiError reads an error reply into an *APIError and closes its body.
func (c *Client) apiError(req request, resp *http.Response) error {
	defer resp.Body.Close()
	e := &APIError{Method: req.method, URL: c.urlOf(req.path), Status: resp.StatusCode}
	var body ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Code == "" && body.Error.Message == "" {
		e.Message = "the reply is " + contentType(resp) + ", not the API's JSON error: " +
			c.snippet(bytes.NewReader(data))
		return e
	}
	e.Code = c.redact(body.Error.Code)
	e.Message = c.redact(body.Error.Message)
	e.RequestID = c.redact(body.Error.RequestID)
	return e
}

// networkError names the URL of a request that got no reply.
func (c *Client) networkError(req request, err error) error {
	if errors.Is(err, ErrNotLoggedIn) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s %s: %w", req.method, c.urlOf(req.path), err)
}

// snippet returns the start of a body as one line of printable text, with
// secrets redacted, for error messages.
func (c *Client) snippet(r io.Reader) string {
	data, _ := io.ReadAll(io.LimitReader(r, 200))
	text := strings.Join(strings.Fields(strings.ToValidUTF8(string(data), "?")), " ")
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, text)
	if text == "" {
		return "(empty body)"
	}
	return strconv.Quote(c.redact(text))
}

// redact replaces the password and the token in text taken from a reply,
// because a server may echo the request in an error page.
func (c *Client) redact(text string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, secret := range []string{c.password, c.token, c.pendingPassword} {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "***")
		}
	}
	return text
}

func (c *Client) urlOf(path string) string {
	return strings.TrimSuffix(c.base.String(), "/") + path
}

func isHTML(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "text/html" || mt == "application/xhtml+xml")
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func contentType(resp *http.Response) string {
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "no Content-Type"
}

// discard reads a little of the body, so the connection can be reused,
// and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
