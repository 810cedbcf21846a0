package pasupgrade

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// handClock is a Clock that moves only when the test moves it.
type handClock struct{ now time.Time }

func (c *handClock) Now() time.Time          { return c.now }
func (c *handClock) advance(d time.Duration) { c.now = c.now.Add(d) }

func TestWaitMeterCountsOverlapOnce(t *testing.T) {
	clock := &handClock{now: time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)}
	m := &waitMeter{clock: clock}

	clock.advance(time.Second) // own work
	endOuter := m.begin()
	clock.advance(2 * time.Second)
	endInner := m.begin()
	clock.advance(3 * time.Second)
	assert.Equal(t, 5*time.Second, m.waited(), "a wait in progress counts")
	endInner()
	endInner() // a second call changes nothing
	clock.advance(time.Second)
	endOuter()
	clock.advance(4 * time.Second) // own work
	assert.Equal(t, 6*time.Second, m.waited())

	end := m.begin()
	clock.advance(time.Second)
	end()
	assert.Equal(t, 7*time.Second, m.waited())
}
