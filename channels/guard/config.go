package guard

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mautic-mm/sidecar/channels"
)

// DefaultBreakerTimeout is how long an open breaker stays open before it
// lets one probe through, when BreakerTimeout is 0. It is below the
// dispatcher's one-minute Retry-After cap, so a rejected send is retried on
// the same channel rather than given up at once.
const DefaultBreakerTimeout = 30 * time.Second

// Config sets the rate limit and circuit breaker applied to each sender.
// Suggested environment variables are given in the comments (cmd/sidecar
// owns the names).
type Config struct {
	// Rate is the sustained sends per second per channel
	// (SIDECAR_SEND_RATE); 0 means unlimited.
	Rate float64
	// Burst is how many sends may go at once above Rate
	// (SIDECAR_SEND_BURST); 0 means 1 when Rate is set.
	Burst int
	// BreakerFailures is the number of consecutive transient failures that
	// open a channel's breaker (SIDECAR_BREAKER_FAILURES); 0 disables the
	// breaker.
	BreakerFailures uint32
	// BreakerTimeout is how long an open breaker rejects sends before one
	// probe is let through (SIDECAR_BREAKER_TIMEOUT); 0 means
	// DefaultBreakerTimeout.
	BreakerTimeout time.Duration
	// Channels overrides the values above for some channels (e.g. Twilio's
	// one message per second per number on sms). An override is taken
	// whole; its own Channels must be empty.
	Channels map[channels.Name]Config
}

func (c Config) withDefaults() Config {
	if c.Rate > 0 && c.Burst == 0 {
		c.Burst = 1
	}
	if c.BreakerTimeout == 0 {
		c.BreakerTimeout = DefaultBreakerTimeout
	}
	return c
}

// forChannel returns the configuration that applies to name, with defaults.
func (c Config) forChannel(name channels.Name) Config {
	if o, ok := c.Channels[name]; ok {
		return o.withDefaults()
	}
	c.Channels = nil
	return c.withDefaults()
}

// Validate reports what is malformed, all problems at once.
func (c Config) Validate() error {
	errs := c.validate("")
	for name, o := range c.Channels {
		if name == "" {
			errs = append(errs, errors.New("override for an empty channel name"))
		}
		if len(o.Channels) > 0 {
			errs = append(errs, fmt.Errorf("%s: an override cannot have overrides", name))
		}
		errs = append(errs, o.validate(string(name)+": ")...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("guard config: %w", err)
	}
	return nil
}

func (c Config) validate(prefix string) []error {
	var errs []error
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("%srate must be a finite number ≥ 0", prefix))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("%sburst must be ≥ 0", prefix))
	}
	if c.BreakerTimeout < 0 {
		errs = append(errs, fmt.Errorf("%sbreaker timeout must be ≥ 0", prefix))
	}
	return errs
}
