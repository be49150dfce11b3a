package httpapi_test

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intake/intake/internal/testkit"
)

// FuzzRawRequest sends arbitrary request lines, headers and bodies over a
// socket to the real server (database included). Whatever arrives, the
// answer must not be a 5xx: no byte from a client may make the server fail
// (a panic is recovered into a 500, so it fails this too). `go test` runs
// the seeds; `go test -fuzz FuzzRawRequest ./internal/httpapi` explores.
func FuzzRawRequest(f *testing.F) {
	api := testkit.StartAPI(f, nil)
	slug := api.CreatePosting(f, "go-engineer")
	addr := strings.TrimPrefix(api.URL, "http://")
	json := "Content-Type: application/json\r\nIdempotency-Key: fuzz-1\r\n"
	form := "Content-Type: application/x-www-form-urlencoded\r\nCookie: intake_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
	for _, seed := range []struct{ method, target, headers, body string }{
		{"GET", "/", "", ""},
		{"HEAD", "/jobs/" + slug, "", ""},
		{"GET", "/api/v1/jobs/%00", "", ""},
		{"GET", "/jobs/%ff%fe", "", ""},
		{"GET", "/static/%ff", "", ""},
		{"GET", "/static/", "", ""},
		{"GET", "/static/../../etc/passwd", "", ""},
		{"GET", "/applications/00000000-0000-0000-0000-000000000000?token=%00", "", ""},
		{"GET", "/api/v1/applications/%00/status?token=x", "", ""},
		{"GET", "/api/v1/jobs", "X-Request-Id: \x00\xff\r\n", ""},
		{"GET", "/api/v1/jobs", "X-Forwarded-For: \xff, ::1\r\n", ""},
		{"POST", "/api/v1/jobs/" + slug + "/applications", json, `{"full_name":"Ada","email":"ada@example.com"}`},
		{"POST", "/api/v1/jobs/" + slug + "/applications", json, `{"full_name":"A\u0000","email":"a@x.io","email":"b@x.io"}`},
		{"POST", "/api/v1/jobs/" + slug + "/applications", json, "{\"full_name\":\"\xff\",\"email\":\"a@x.io\"}"},
		{"POST", "/api/v1/jobs/" + slug + "/applications", "Content-Type: application/json; charset=latin1\r\nIdempotency-Key: \x7f\r\n", `{}`},
		{"POST", "/api/v1/jobs/%00/applications", json, `{"full_name":"Ada","email":"ada@example.com"}`},
		{"POST", "/jobs/" + slug + "/apply", form, "full_name=%00&email=%ff&csrf_token=AAAA&idempotency_key=%00"},
		{"POST", "/jobs/%00/apply", form, "full_name=Ada"},
		{"POST", "/jobs/" + slug + "/apply", "Content-Type: multipart/form-data; boundary=x\r\n", "--x\r\nContent-Disposition: form-data; name=\"full_name\"\r\n\r\n\xff\r\n--x--"},
		{"POST", "/api/v1/jobs/" + slug + "/applications", "Content-Type: multipart/form-data; boundary=x\r\nIdempotency-Key: fuzz-2\r\n",
			"--x\r\nContent-Disposition: form-data; name=\"application\"\r\n\r\n{\"full_name\":\"Ada\",\"email\":\"ada@example.com\"}\r\n" +
				"--x\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n%%EOF\r\n--x--"},
		{"POST", "/api/v1/jobs/" + slug + "/applications", "Content-Type: multipart/form-data; boundary=x\r\nIdempotency-Key: fuzz-3\r\n",
			"--x\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.docx\"\r\n\r\nPK\x03\x04\r\n--x--"},
		{"DELETE", "/api/v1/jobs", "", ""},
		{"OPTIONS", "*", "", ""},
		{"GET", "http://evil.example/", "", ""},
		{"PRI", "*", "", ""},
	} {
		f.Add(seed.method, seed.target, seed.headers, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// A Content-Length longer than the body leaves the server waiting
		// for the rest: that is no answer, not a failure.
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		var req strings.Builder
		req.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n" + headers)
		if !strings.Contains(strings.ToLower(headers), "content-length") {
			req.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
		}
		req.WriteString("Connection: close\r\n\r\n")
		req.Write(body)
		if _, err := conn.Write([]byte(req.String())); err != nil {
			return // the server may close on a malformed head before it is all sent
		}
		// The write side stays open: a client that hangs up cancels its
		// request, and the 503 then written to nobody is no failure.
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return // no answer at all: the server dropped a request it could not parse
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%q %q with headers %q and body %q: %d", method, target, headers, body, resp.StatusCode)
		}
	})
}
