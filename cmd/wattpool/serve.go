package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

// cmdServe runs the pool until SIGINT/SIGTERM; SIGHUP reloads the
// configuration file and environment.
func cmdServe(ctx context.Context, args []string, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(path(), lookup)
	if err != nil {
		return err
	}
	level := zap.NewAtomicLevelAt(cfg.LogLevel)
	log, err := newLogger(cfg.LogFormat, level, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("starting", zap.String("version", versionString()), zap.String("instance", cfg.Instance),
		zap.String("network", cfg.Network.Name), zap.String("config", describePath(path())))

	a, err := newApp(ctx, cfg, log, level)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan *config.Config)
	ctx, cancel := context.WithCancel(ctx)
	reloaderDone := make(chan struct{})
	defer func() { cancel(); <-reloaderDone }()
	go func() {
		defer close(reloaderDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			log.Info("SIGHUP: reloading configuration", zap.String("config", describePath(path())))
			next, err := config.Load(path(), lookup)
			if err != nil {
				log.Error("SIGHUP: configuration not reloaded, it is not valid", zap.Error(err))
				continue
			}
			select {
			case reload <- next:
			case <-ctx.Done():
				return
			}
		}
	}()
	err = a.run(ctx, reload)
	log.Info("stopped", zap.Error(err))
	return err
}
