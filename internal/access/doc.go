// Package access is who may do what: admin tokens (their format, checksum
// and hash), roles, and the audit log's entries. It imports only the
// standard library and the domain (package application).
package access
