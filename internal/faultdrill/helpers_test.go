//go:build drills

package faultdrill

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The drills' own tools, checked before they are trusted.

func TestClusterRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	c := StartCluster(t)
	url, err := c.CreateIntakeDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(`INSERT INTO postings (slug, title) VALUES ('kept', 'Kept')`); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := exec(`SELECT 1`); err == nil {
		t.Fatal("a stopped cluster answered")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	var fsync, listen string
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM postings WHERE slug = 'kept'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("committed row after restarts: %d, %v", n, err)
	}
	if err := conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('listen_addresses')`).Scan(&fsync, &listen); err != nil {
		t.Fatal(err)
	}
	if fsync != "on" || listen != "127.0.0.1" {
		t.Fatalf("fsync %s, listen_addresses %s", fsync, listen)
	}
}
