package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/statustoken"
)

func TestWithGeneratedStatusSecret(t *testing.T) {
	t.Parallel()
	unset := env("INTAKE_STATUS_SECRET", "", "INTAKE_LOG_LEVEL", "debug")
	first, second := config.WithGeneratedStatusSecret(unset), config.WithGeneratedStatusSecret(unset)
	secret := first("INTAKE_STATUS_SECRET")
	parsed, err := statustoken.ParseSecret(secret)
	require.NoError(t, err)
	require.Len(t, parsed, statustoken.MinSecretBytes)
	require.Equal(t, secret, first("INTAKE_STATUS_SECRET"), "one secret for every child of one run")
	require.NotEqual(t, secret, second("INTAKE_STATUS_SECRET"), "a new one for each run")
	require.Equal(t, "debug", first("INTAKE_LOG_LEVEL"), "other variables are passed through")
	_, err = config.Load(first)
	require.NoError(t, err)

	set := env("INTAKE_STATUS_SECRET", statusSecret)
	require.Equal(t, statusSecret, config.WithGeneratedStatusSecret(set)("INTAKE_STATUS_SECRET"), "a secret set is kept")
}
