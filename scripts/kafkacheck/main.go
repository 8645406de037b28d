// Command kafkacheck waits until a Kafka broker answers a metadata request; the
// service scripts use it as their readiness probe. Exit 0 when ready, 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:19092", "comma-separated broker addresses")
	timeout := flag.Duration("timeout", 5*time.Second, "how long to try")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	addr := strings.Split(*brokers, ",")[0]
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: *timeout}
	var lastErr error
	for ctx.Err() == nil {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		if err == nil && len(md.Brokers) > 0 {
			fmt.Printf("ready: %d broker(s), controller %d\n", len(md.Brokers), md.Controller.ID)
			return
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "kafkacheck: %s did not answer metadata: %v\n", addr, lastErr)
	os.Exit(1)
}
