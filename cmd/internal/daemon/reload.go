package daemon

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/logging"
)

// Reloader re-reads the configuration on SIGHUP (see WithReload).
type Reloader struct {
	// Signals delivers the reload requests (SIGHUP).
	Signals <-chan os.Signal
	// Load reads the configuration again, with the command line's
	// overrides applied.
	Load func() (config.Config, error)
	// Level is the logger's level, changed in place by a reload.
	Level *zap.AtomicLevel
}

// Serve is `tapswitch run`: Run on cfg until SIGTERM or SIGINT, reloading
// on SIGHUP with load (which re-reads the file with the command line's
// overrides) and changing lvl, the logger's level, with it.
func Serve(cfg config.Config, load func() (config.Config, error), log *zap.Logger, lvl *zap.AtomicLevel) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return Run(ctx, cfg, log, &Reloader{Signals: hup, Load: load, Level: lvl})
}

// copyReloadable copies into dst the keys a reload may change (see
// Reload): the one list of them.
func copyReloadable(dst *config.Config, src config.Config) {
	dst.FDB, dst.ARP, dst.LogLevel = src.FDB, src.ARP, src.LogLevel
	dst.Switch.StormPPS, dst.RemovePodsOnExit = src.Switch.StormPPS, src.RemovePodsOnExit
}

// Reload applies next to the running daemon. What a reload changes: the
// FDB's ageing, limits and policy, ARP suppression, guard and ageing, the
// storm limit of pods added from now on, remove_pods_on_exit and (through
// the Reloader) the log level. Every other key shapes something built at
// start (the subnet, the gateway, the socket, queues...) and needs a
// restart: a next that changes one of them is refused whole, naming them,
// and so is one that does not validate. A refused reload changes nothing.
func (d *Daemon) Reload(next config.Config) error {
	if err := next.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cfg
	probe := next
	copyReloadable(&probe, cur)
	if keys := differing(cur, probe); len(keys) > 0 {
		return fmt.Errorf("%s: changed, and only a restart applies that", strings.Join(keys, ", "))
	}
	fc, err := next.FDBConfig()
	if err != nil {
		return err
	}
	if err := d.sw.FDB().SetConfig(fc, d.sw.Now()); err != nil {
		return err
	}
	d.sw.ARP().SetConfig(arp.Config{Ageing: next.ARP.Ageing, Suppress: next.ARP.Suppress, Guard: next.ARP.Guard, PodRouterAdvertisements: next.ARP.PodRouterAdvertisements})
	// Field by field: the rest of d.cfg is read without the lock (listings),
	// and only these fields are read again after start, under the lock.
	copyReloadable(&d.cfg, next)
	d.log.Info("configuration reloaded",
		zap.Duration("fdb_ageing", fc.Ageing), zap.Int("fdb_limit", fc.Limit), zap.Int("fdb_port_limit", fc.PortLimit),
		zap.Stringer("fdb_policy", fc.Policy), zap.Bool("arp_suppress", next.ARP.Suppress), zap.Bool("arp_guard", next.ARP.Guard),
		zap.Int("storm_pps", next.Switch.StormPPS), zap.String("log_level", next.LogLevel))
	return nil
}

// ReloadNow runs one reload request as a SIGHUP does: load, apply, or keep
// the running configuration and log why.
func (d *Daemon) ReloadNow(r *Reloader) {
	next, err := r.Load()
	if err == nil {
		err = d.Reload(next)
	}
	if err != nil {
		d.log.Error("config reload refused; keeping the running configuration", zap.Error(err))
		return
	}
	if r.Level != nil {
		if lvl, err := logging.ParseLevel(next.LogLevel); err == nil {
			r.Level.SetLevel(lvl)
		}
	}
}

// differing names the top-level keys (by their YAML names) whose values
// differ between a and b.
func differing(a, b config.Config) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("yaml"), ",")
			out = append(out, name)
		}
	}
	return out
}
