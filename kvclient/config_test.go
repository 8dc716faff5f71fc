package kvclient_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
)

func TestConfigValidateNamesTheBadField(t *testing.T) {
	ok := func() kvclient.Config {
		return kvclient.Config{Addrs: []string{"127.0.0.1:7101", "http://127.0.0.1:7102/"}}
	}
	tests := []struct {
		name  string
		edit  func(*kvclient.Config)
		field string // "" = valid
	}{
		{"minimal", func(*kvclient.Config) {}, ""},
		{"defaults", func(c *kvclient.Config) { d := kvclient.DefaultConfig(); d.Addrs = c.Addrs; *c = d }, ""},
		{"no addrs", func(c *kvclient.Config) { c.Addrs = nil }, "Addrs"},
		{"empty addr", func(c *kvclient.Config) { c.Addrs = []string{"a:1", " "} }, "Addrs[1]"},
		{"no port", func(c *kvclient.Config) { c.Addrs = []string{"localhost"} }, "Addrs[0]"},
		{"https", func(c *kvclient.Config) { c.Addrs = []string{"https://a:1"} }, "Addrs[0]"},
		{"duplicate", func(c *kvclient.Config) { c.Addrs = []string{"a:1", "http://a:1"} }, "Addrs[1]"},
		{"negative request timeout", func(c *kvclient.Config) { c.RequestTimeout = -1 }, "RequestTimeout"},
		{"negative dial timeout", func(c *kvclient.Config) { c.DialTimeout = -time.Second }, "DialTimeout"},
		{"backoff max below min", func(c *kvclient.Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond }, "BackoffMax"},
		{"negative attempts", func(c *kvclient.Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"negative idle conns", func(c *kvclient.Config) { c.MaxIdleConnsPerHost = -1 }, "MaxIdleConnsPerHost"},
		{"negative response bytes", func(c *kvclient.Config) { c.MaxResponseBytes = -1 }, "MaxResponseBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok()
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := kvclient.New(cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, kvclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "Config."+tt.field+":") {
				t.Fatalf("Validate: %v, want ErrInvalidArgument naming Config.%s", err, tt.field)
			}
			if _, err := kvclient.New(cfg); err == nil {
				t.Fatalf("New accepted an invalid Config")
			}
		})
	}
}

func TestNewNormalisesAddresses(t *testing.T) {
	c, err := kvclient.New(kvclient.Config{Addrs: []string{"http://127.0.0.1:7101/", " 127.0.0.1:7102"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := strings.Join(c.Addrs(), ",")
	if got != "127.0.0.1:7101,127.0.0.1:7102" {
		t.Fatalf("Addrs = %s", got)
	}
}
