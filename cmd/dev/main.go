// Command dev runs the embedded default: a Kafka-protocol broker (kfake) and a
// Redis-protocol server (miniredis) in one process on loopback, and the demo that
// drives the real streamrec pipeline against them.
//
//	dev serve [--kafka-port 9092] [--redis-port 6379]   serve until SIGINT/SIGTERM
//	dev demo  [--events N] [--users N]                    start the stack and run the demo
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/devstack"
)

func main() { config.Main("dev", run) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: dev serve|demo [flags]")
		return config.Usagef("missing subcommand")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "demo":
		return demo(ctx, args[1:])
	}
	fmt.Fprintln(os.Stderr, "usage: dev serve|demo [flags]")
	return config.Usagef("unknown subcommand %q", args[0])
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev serve", flag.ContinueOnError)
	kport := fs.Int("kafka-port", 9092, "loopback port of the embedded Kafka broker")
	rport := fs.Int("redis-port", 6379, "loopback port of the embedded Redis server")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	config.Usage(fs, "dev serve: the embedded Kafka + Redis on loopback, until SIGINT/SIGTERM")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	log, err := config.NewLogger(os.Stderr, *logLevel)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	st, err := devstack.Start(devstack.Config{KafkaPort: *kport, RedisPort: *rport})
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("embedded stack serving", "kafka", st.KafkaAddr(), "redis", st.RedisAddr())
	fmt.Printf("STREAMREC_BROKERS=%s\nSTREAMREC_REDIS_ADDR=%s\n", st.KafkaAddr(), st.RedisAddr())
	<-ctx.Done()
	log.Info("embedded stack stopping")
	return nil
}
