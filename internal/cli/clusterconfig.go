package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

func (a *app) newClusterConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Show or change the dynamic configuration every agent applies"}
	cmd.AddCommand(&cobra.Command{
		Use: "show", Short: "Print the configuration in etcd", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), 5*time.Second, func(ctx context.Context, _ *plan.Cluster, s *cluster.Store) error {
				snap, err := s.Read(ctx)
				if err != nil {
					return err
				}
				if snap.Config == nil {
					return fmt.Errorf("the cluster has no configuration yet: start an agent first")
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(snap.Config)
			})
		},
	}, &cobra.Command{
		Use:   "set KEY=VALUE...",
		Short: "Change settings: ttl, loop_wait, mode, sync_count, strict, maximum_lag_on_failover, crash_restarts, parameters.NAME",
		Long: "Change the dynamic configuration. Agents apply it within a loop. A new ttl applies to leases\n" +
			"granted from then on. parameters.NAME=VALUE sets a PostgreSQL setting on every node (an empty\n" +
			"VALUE removes it); settings that need a restart show as pending_restart until bulwark cluster restart.",
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withStore(cmd.Context(), 5*time.Second, func(ctx context.Context, _ *plan.Cluster, s *cluster.Store) error {
				c, err := s.UpdateConfig(ctx, func(c *cluster.Config) error {
					for _, kv := range argv {
						if err := setConfig(c, kv); err != nil {
							return usageError{err}
						}
					}
					return checkConfig(*c)
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "configuration updated: mode %s, ttl %s, loop_wait %s\n", c.Mode, time.Duration(c.TTL), time.Duration(c.LoopWait))
				return nil
			})
		},
	})
	return cmd
}

// setConfig applies one KEY=VALUE to c.
func setConfig(c *cluster.Config, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("%q: want KEY=VALUE", kv)
	}
	dur := func(dst *cluster.Duration) error {
		d, err := time.ParseDuration(val)
		*dst = cluster.Duration(d)
		return err
	}
	var err error
	switch key {
	case "ttl":
		err = dur(&c.TTL)
	case "loop_wait":
		err = dur(&c.LoopWait)
	case "mode":
		switch cluster.Mode(val) {
		case cluster.ModeAsync, cluster.ModeSync, cluster.ModeQuorum:
			c.Mode = cluster.Mode(val)
		default:
			err = fmt.Errorf("want async, sync or quorum")
		}
	case "sync_count":
		c.SyncCount, err = strconv.Atoi(val)
	case "strict":
		c.Strict, err = strconv.ParseBool(val)
	case "crash_restarts":
		c.CrashRestarts, err = strconv.Atoi(val)
	case "maximum_lag_on_failover":
		c.MaximumLagOnFailover, err = strconv.ParseInt(val, 10, 64)
	default:
		name, isParam := strings.CutPrefix(key, "parameters.")
		if !isParam || name == "" {
			return fmt.Errorf("unknown setting %q", key)
		}
		if c.Parameters == nil {
			c.Parameters = map[string]string{}
		}
		if val == "" {
			delete(c.Parameters, name)
		} else {
			c.Parameters[name] = val
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	return nil
}

// checkConfig applies the plan's rules to a changed configuration.
func checkConfig(c cluster.Config) error {
	ttl, loop := time.Duration(c.TTL), time.Duration(c.LoopWait)
	switch {
	case ttl < 2*time.Second:
		return usageError{fmt.Errorf("ttl must be 2s or more")}
	case loop < 10*time.Millisecond || 2*loop > ttl:
		return usageError{fmt.Errorf("loop_wait must be from 10ms to half the ttl")}
	case c.Mode == cluster.ModeQuorum && c.SyncCount < 1:
		return usageError{fmt.Errorf("quorum mode needs sync_count of 1 or more")}
	case c.Strict && c.Mode == cluster.ModeAsync:
		return usageError{fmt.Errorf("only sync or quorum mode can be strict")}
	case c.CrashRestarts < 0 || c.CrashRestarts > 10:
		return usageError{fmt.Errorf("crash_restarts must be from 0 to 10")}
	case c.MaximumLagOnFailover < 0:
		return usageError{fmt.Errorf("maximum_lag_on_failover must not be negative")}
	}
	return nil
}

func (a *app) newRestartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Rolling restart: replicas one at a time, then the primary in place",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), 5*time.Second, func(ctx context.Context, _ *plan.Cluster, s *cluster.Store) error {
				c, err := s.UpdateConfig(ctx, func(c *cluster.Config) error { c.RestartGeneration++; return nil })
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "rolling restart %d requested\n", c.RestartGeneration)
				return nil
			})
		},
	}
}
