package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
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
// Before encoding/json sees the body, every object in it is checked for
// repeated keys and, where dst's type fixes the fields, for keys that are
// not exactly a field's name: encoding/json would keep the last of two
// "email" keys and take "EMAIL" for "email", so a proxy or an audit that
// reads the first or the exact key would see another applicant than the
// one stored (a parser differential).
func decodeObject(body []byte, dst any) error {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return &badRequestError{detail: "the body must be a JSON object"}
	}
	keys := json.NewDecoder(bytes.NewReader(body))
	keys.UseNumber()
	if err := checkKeys(keys, reflect.TypeOf(dst), "", 0); err != nil && !errors.Is(err, errMalformed) {
		return err
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

// errMalformed stops checkKeys at a syntax error, which the decoder then
// reports with its position.
var errMalformed = errors.New("malformed JSON")

// maxDepth is the deepest nesting of arrays and objects a body may have.
// No body the API takes nests more than a few levels; a limit keeps a body
// of 65,000 "[" (or millions, with a larger INTAKE_MAX_BODY_BYTES) from
// recursing into a huge stack or a fatal stack overflow.
const maxDepth = 32

// checkKeys reads one JSON value from dec and refuses a repeated key in any
// object, and a key that is not exactly one of t's JSON field names where t
// is a struct, and nesting deeper than maxDepth. path names the value's
// place for the error ("answers.").
func checkKeys(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return errMalformed
	}
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') && depth >= maxDepth {
		return &badRequestError{detail: fmt.Sprintf("the JSON nests deeper than %d levels", maxDepth)}
	}
	switch tok {
	case json.Delim('{'):
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return errMalformed
			}
			key, _ := keyTok.(string)
			if seen[key] {
				return &badRequestError{field: path + key, detail: "repeated field"}
			}
			seen[key] = true
			var child reflect.Type
			switch {
			case fields != nil:
				ft, ok := fields[key]
				if !ok {
					return &badRequestError{field: path + key, detail: "unknown field"}
				}
				child = ft
			case t != nil && t.Kind() == reflect.Map:
				child = t.Elem()
			}
			if err := checkKeys(dec, child, path+key+".", depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errMalformed
		}
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := checkKeys(dec, elem, path, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errMalformed
		}
	}
	return nil
}

// jsonFields maps the exact JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
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
	case "application.Answers":
		return "an object of answers by question key"
	case "[]application.Question":
		return "a list of questions"
	case "bool":
		return "true or false"
	default:
		return "of another type"
	}
}
