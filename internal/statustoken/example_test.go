package statustoken_test

import (
	"fmt"

	"github.com/intake/intake/internal/statustoken"
)

func Example() {
	// In the binaries the secret comes from INTAKE_STATUS_SECRET.
	secret, err := statustoken.ParseSecret("hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		panic(err)
	}
	keys, err := statustoken.NewKeys(secret, nil)
	if err != nil {
		panic(err)
	}
	id := "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e"
	token := keys.Derive(id)
	fmt.Println(token)
	fmt.Println(keys.Verify(id, token), keys.Verify(id, "not-the-token"))
	// Output:
	// -73MOPPxnBvils0j-1gCew
	// true false
}
