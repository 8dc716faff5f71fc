package main

import (
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifyReady tells systemd (Type=notify) that the agent serves. Outside
// systemd (no NOTIFY_SOCKET) it does nothing.
func notifyReady(log *slog.Logger) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify READY failed", "err", err)
	} else if ok {
		log.Info("told systemd the agent is ready")
	}
}

// notifyStopping tells systemd that a graceful stop began, so a long
// leadership transfer is not mistaken for a hang.
func notifyStopping() { _, _ = daemon.SdNotify(false, daemon.SdNotifyStopping) }

// watchdog pings systemd's watchdog at half its interval while alive()
// holds, until stop closes. Without WatchdogSec it returns at once.
func watchdog(alive func() bool, stop <-chan struct{}, log *slog.Logger) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	log.Info("systemd watchdog enabled", "interval", interval)
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			// A wedged agent stops pinging and systemd restarts it.
			if alive() {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}
}
