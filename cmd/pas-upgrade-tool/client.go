package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// client talks to the management REST API. It logs in once and sends the
// token with every later request. The password and the token never appear
// in its errors.
type client struct {
	base  *url.URL
	http  *http.Client
	token string
}

// newClient returns a client for baseURL that trusts only the CAs in the
// PEM file caFile when one is given.
func newClient(baseURL, caFile string) (*client, error) {
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, withCode(exitUsage, "--frontend-baseurl %q is not an http:// or https:// URL", baseURL)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	transport.ResponseHeaderTimeout = time.Minute
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the --cacert bundle: %w; it must be inside the working directory", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("no PEM certificates in %s; --cacert needs the full CA chain in PEM", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &client{base: base, http: &http.Client{Transport: transport}}, nil
}

// apiError is the management API's error body.
type apiError struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func (e *apiError) Error() string {
	text := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		text += " " + e.Code
	}
	if e.Message != "" {
		text += ": " + e.Message
	}
	if e.RequestID != "" {
		text += " (request " + e.RequestID + ")"
	}
	return text
}

func (c *client) url(path string) string {
	u := *c.base
	p, query, _ := strings.Cut(path, "?")
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	u.RawQuery = query
	return u.String()
}

// do sends a request and returns the response when its status is want.
// Any other status is returned as *apiError; the caller closes the body.
func (c *client) do(req *http.Request, want int) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	defer resp.Body.Close()
	apiErr := &apiError{Status: resp.StatusCode}
	var body struct {
		Error *apiError `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &body) == nil && body.Error != nil {
		apiErr.Code, apiErr.Message, apiErr.RequestID = body.Error.Code, body.Error.Message, body.Error.RequestID
	}
	return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), apiErr)
}

func (c *client) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decoding the response: %w", path, err)
	}
	return nil
}

// login logs in as user and keeps the token.
func (c *client) login(ctx context.Context, user, password string) error {
	body, err := json.Marshal(map[string]string{"username": user, "password": password})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/api/login"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req, http.StatusOK)
	var apiErr *apiError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		return fmt.Errorf("logging in as %s: wrong user name or password", user)
	}
	if err != nil {
		return fmt.Errorf("logging in as %s: %w", user, err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		return fmt.Errorf("logging in as %s: the response contains no token", user)
	}
	c.token = out.Token
	return nil
}

// exportRunning streams the running configuration into w and returns the
// byte count. A Content-Length that does not match the body is an error.
func (c *client) exportRunning(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/api/config/export?kind=running"), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return 0, fmt.Errorf("exporting the running configuration: %w", err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("exporting the running configuration: reading the body: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("exporting the running configuration: received %d bytes but Content-Length is %d",
			n, resp.ContentLength)
	}
	return n, nil
}

// importConfig uploads the file as the multipart field "file", streaming it.
func (c *client) importConfig(ctx context.Context, file string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()

	pr, pw := io.Pipe()
	form := multipart.NewWriter(pw)
	go func() {
		part, err := form.CreateFormFile("file", convertedFile)
		if err == nil {
			_, err = io.Copy(part, f)
		}
		if err == nil {
			err = form.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/api/config/import"), pr)
	if err != nil {
		pr.Close()
		return 0, err
	}
	req.Header.Set("Content-Type", form.FormDataContentType())
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		pr.CloseWithError(err)
		return 0, fmt.Errorf("uploading %s: %w", convertedFile, err)
	}
	defer resp.Body.Close()
	var out struct {
		PendingChanges int `json:"pending_changes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("uploading %s: decoding the response: %w", convertedFile, err)
	}
	return out.PendingChanges, nil
}

// applyJob is the state of a config apply.
type applyJob struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Nodes []struct {
		Name          string `json:"name"`
		ReloadSuccess string `json:"reload_success"`
		Message       string `json:"message"`
	} `json:"nodes"`
}

// startApply starts a config apply and returns its id.
func (c *client) startApply(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/api/config/apply"), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.do(req, http.StatusAccepted)
	if err != nil {
		return "", fmt.Errorf("starting the config apply: %w", err)
	}
	defer resp.Body.Close()
	var job applyJob
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil || job.ID == "" {
		return "", errors.New("starting the config apply: the response contains no job id")
	}
	return job.ID, nil
}

// applyStatus returns the state of the config apply id.
func (c *client) applyStatus(ctx context.Context, id string) (applyJob, error) {
	var job applyJob
	err := c.getJSON(ctx, "/api/config/apply/"+url.PathEscape(id), &job)
	return job, err
}
