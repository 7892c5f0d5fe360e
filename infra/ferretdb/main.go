// lake-ferretdb runs FerretDB 1.x (the MongoDB wire protocol over SQLite or PostgreSQL) in the
// foreground until SIGTERM or SIGINT. It embeds FerretDB's Go package because a plain
// `go install .../cmd/ferretdb` from the module proxy panics at start (no version file in the zip).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -pprof-addr
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27027", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite directory URL (must end with /)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL, for -handler postgresql")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	insertBatch := flag.Int("insert-batch-size", 100, "documents per insert transaction and statement")
	pprofAddr := flag.String("pprof-addr", "", "serve Go's /debug/pprof on this address (off when empty)")
	flag.Parse()

	if *pprofAddr != "" {
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				fmt.Fprintf(os.Stderr, "lake-ferretdb: pprof: %v\n", err)
			}
		}()
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "lake-ferretdb: bad -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	switch *handler {
	case "sqlite":
		if !strings.HasSuffix(strings.SplitN(*sqliteURL, "?", 2)[0], "/") {
			fmt.Fprintf(os.Stderr, "lake-ferretdb: -sqlite-url must be a directory URL ending in '/': %q\n", *sqliteURL)
			os.Exit(2)
		}
	case "postgresql":
		if *postgresqlURL == "" {
			fmt.Fprintln(os.Stderr, "lake-ferretdb: -handler postgresql needs -postgresql-url")
			os.Exit(2)
		}
	default:
		fmt.Fprintf(os.Stderr, "lake-ferretdb: -handler must be sqlite or postgresql, not %q\n", *handler)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:        ferretdb.ListenerConfig{TCP: *listen},
		Logger:          logger,
		Handler:         *handler,
		SQLiteURL:       *sqliteURL,
		PostgreSQLURL:   *postgresqlURL,
		InsertBatchSize: *insertBatch,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lake-ferretdb: %v\n", err)
		os.Exit(1)
	}

	// Always say where we listen, whatever the level: the stack manager's log shows it.
	fmt.Fprintf(os.Stderr, "lake-ferretdb: FerretDB v1.24.2 listening on %s (%s backend)\n", *listen, *handler)
	if err := f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "lake-ferretdb: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "lake-ferretdb: stopped")
}
