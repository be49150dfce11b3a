package devmail

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Message is one caught message.
type Message struct {
	N         int       // sequence number, from 1; the mailbox URL is /messages/{N}
	At        time.Time // when the catcher accepted it
	From      string    // envelope sender (MAIL FROM)
	To        []string  // envelope recipients (RCPT TO)
	MessageID string    // the Message-ID header as sent, angle brackets included
	Subject   string    // decoded
	Headers   []Header  // every header, in order, decoded
	Text      string    // the first text/plain part
	HTML      string    // the first text/html part
	Raw       []byte    // the message as received
	ParseErr  string    // why the message could not be read as MIME, if it could not
}

// Header is one header field.
type Header struct {
	Name  string
	Value string
}

// maxDepth bounds how deep multipart nesting is followed.
const maxDepth = 8

// parseMessage reads what a mailbox shows of raw. A message that is not
// valid MIME is still kept: its text is the raw body.
func parseMessage(raw []byte) Message {
	m := Message{Raw: raw, Headers: headerList(raw)}
	for _, h := range m.Headers {
		switch strings.ToLower(h.Name) {
		case "subject":
			m.Subject = h.Value
		case "message-id":
			m.MessageID = h.Value
		}
	}
	parsed, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		m.ParseErr = err.Error()
		m.Text = string(raw)
		return m
	}
	text, html, err := bodies(textproto.MIMEHeader(parsed.Header), parsed.Body, 0)
	if err != nil {
		m.ParseErr = err.Error()
	}
	m.Text = strings.ToValidUTF8(text, "\uFFFD")
	m.HTML = strings.ToValidUTF8(html, "\uFFFD")
	return m
}

// headerList returns the header fields of raw in order, unfolded and with
// RFC 2047 encoded words decoded.
func headerList(raw []byte) []Header {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	dec := new(mime.WordDecoder)
	var list []Header
	for {
		line, err := r.ReadContinuedLine()
		if err != nil || line == "" {
			return list
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if decoded, err := dec.DecodeHeader(value); err == nil {
			value = decoded
		}
		list = append(list, Header{Name: strings.TrimSpace(name), Value: strings.ToValidUTF8(value, "\uFFFD")})
	}
}

// bodies walks a MIME entity and returns its first text/plain and first
// text/html parts, transfer-decoded. Attachments are skipped.
func bodies(h textproto.MIMEHeader, body io.Reader, depth int) (text, html string, err error) {
	mediaType, params, perr := mime.ParseMediaType(h.Get("Content-Type"))
	if perr != nil {
		mediaType = "text/plain" // RFC 2045's default
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= maxDepth {
			return "", "", errors.New("multipart nesting too deep")
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return text, html, nil
			}
			if err != nil {
				return text, html, err
			}
			t, h, err := bodies(part.Header, part, depth+1)
			if text == "" {
				text = t
			}
			if html == "" {
				html = h
			}
			if err != nil {
				return text, html, err
			}
		}
	}
	if disposition, _, _ := mime.ParseMediaType(h.Get("Content-Disposition")); disposition == "attachment" {
		return "", "", nil
	}
	if mediaType != "text/plain" && mediaType != "text/html" {
		return "", "", nil
	}
	b, err := io.ReadAll(transferDecoder(h.Get("Content-Transfer-Encoding"), body))
	if mediaType == "text/html" {
		return "", string(b), err
	}
	return string(b), "", err
}

func transferDecoder(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r) // it skips line breaks itself
	default:
		return r
	}
}
