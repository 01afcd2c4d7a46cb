package impair

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseSpec reads a network description for the command line (`hearth
// bench --via SPEC`): comma-separated KEY=VALUE, each applied to both
// directions and, unless said otherwise, to UDP and TCP alike:
//
//	loss=5%          Loss (also 0.05)
//	dup=1%           Duplicate (UDP)
//	reorder=1%       Reorder (UDP)
//	delay=100ms      one-way Delay
//	rtt=200ms        Delay = rtt/2
//	jitter=10ms      Jitter
//	blackout=2s/6s   Blackout{For: 2s, Every: 6s}
//	rebind=500ms     Rebind (UDP)
//	rate=1000000     RateBytesPerSec
//	seed=18          Seed
//	udp=blocked      every UDP datagram dropped (the TCP settings still apply)
//
// An empty spec is a clean relay. An unknown key or a bad value is an error.
func ParseSpec(spec string) (udp, tcp Config, err error) {
	blocked := false
	for _, kv := range strings.Split(spec, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		key, val, ok := strings.Cut(kv, "=")
		if !ok {
			return Config{}, Config{}, fmt.Errorf("impair: %q in spec: want KEY=VALUE", kv)
		}
		if err := apply(&udp, &blocked, key, val); err != nil {
			return Config{}, Config{}, fmt.Errorf("impair: %s: %w", kv, err)
		}
	}
	tcp = udp
	if blocked {
		udp.Loss = 1
	}
	if err := udp.validate(); err != nil {
		return Config{}, Config{}, err
	}
	return udp, tcp, nil
}

func apply(c *Config, blocked *bool, key, val string) error {
	var err error
	switch key {
	case "loss":
		c.Loss, err = probability(val)
	case "dup":
		c.Duplicate, err = probability(val)
	case "reorder":
		c.Reorder, err = probability(val)
	case "delay":
		c.Delay, err = duration(val)
	case "rtt":
		var d time.Duration
		d, err = duration(val)
		c.Delay = d / 2
	case "jitter":
		c.Jitter, err = duration(val)
	case "rebind":
		c.Rebind, err = duration(val)
	case "blackout":
		f, e, ok := strings.Cut(val, "/")
		if !ok {
			return fmt.Errorf("want FOR/EVERY, e.g. 2s/6s")
		}
		if c.Blackout.For, err = duration(f); err == nil {
			c.Blackout.Every, err = duration(e)
		}
	case "rate":
		c.RateBytesPerSec, err = strconv.ParseInt(val, 10, 64)
	case "seed":
		c.Seed, err = strconv.ParseInt(val, 10, 64)
	case "udp":
		if val != "blocked" {
			return fmt.Errorf("the only udp value is \"blocked\"")
		}
		*blocked = true
	default:
		return fmt.Errorf("unknown key %q (loss, dup, reorder, delay, rtt, jitter, blackout, rebind, rate, seed, udp)", key)
	}
	return err
}

// probability reads "5%" or "0.05".
func probability(s string) (float64, error) {
	scale := 1.0
	if p, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = p, 100
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	v /= scale
	if v < 0 || v > 1 {
		return 0, fmt.Errorf("probability %v outside [0, 1]", v)
	}
	return v, nil
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative duration %v", d)
	}
	return d, err
}
