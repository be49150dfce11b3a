package cvfile

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The content types of the accepted kinds, as stored and as served.
const (
	PDF  = "application/pdf"
	DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	ODT  = "application/vnd.oasis.opendocument.text"
	Text = "text/plain; charset=utf-8"
)

var (
	// ErrEmpty is a file with no bytes.
	ErrEmpty = errors.New("the file is empty")
	// ErrUnsupported is content of none of the accepted kinds that does
	// not claim to be one either.
	ErrUnsupported = errors.New("the file is not a PDF, DOCX, ODT or plain text file")
)

// MismatchError is content that claims, by its name or its declared type,
// to be one accepted kind but is another, or none.
type MismatchError struct {
	// Claimed is the kind the name or declared type says.
	Claimed string
}

func (e *MismatchError) Error() string {
	return "the file says it is " + KindName(e.Claimed) + " but its content is not"
}

// KindName is the word for a content type that people use: "a PDF".
func KindName(contentType string) string {
	switch contentType {
	case PDF:
		return "a PDF"
	case DOCX:
		return "a Word (DOCX) document"
	case ODT:
		return "an OpenDocument (ODT) text"
	case Text:
		return "a plain text file"
	default:
		return "another kind of file"
	}
}

// Detect says which accepted kind content is, by its bytes alone, or
// returns ErrEmpty or ErrUnsupported.
func Detect(content []byte) (string, error) {
	switch {
	case len(content) == 0:
		return "", ErrEmpty
	case isPDF(content):
		return PDF, nil
	case bytes.HasPrefix(content, []byte("PK\x03\x04")):
		return zipKind(content)
	case isText(content):
		return Text, nil
	default:
		return "", ErrUnsupported
	}
}

// Check recognises content and compares it with what filename's extension
// and the declared content type claim. It returns the recognised content
// type, or ErrEmpty, a *MismatchError when a claim names an accepted kind
// the content is not, or ErrUnsupported.
func Check(content []byte, filename, declared string) (string, error) {
	found, err := Detect(content)
	if errors.Is(err, ErrEmpty) {
		return "", err
	}
	for _, claimed := range []string{byExtension(filename), byDeclared(declared)} {
		if claimed != "" && claimed != found {
			return "", &MismatchError{Claimed: claimed}
		}
	}
	return found, err
}

// isPDF: the %PDF-n.n header at the start and an %%EOF marker in the last
// kilobyte, where writers put it (followed at most by line ends or an
// incremental update's trailer).
func isPDF(b []byte) bool {
	if len(b) < 8 || !bytes.HasPrefix(b, []byte("%PDF-")) ||
		!isDigit(b[5]) || b[6] != '.' || !isDigit(b[7]) {
		return false
	}
	tail := b[max(0, len(b)-1024):]
	return bytes.Contains(tail, []byte("%%EOF"))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// maxEntryRead bounds how much of one zip entry is decompressed to look at
// it: a small header file, never a zip bomb's worth.
const maxEntryRead = 64 << 10

// zipKind tells a DOCX from an ODT from any other zip by the entries the
// formats require.
func zipKind(b []byte) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil || len(zr.File) == 0 {
		return "", ErrUnsupported
	}
	// ODF: the first entry is "mimetype", stored uncompressed, holding the
	// media type and nothing else.
	if first := zr.File[0]; first.Name == "mimetype" {
		if first.Method == zip.Store {
			if v, ok := readEntry(first); ok && string(v) == ODT {
				return ODT, nil
			}
		}
		return "", ErrUnsupported
	}
	var types, document *zip.File
	for _, f := range zr.File {
		switch f.Name {
		case "[Content_Types].xml":
			types = f
		case "word/document.xml":
			document = f
		}
	}
	if types == nil || document == nil {
		return "", ErrUnsupported
	}
	// A macro-enabled document (.docm) has the same entries but declares
	// another main part; only the plain document is taken.
	v, ok := readEntry(types)
	if !ok || !bytes.Contains(v, []byte("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")) {
		return "", ErrUnsupported
	}
	return DOCX, nil
}

func readEntry(f *zip.File) ([]byte, bool) {
	rc, err := f.Open()
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	v, err := io.ReadAll(io.LimitReader(rc, maxEntryRead))
	return v, err == nil
}

// isText: valid UTF-8 with no control characters but tab, CR and LF.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\t' && r != '\r' && r != '\n' {
			return false
		}
	}
	return true
}

func byExtension(filename string) string {
	i := strings.LastIndexAny(filename, "./\\")
	if i < 0 || filename[i] != '.' {
		return ""
	}
	switch strings.ToLower(filename[i:]) {
	case ".pdf":
		return PDF
	case ".docx":
		return DOCX
	case ".odt":
		return ODT
	case ".txt":
		return Text
	default:
		return ""
	}
}

func byDeclared(declared string) string {
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil {
		return ""
	}
	switch mt {
	case PDF, DOCX, ODT:
		return mt
	case "text/plain":
		return Text
	default:
		return ""
	}
}

// MaxNameBytes is the longest file name kept.
const MaxNameBytes = 255

// SafeName is the name to keep for a file sent as name, whose content was
// recognised as contentType: its last path element (a browser on Windows
// may send C:\Users\...\cv.pdf), without control characters, format
// characters (Unicode Cf: a right-to-left override would make
// "cv\u202efdp.exe" show as "cvexe.pdf") or invalid UTF-8, trimmed, and
// ending in the extension of contentType: a name with another extension
// has it replaced ("cv.html" of plain text becomes "cv.txt"), one without
// gets it appended, so a download never opens as something the content was
// not recognised as. It is at most MaxNameBytes bytes, cut before the
// extension. An empty result becomes "cv" with the extension.
func SafeName(name, contentType string) string {
	name = strings.ToValidUTF8(name, "")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	ext := extensionOf(contentType)
	if name == "" || name == "." || name == ".." {
		return "cv" + ext
	}
	stem := name
	if strings.EqualFold(path.Ext(name), ext) {
		stem, ext = name[:len(name)-len(ext)], name[len(name)-len(ext):]
	} else {
		stem = strings.TrimSuffix(name, path.Ext(name))
	}
	if stem = strings.TrimSpace(stem); stem == "" {
		stem = "cv"
	}
	if len(stem)+len(ext) > MaxNameBytes {
		stem = stem[:MaxNameBytes-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
	}
	return stem + ext
}

func extensionOf(contentType string) string {
	switch contentType {
	case PDF:
		return ".pdf"
	case DOCX:
		return ".docx"
	case ODT:
		return ".odt"
	default:
		return ".txt"
	}
}

// Accept is the accept attribute of the form's file input: the kinds by
// extension and by type.
const Accept = ".pdf,.docx,.odt,.txt,application/pdf," + DOCX + "," + ODT + ",text/plain"
