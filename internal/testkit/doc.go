// Package testkit holds test-only helpers: a fresh, migrated database per
// test (cloned from one template by pgtestdb), an empty database for
// migration tests, and a running API server over a test database.
package testkit
