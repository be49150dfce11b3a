package application_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

func TestParseWeek(t *testing.T) {
	t.Parallel()
	w, err := application.ParseWeek("2026-W48")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), w.Start())
	require.Equal(t, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), w.End())
	require.Equal(t, "2026-W48", w.String())

	// 2026 has 53 weeks (it starts on a Thursday); its week 1 starts in 2025.
	w, err = application.ParseWeek("2026-W53")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 28, 0, 0, 0, 0, time.UTC), w.Start())
	w, err = application.ParseWeek("2026-W01")
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 12, 29, 0, 0, 0, 0, time.UTC), w.Start())

	for _, bad := range []string{"", "2026-48", "2026-W4", "2026-w48", "2026-W00", "2027-W53", "2026-W54", " 2026-W48"} {
		_, err := application.ParseWeek(bad)
		var v *application.ValidationError
		require.True(t, errors.As(err, &v), "%q", bad)
		require.Equal(t, "week", v.Errors[0].Field, "%q", bad)
	}
}

// The week that ended before a moment, across a year with 53 weeks.
func TestWeekPrevious(t *testing.T) {
	t.Parallel()
	require.Equal(t, "2026-W48", application.WeekOf(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)).Previous().String())
	require.Equal(t, "2026-W53", application.WeekOf(time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)).Previous().String())
	require.Equal(t, "2026-W48", application.WeekOf(time.Date(2026, 11, 29, 23, 59, 59, 0, time.UTC)).String())
}
