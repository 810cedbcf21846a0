package mgmtapi

import (
	"context"
	"time"
)

// SetSleepForTest replaces the client's sleep between retries and polls,
// so tests can record the waits instead of taking them.
func SetSleepForTest(c *Client, sleep func(context.Context, time.Duration) error) {
	c.sleep = sleep
}
