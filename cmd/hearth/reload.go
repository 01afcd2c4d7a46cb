package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sort"

	"hearth/homeserver"
)

// logLevel is the server's live log level: --log-level when given
// (fixed), else config.json's log_level, else info.
type logLevel struct {
	v     *slog.LevelVar
	fixed bool
}

// apply sets the level from cfg unless --log-level fixed it.
func (l logLevel) apply(cfg serverConfig) {
	if l.fixed || l.v == nil {
		return
	}
	lv := slog.LevelInfo
	if cfg.LogLevel != "" {
		lv.UnmarshalText([]byte(cfg.LogLevel)) // validated when loaded
	}
	l.v.Set(lv)
}

// reloadable is what of cfg a running server takes over on SIGHUP.
func (c serverConfig) reloadable() homeserver.Reloadable {
	r := homeserver.Reloadable{RateLimit: homeserver.RateLimit{PerSecond: c.Limits.SendPerSecond, Burst: c.Limits.SendBurst}}
	if c.Federation != nil {
		r.FederationRate, r.FederationBurst = c.Federation.RatePerSecond, c.Federation.RateBurst
	}
	return r
}

// withoutReloadable is cfg with its reloadable settings cleared, to find
// the changes that wait for a restart.
func (c serverConfig) withoutReloadable() serverConfig {
	c.Limits.SendPerSecond, c.Limits.SendBurst, c.LogLevel = 0, 0, ""
	if c.Federation != nil {
		f := *c.Federation
		f.RatePerSecond, f.RateBurst = 0, 0
		c.Federation = &f
		if reflect.ValueOf(f).IsZero() {
			c.Federation = nil // absent and empty mean the same
		}
	}
	return c
}

// restartOnly names the top-level settings of config.json that differ
// between old and new other than by what a reload applies.
func restartOnly(old, new serverConfig) []string {
	toMap := func(c serverConfig) map[string]any {
		b, _ := json.Marshal(c.withoutReloadable())
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	a, b := toMap(old), toMap(new)
	var changed []string
	for k := range a {
		if !reflect.DeepEqual(a[k], b[k]) {
			changed = append(changed, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	return changed
}

// reloadServer reads config.json again and applies what can change
// while serving (SIGHUP). Sessions stay connected. A configuration that
// does not load or validate is refused with an error in the log and the
// running one stays; the configuration in effect is returned.
func reloadServer(dir, listen string, cur serverConfig, hs *homeserver.Server, level logLevel, log *slog.Logger) serverConfig {
	sdNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer sdNotify("READY=1")
	cfg, err := loadServerConfig(dir)
	if err == nil && listen != "" {
		cfg.Listen = listen
		err = cfg.validate()
	}
	if err == nil {
		err = hs.Reload(cfg.reloadable())
	}
	if err != nil {
		log.Error("reload refused; the running configuration stays", "err", err)
		return cur
	}
	if changed := restartOnly(cur, cfg); len(changed) > 0 {
		log.Warn("reload: these settings changed and take effect after a restart", "settings", changed)
	}
	// Logged at the level in force when the signal came, then the new
	// level applies.
	log.Info("configuration reloaded", "send_per_second", cfg.Limits.SendPerSecond, "send_burst", cfg.Limits.SendBurst,
		"log_level", cfg.LogLevel)
	level.apply(cfg)
	// The restart-only settings stay as they run.
	applied := cur
	applied.Limits.SendPerSecond, applied.Limits.SendBurst, applied.LogLevel = cfg.Limits.SendPerSecond, cfg.Limits.SendBurst, cfg.LogLevel
	if cfg.Federation != nil {
		f := federationConfig{}
		if cur.Federation != nil {
			f = *cur.Federation
		}
		f.RatePerSecond, f.RateBurst = cfg.Federation.RatePerSecond, cfg.Federation.RateBurst
		applied.Federation = &f
	} else if cur.Federation != nil {
		f := *cur.Federation
		f.RatePerSecond, f.RateBurst = 0, 0
		applied.Federation = &f
	}
	return applied
}
