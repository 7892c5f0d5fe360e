// lake-ferretdb runs FerretDB 1.x (the MongoDB wire protocol over SQLite or PostgreSQL) in the
// foreground until SIGTERM or SIGINT. It embeds FerretDB's Go package because a plain
// `go install .../cmd/ferretdb` from the module proxy panics at start (no version file in the zip).
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27027", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite directory URL (must end with /)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL, for -handler postgresql")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *postgresqlURL,
	})
	if err != nil {
		log.Fatalf("ferretdb: %v", err)
	}
	log.Printf("ferretdb: listening on %s (%s backend)", *listen, *handler)
	f.Run(ctx)
	log.Printf("ferretdb: stopped")
}
