package cvfile_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/cvfile"
	"github.com/intake/intake/internal/testkit"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	pdf := testkit.SamplePDF()
	docx := testkit.SampleDOCX()
	odt := testkit.SampleODT()
	text := []byte("Ada Lovelace\r\nAnalyst\tEngine\n– notes in UTF-8 ✓\n")
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")
	exe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00"), make([]byte, 64)...)
	plainZip := zipOf(t, zip.Deflate, map[string]string{"notes.txt": "hello"})
	docxNoDocument := zipOf(t, zip.Deflate, map[string]string{"[Content_Types].xml": docxTypes})
	docm := zipOf(t, zip.Deflate, map[string]string{
		"[Content_Types].xml": strings.ReplaceAll(docxTypes, "wordprocessingml.document.main+xml", "ms-word.document.macroEnabled.main+xml"),
		"word/document.xml":   "<w:document/>",
	})
	odtCompressedMimetype := zipOf(t, zip.Deflate, map[string]string{"mimetype": cvfile.ODT})
	odsNotOdt := zipOf(t, zip.Store, map[string]string{"mimetype": "application/vnd.oasis.opendocument.spreadsheet"})

	tests := []struct {
		name     string
		content  []byte
		filename string
		declared string
		want     string
		wantErr  string // "empty", "unsupported" or "mismatch"
	}{
		{name: "pdf", content: pdf, filename: "cv.pdf", declared: "application/pdf", want: cvfile.PDF},
		{name: "pdf with no name and a generic type", content: pdf, filename: "cv", declared: "application/octet-stream", want: cvfile.PDF},
		{name: "docx", content: docx, filename: "CV.DOCX", declared: cvfile.DOCX, want: cvfile.DOCX},
		{name: "docx declared as a zip", content: docx, filename: "cv.docx", declared: "application/zip", want: cvfile.DOCX},
		{name: "odt", content: odt, filename: "cv.odt", declared: cvfile.ODT, want: cvfile.ODT},
		{name: "text", content: text, filename: "cv.txt", declared: "text/plain; charset=utf-8", want: cvfile.Text},
		{name: "markdown is text", content: []byte("# CV\n"), filename: "cv.md", declared: "text/markdown", want: cvfile.Text},

		{name: "empty", content: nil, filename: "cv.pdf", declared: "application/pdf", wantErr: "empty"},
		{name: "png", content: png, filename: "photo.png", declared: "image/png", wantErr: "unsupported"},
		{name: "zip", content: plainZip, filename: "cv.zip", declared: "application/zip", wantErr: "unsupported"},
		{name: "exe", content: exe, filename: "setup.exe", declared: "application/octet-stream", wantErr: "unsupported"},

		{name: "png renamed pdf", content: png, filename: "cv.pdf", declared: "application/pdf", wantErr: "mismatch"},
		{name: "exe renamed txt", content: exe, filename: "cv.txt", declared: "text/plain", wantErr: "mismatch"},
		{name: "exe renamed docx", content: exe, filename: "cv.docx", wantErr: "mismatch"},
		{name: "zip renamed docx", content: plainZip, filename: "cv.docx", declared: cvfile.DOCX, wantErr: "mismatch"},
		{name: "zip without word/document.xml", content: docxNoDocument, filename: "cv.docx", declared: cvfile.DOCX, wantErr: "mismatch"},
		{name: "macro-enabled document as docx", content: docm, filename: "cv.docx", wantErr: "mismatch"},
		{name: "odt with a compressed mimetype", content: odtCompressedMimetype, filename: "cv.odt", wantErr: "mismatch"},
		{name: "spreadsheet as odt", content: odsNotOdt, filename: "cv.odt", wantErr: "mismatch"},
		{name: "text declared pdf", content: text, filename: "cv", declared: "application/pdf", wantErr: "mismatch"},
		{name: "pdf named docx", content: pdf, filename: "cv.docx", wantErr: "mismatch"},
		{name: "pdf without %%EOF", content: pdf[:len(pdf)-7], filename: "cv.pdf", wantErr: "mismatch"},
		{name: "text with NUL", content: []byte("Ada\x00Lovelace"), filename: "cv.txt", wantErr: "mismatch"},
		{name: "text with an escape", content: []byte("Ada \x1b[31mred"), filename: "cv.txt", wantErr: "mismatch"},
		{name: "text with a C1 control", content: []byte("Ada \u0085 Lovelace"), filename: "cv.txt", wantErr: "mismatch"},
		{name: "latin-1 text", content: []byte("Andr\xe9"), filename: "cv.txt", wantErr: "mismatch"},
		{name: "text with NUL and no claim", content: []byte("Ada\x00"), filename: "cv", wantErr: "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cvfile.Check(tt.content, tt.filename, tt.declared)
			var mismatch *cvfile.MismatchError
			switch tt.wantErr {
			case "":
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
			case "empty":
				require.ErrorIs(t, err, cvfile.ErrEmpty)
			case "unsupported":
				require.ErrorIs(t, err, cvfile.ErrUnsupported)
			case "mismatch":
				require.ErrorAs(t, err, &mismatch)
			}
			if tt.wantErr != "" {
				require.Empty(t, got)
			}
		})
	}
}

func TestSafeName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) + ".pdf" // 404 bytes
	tests := []struct{ name, in, contentType, want string }{
		{"plain", "cv.pdf", cvfile.PDF, "cv.pdf"},
		{"unix path", "../../etc/passwd", cvfile.Text, "passwd.txt"},
		{"windows path", `C:\Users\ada\Documents\Lebenslauf Ada.docx`, cvfile.DOCX, "Lebenslauf Ada.docx"},
		{"control characters", "cv\r\n\x00\x1b.pdf", cvfile.PDF, "cv.pdf"},
		{"invalid utf-8", "cv\xff\xfe.pdf", cvfile.PDF, "cv.pdf"},
		{"spaces", "  cv.txt  ", cvfile.Text, "cv.txt"},
		{"empty", "", cvfile.ODT, "cv.odt"},
		{"dot dot", "..", cvfile.PDF, "cv.pdf"},
		{"trailing slash", "dir/", cvfile.Text, "cv.txt"},
		{"quotes kept for the header encoder", `my "best" cv.pdf`, cvfile.PDF, `my "best" cv.pdf`},
		{"extension's case kept", "CV.PDF", cvfile.PDF, "CV.PDF"},
		{"active extension replaced", "cv.html", cvfile.Text, "cv.txt"},
		{"executable extension replaced", "cv.bat", cvfile.Text, "cv.txt"},
		{"other kind's extension replaced", "cv.txt", cvfile.PDF, "cv.pdf"},
		{"no extension appended", "Lebenslauf", cvfile.ODT, "Lebenslauf.odt"},
		{"only an extension", ".hta", cvfile.Text, "cv.txt"},
		{"right-to-left override dropped", "cv\u202efdp.hta", cvfile.Text, "cvfdp.txt"},
		{"format characters dropped", "c\u200bv\ufeff\u2066.docx", cvfile.DOCX, "cv.docx"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, cvfile.SafeName(tt.in, tt.contentType), tt.name)
	}
	got := cvfile.SafeName(long, cvfile.PDF)
	require.LessOrEqual(t, len(got), cvfile.MaxNameBytes)
	require.True(t, strings.HasSuffix(got, ".pdf"), got)
	require.True(t, strings.HasPrefix(got, "éé"), got)
	require.NotContains(t, got, "\uFFFD")
}

// FuzzCheck: whatever the bytes and the claims, Check answers exactly one
// accepted kind or one of its errors, never panics, and an answer of Text
// is text by the rules.
func FuzzCheck(f *testing.F) {
	f.Add(testkit.SamplePDF(), "cv.pdf", "application/pdf")
	f.Add(testkit.SampleDOCX(), "cv.docx", cvfile.DOCX)
	f.Add(testkit.SampleODT(), "cv.odt", cvfile.ODT)
	f.Add([]byte("plain text\n"), "cv.txt", "text/plain")
	f.Add([]byte("PK\x03\x04garbage"), "cv.docx", "")
	f.Fuzz(func(t *testing.T, content []byte, filename, declared string) {
		got, err := cvfile.Check(content, filename, declared)
		var mismatch *cvfile.MismatchError
		switch {
		case err == nil:
			require.Contains(t, []string{cvfile.PDF, cvfile.DOCX, cvfile.ODT, cvfile.Text}, got)
		case errors.Is(err, cvfile.ErrEmpty), errors.Is(err, cvfile.ErrUnsupported), errors.As(err, &mismatch):
			require.Empty(t, got)
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if got == cvfile.Text {
			require.NotContains(t, string(content), "\x00")
		}
		name := cvfile.SafeName(filename, cvfile.PDF)
		require.NotEmpty(t, name)
		require.LessOrEqual(t, len(name), cvfile.MaxNameBytes)
		require.NotContains(t, name, "/")
		require.NotContains(t, name, "\n")
		require.True(t, strings.HasSuffix(strings.ToLower(name), ".pdf"), name)
	})
}

const docxTypes = `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`

func zipOf(t *testing.T, method uint16, entries map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		require.NoError(t, err)
		_, err = w.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}
