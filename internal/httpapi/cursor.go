package httpapi

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/statustoken"
)

// A cursor is base64url of its position, a dot, and a MAC (statustoken's
// CursorMAC) over the list's name, the filters the page was asked with, and
// the position. A cursor that was altered, cut short, made for another list
// or replayed with other filters (another posting's list) does not verify:
// 400, never a 500 and never rows the filters do not select.

var errBadCursor = &queryParamError{field: "cursor", detail: "is not a cursor this list gave out under these filters"}

func signCursor(keys statustoken.Keys, scope, position string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(position)) + "." + keys.CursorMAC(scope+"\x00"+position)
}

// openCursor returns the position of a cursor signed for scope.
func openCursor(keys statustoken.Keys, scope, cursor string) (string, error) {
	payload, tag, ok := strings.Cut(cursor, ".")
	if !ok || len(payload) > 200 {
		return "", errBadCursor
	}
	position, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || !keys.VerifyCursor(scope+"\x00"+string(position), tag) {
		return "", errBadCursor
	}
	return string(position), nil
}

var applicationPosition = regexp.MustCompile(`^a1 (-?[0-9]{1,19}) ([0-9a-f-]{36})$`)

func applicationsCursor(keys statustoken.Keys, job string, k application.PageKey) string {
	return signCursor(keys, "applications\x00"+job, fmt.Sprintf("a1 %d %s", k.ReceivedAt.UnixMicro(), k.ID))
}

func openApplicationsCursor(keys statustoken.Keys, job, cursor string) (*application.PageKey, error) {
	position, err := openCursor(keys, "applications\x00"+job, cursor)
	if err != nil {
		return nil, err
	}
	m := applicationPosition.FindStringSubmatch(position)
	if m == nil {
		return nil, errBadCursor
	}
	micros, err := strconv.ParseInt(m[1], 10, 64)
	if _, idErr := uuid.Parse(m[2]); err != nil || idErr != nil {
		return nil, errBadCursor
	}
	return &application.PageKey{ReceivedAt: time.UnixMicro(micros).UTC(), ID: m[2]}, nil
}

var auditPosition = regexp.MustCompile(`^u1 ([1-9][0-9]{0,18})$`)

func auditCursor(keys statustoken.Keys, filters string, id int64) string {
	return signCursor(keys, "audit\x00"+filters, fmt.Sprintf("u1 %d", id))
}

func openAuditCursor(keys statustoken.Keys, filters, cursor string) (int64, error) {
	position, err := openCursor(keys, "audit\x00"+filters, cursor)
	if err != nil {
		return 0, err
	}
	m := auditPosition.FindStringSubmatch(position)
	if m == nil {
		return 0, errBadCursor
	}
	id, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, errBadCursor
	}
	return id, nil
}
