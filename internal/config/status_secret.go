package config

import "github.com/intake/intake/internal/statustoken"

// WithGeneratedStatusSecret is getenv with a fresh random
// INTAKE_STATUS_SECRET when none is set, for the programs that start
// intake-api and intake-worker themselves (intakectl dev, intake-bench):
// they then need no setup, and give the same secret to every child. Status
// links made with a generated secret open only while those children run.
func WithGeneratedStatusSecret(getenv func(string) string) func(string) string {
	if getenv("INTAKE_STATUS_SECRET") != "" {
		return getenv
	}
	secret := statustoken.NewSecret()
	return func(name string) string {
		if name == "INTAKE_STATUS_SECRET" {
			return secret
		}
		return getenv(name)
	}
}
