package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// decodeJSON reads a JSON object body into dst strictly: the content type
// must be JSON, the body within limit, the object's fields known and of the
// right type, and nothing may follow the object.
func decodeJSON(c echo.Context, limit int64, dst any) error {
	mediaType, params, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mediaType != echo.MIMEApplicationJSON {
		return errUnsupportedMediaType
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errUnsupportedMediaType
	}
	if c.Request().ContentLength > limit {
		return errBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errBodyTooLarge
		}
		return &badRequestError{detail: "could not read the request body"}
	}
	return decodeObject(body, dst)
}

// decodeObject is decodeJSON's parsing half, separate so it can be fuzzed.
func decodeObject(body []byte, dst any) error {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return &badRequestError{detail: "the body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &badRequestError{detail: "the body must hold exactly one JSON object"}
	}
	return nil
}

func jsonError(err error) error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return &badRequestError{detail: fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)}
	case errors.As(err, &typeErr):
		return &badRequestError{field: typeErr.Field, detail: "must be " + jsonTypeName(typeErr.Type.String())}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &badRequestError{detail: "the JSON object is not complete"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this one.
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &badRequestError{field: field, detail: "unknown field"}
	default:
		return &badRequestError{detail: "malformed JSON"}
	}
}

func jsonTypeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	default:
		return "of another type"
	}
}
