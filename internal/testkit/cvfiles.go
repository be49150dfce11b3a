package testkit

import (
	"archive/zip"
	"bytes"
)

// SamplePDF is a small valid PDF: one empty page.
func SamplePDF() []byte {
	return []byte("%PDF-1.4\n" +
		"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
		"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n" +
		"trailer << /Root 1 0 R >>\n" +
		"%%EOF\n")
}

// SampleDOCX is a minimal Word document: the content types and the main
// document part.
func SampleDOCX() []byte {
	return zipEntries(
		"[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?>`+
			`<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">`+
			`<Default Extension="xml" ContentType="application/xml"/>`+
			`<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>`+
			`</Types>`,
		"word/document.xml", `<?xml version="1.0" encoding="UTF-8"?>`+
			`<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>CV</w:t></w:r></w:p></w:body></w:document>`,
	)
}

// SampleODT is a minimal OpenDocument text: the stored mimetype entry
// first, then its content.
func SampleODT() []byte {
	return zipEntries(
		"mimetype", "application/vnd.oasis.opendocument.text",
		"content.xml", `<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"/>`,
	)
}

// zipEntries zips name, body pairs in order; "mimetype" is stored
// uncompressed, as ODF requires.
func zipEntries(pairs ...string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(pairs); i += 2 {
		method := zip.Deflate
		if pairs[i] == "mimetype" {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: pairs[i], Method: method})
		if err == nil {
			_, err = w.Write([]byte(pairs[i+1]))
		}
		if err != nil {
			panic(err) // writing to a bytes.Buffer does not fail
		}
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
