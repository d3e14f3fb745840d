package main

import (
	"fmt"
	"reflect"
	"slices"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/stratum"
)

// apply takes a reloaded configuration: the log level and the stratum
// server's reloadable settings change now; every other difference is
// logged as needing a restart and is not applied.
func (a *app) apply(next *config.Config) {
	if from := a.level.Level(); next.LogLevel != from {
		a.level.SetLevel(next.LogLevel)
		a.log.Info("log level changed", zap.Stringer("from", from), zap.Stringer("to", next.LogLevel))
	}
	if err := a.server.Reload(reloadableStratumConfig(a.cfg, next)); err != nil {
		a.log.Error("configuration reload refused by the stratum server; nothing changed there", zap.Error(err))
	} else {
		a.log.Info("stratum settings reloaded")
	}
	if fields := restartNeeded(a.cfg, next); len(fields) > 0 {
		a.log.Warn("configuration changes that need a restart were not applied", zap.Strings("fields", fields))
	}
}

// restartNeeded lists the configuration keys that differ between old and
// next and that only take effect at start-up. What the stratum server
// reloads (difficulties, vardiff, version mask, groups) and the log level
// are not listed.
func restartNeeded(old, next *config.Config) []string {
	var out []string
	diff := func(field string, changed bool) {
		if changed {
			out = append(out, field)
		}
	}
	diff("instance.name", old.Instance != next.Instance)
	diff("instance.id", old.InstanceID != next.InstanceID)
	diff("instance.spool_dir", old.SpoolDir != next.SpoolDir)
	diff("instance.spool_limit", old.SpoolLimit != next.SpoolLimit)
	diff("instance.spool_sync_interval", old.SpoolSync != next.SpoolSync)
	diff("instance.shutdown_timeout", old.ShutdownTimeout != next.ShutdownTimeout)
	diff("log.format", old.LogFormat != next.LogFormat)
	diff("bitcoin.network", old.Network != next.Network)
	diff("bitcoin.payout_address", old.PayoutAddress != next.PayoutAddress)
	diff("bitcoin.pool_tag", old.PoolTag != next.PoolTag)
	diff("node.urls", !slices.Equal(old.Nodes, next.Nodes))
	diff("node.timeout", old.NodeTimeout != next.NodeTimeout)
	diff("node.poll_interval", old.PollInterval != next.PollInterval)
	diff("node.refresh_interval", old.RefreshInterval != next.RefreshInterval)
	diff("node.max_template_age", old.MaxTemplateAge != next.MaxTemplateAge)
	diff("node.longpoll", old.LongPoll != next.LongPoll)
	diff("node.template_file", old.TemplateFile != next.TemplateFile)
	diff("database.url", old.DatabaseURL != next.DatabaseURL)
	diff("database.migrate", old.Migrate != next.Migrate)
	diff("stratum.extranonce2_size", old.Extranonce2Size != next.Extranonce2Size)
	diff("http.addr", old.HTTPAddr != next.HTTPAddr)
	// The live loop is built once, with its sources, policy and actuator.
	diff("allocator", !reflect.DeepEqual(old.Allocator, next.Allocator))
	if len(old.Listeners) != len(next.Listeners) {
		out = append(out, "stratum.listener (count)")
	} else {
		for i := range old.Listeners {
			diff(fmt.Sprintf("stratum.listener[%d].name", i), old.Listeners[i].Name != next.Listeners[i].Name)
			diff(fmt.Sprintf("stratum.listener[%d].addr", i), old.Listeners[i].Addr != next.Listeners[i].Addr)
			diff(fmt.Sprintf("stratum.listener[%d].proxy_protocol", i), old.Listeners[i].ProxyProtocol != next.Listeners[i].ProxyProtocol)
			diff(fmt.Sprintf("stratum.listener[%d].solo", i), old.Listeners[i].Solo != next.Listeners[i].Solo)
			// New certificate files are read by the reload; TLS on or off is not.
			diff(fmt.Sprintf("stratum.listener[%d].tls_cert (TLS on or off)", i), (old.Listeners[i].TLSCert == "") != (next.Listeners[i].TLSCert == ""))
		}
	}
	return out
}

// reloadableStratumConfig is next's stratum configuration with everything
// that needs a restart kept as the running server has it: instance,
// extranonce size and the listeners' names and addresses (a changed
// listener count keeps the old listeners entirely).
func reloadableStratumConfig(running, next *config.Config) stratum.Config {
	sc := stratumConfig(next)
	old := stratumConfig(running)
	sc.Instance, sc.InstanceID, sc.Extranonce2Size = old.Instance, old.InstanceID, old.Extranonce2Size
	if len(sc.Listeners) != len(old.Listeners) {
		sc.Listeners = old.Listeners
		return sc
	}
	for i := range sc.Listeners {
		sc.Listeners[i].Name, sc.Listeners[i].Addr = old.Listeners[i].Name, old.Listeners[i].Addr
		sc.Listeners[i].Solo = old.Listeners[i].Solo
	}
	return sc
}
