package outbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStalled(t *testing.T) {
	t.Parallel()
	r := &Relay{PollInterval: time.Second, RoundTimeout: 10 * time.Second}
	now := time.Now()

	require.NoError(t, r.Stalled(now), "a relay that has not started is not stalled")

	r.lastRound.Store(now.Add(-20 * time.Second).UnixNano())
	require.NoError(t, r.Stalled(now), "within two round timeouts and a poll")

	r.lastRound.Store(now.Add(-22 * time.Second).UnixNano())
	require.ErrorContains(t, r.Stalled(now), "outbox relay has not completed a round for 22s")
}
