// Package postgres is Intake's only door to the database: the connection
// pool, transactions, and the store whose methods run the queries in
// db/queries (through the sqlc-generated dbsqlc package). Rows become domain
// types here and database errors become domain errors here, so no caller
// ever sees pgx.
package postgres

//go:generate go run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1 generate -f ../../db/sqlc.yaml
