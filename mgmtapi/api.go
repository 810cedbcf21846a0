package mgmtapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"time"
)

// Login logs in as user and keeps the token for the later calls. The
// password stays in memory for one automatic re-login when the server
// rejects the token of a safe request. A wrong user name or password returns
// an error that matches ErrUnauthorized with the text "wrong user name or
// password".
func (c *Client) Login(ctx context.Context, user, password string) error {
	if user == "" {
		return errors.New("logging in: missing user name")
	}
	if password == "" {
		return fmt.Errorf("logging in to %s as %q: empty password", c.base, user)
	}
	token, err := c.login(ctx, user, password)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.user, c.password, c.token = user, password, token
	c.mu.Unlock()
	c.log.Info("logged in", "url", c.base.String(), "user", user)
	return nil
}

func (c *Client) login(ctx context.Context, user, password string) (string, error) {
	c.mu.Lock()
	c.pendingPassword = password
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.pendingPassword = ""
		c.mu.Unlock()
	}()

	body, err := json.Marshal(LoginRequest{Username: user, Password: password})
	if err != nil {
		return "", err
	}
	var reply LoginReply
	req := request{method: http.MethodPost, path: c.paths.Login, jsonBody: body, safe: true, secretReply: true}
	err = c.callJSON(ctx, req, &reply)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		return "", &wrappedError{
			msg: fmt.Sprintf("logging in to %s as %q: wrong user name or password%s",
				c.base, user, requestIDSuffix(apiErr.RequestID)),
			err: apiErr,
		}
	}
	if err != nil {
		return "", fmt.Errorf("logging in to %s as %q: %w", c.base, user, err)
	}
	if reply.Token == "" {
		return "", fmt.Errorf("logging in to %s as %q: %w: the reply has no token", c.base, user, ErrInvalidReply)
	}
	return reply.Token, nil
}

// relogin logs in again with the stored credentials.
func (c *Client) relogin(ctx context.Context) error {
	c.mu.Lock()
	user, password := c.user, c.password
	c.mu.Unlock()
	token, err := c.login(ctx, user, password)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
	return nil
}

func (c *Client) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// wrappedError replaces the text of an error and keeps it for errors.Is
// and errors.As.
type wrappedError struct {
	msg string
	err error
}

func (e *wrappedError) Error() string { return e.msg }
func (e *wrappedError) Unwrap() error { return e.err }

func requestIDSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " (request id " + id + ")"
}

// Status returns every node with its components, versions, states and
// reload success.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.callJSON(ctx, c.get(c.paths.Status), &s)
	return s, err
}

// PendingChanges returns the configuration changes not applied yet.
func (c *Client) PendingChanges(ctx context.Context) ([]Change, error) {
	var ch Changes
	err := c.callJSON(ctx, c.get(c.paths.Changes), &ch)
	return ch.Pending, err
}

// Version returns the management component's version, such as "4.8.0".
func (c *Client) Version(ctx context.Context) (string, error) {
	var v VersionReply
	if err := c.callJSON(ctx, c.get(c.paths.Version), &v); err != nil {
		return "", err
	}
	if v.Version == "" {
		return "", fmt.Errorf("%w: %s returned no version", ErrInvalidReply, c.urlOf(c.paths.Version))
	}
	return v.Version, nil
}

func (c *Client) get(path string) request {
	return request{method: http.MethodGet, path: path, auth: true, safe: true}
}

// ApplyConfig starts a config apply and returns its id. It is repeated only
// after a 401 and a re-login, because the server did not act on it then.
// When no reply arrives within the client's timeout, the error matches
// ErrApplyUnconfirmed, because the server may have started the apply, and
// the caller should check Status and PendingChanges before trying again.
func (c *Client) ApplyConfig(ctx context.Context) (string, error) {
	req := request{method: http.MethodPost, path: c.paths.Apply, auth: true, relogin: true}
	var started ApplyStarted
	err := c.callJSON(ctx, req, &started)
	if err != nil {
		var apiErr *APIError
		if ctx.Err() == nil && !errors.As(err, &apiErr) && !errors.Is(err, ErrNotLoggedIn) &&
			!errors.Is(err, ErrInvalidReply) && !errors.Is(err, syscall.ECONNREFUSED) &&
			!errors.Is(err, errRedirectElsewhere) {
			return "", &wrappedError{
				msg: fmt.Sprintf("config apply request got no reply: %v; the server may have started "+
					"an apply, so check the status and pending changes before applying again", err),
				err: errors.Join(ErrApplyUnconfirmed, err),
			}
		}
		return "", fmt.Errorf("starting a config apply: %w", err)
	}
	if started.ID == "" {
		return "", fmt.Errorf("starting a config apply: %w: the reply has no id", ErrInvalidReply)
	}
	c.log.Info("config apply started", "apply", started.ID)
	return started.ID, nil
}

// ApplyState returns the current state of the apply with id.
func (c *Client) ApplyState(ctx context.Context, id string) (ApplyJob, error) {
	var job ApplyJob
	err := c.callJSON(ctx, c.get(c.paths.ApplyJobPath(id)), &job)
	return job, err
}

// WaitApplied polls the apply with id until it finishes or timeout passes.
// It returns the per-node results. A failed apply, or one that succeeded
// with a node whose reload success is FAILED, returns an *ApplyError
// matching ErrApplyFailed, and one still running at the timeout an
// *ApplyError matching ErrApplyTimeout; both name the nodes.
func (c *Client) WaitApplied(ctx context.Context, id string, timeout time.Duration) (ApplyJob, error) {
	deadline := time.Now().Add(timeout)
	for {
		job, err := c.ApplyState(ctx, id)
		if err != nil {
			return job, fmt.Errorf("reading the state of config apply %s: %w", id, err)
		}
		switch job.State {
		case ApplySucceeded:
			// A node whose reload failed needs another apply, even when
			// the job's state is succeeded.
			if slices.ContainsFunc(job.Nodes, func(n NodeResult) bool { return n.ReloadSuccess == ReloadFailed }) {
				return job, &ApplyError{Job: job}
			}
			return job, nil
		case ApplyFailed:
			return job, &ApplyError{Job: job}
		case ApplyRunning:
		default:
			return job, fmt.Errorf("%w: config apply %s has unknown state %q", ErrInvalidReply, id, job.State)
		}

		remaining := time.Until(deadline)
		if remaining <= 0 {
			return job, &ApplyError{Job: job, TimedOut: true, Timeout: timeout.String()}
		}
		if err := c.sleep(ctx, min(c.poll, remaining)); err != nil {
			return job, fmt.Errorf("waiting for config apply %s: %w", id, err)
		}
	}
}

// Apply starts a config apply and waits at most timeout for it, as
// ApplyConfig and WaitApplied do.
func (c *Client) Apply(ctx context.Context, timeout time.Duration) (ApplyJob, error) {
	id, err := c.ApplyConfig(ctx)
	if err != nil {
		return ApplyJob{}, err
	}
	return c.WaitApplied(ctx, id, timeout)
}
