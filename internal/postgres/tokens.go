package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// CreateToken mints a token for spec on behalf of c (audited as
// tokens.create) and returns it with the token itself, which is shown this
// once and never stored. c cannot mint above its own role; intakectl, which
// has database access (the root of trust), passes an empty c.Role and is
// not limited.
func (s *Store) CreateToken(ctx context.Context, c access.Caller, spec access.NewTokenSpec) (access.Token, string, error) {
	if c.Role != "" && !c.Role.Allows(spec.Role) {
		return access.Token{}, "", errors.Join(access.ErrRoleTooHigh, s.Audit(ctx, access.Entry{
			Actor: c.Actor, Action: "tokens.create", TargetType: "token", Outcome: access.OutcomeDenied, RequestID: c.RequestID}))
	}
	secret := access.NewToken()
	var tok access.Token
	err := s.audited(ctx, c, "tokens.create", "token", func(q *dbsqlc.Queries) (string, error) {
		row, err := q.TokenInsert(ctx, dbsqlc.TokenInsertParams{
			ID: uuid.New(), Name: spec.Name, Role: string(spec.Role), TokenHash: access.HashToken(secret),
			CreatedBy: c.Actor, ExpiresAt: spec.ExpiresAt,
		})
		if err != nil {
			return "", err
		}
		tok = toToken(row)
		return tok.ID, nil
	})
	if err != nil {
		return access.Token{}, "", err
	}
	return tok, secret, nil
}

// Authenticate returns the valid (known, unrevoked, unexpired) token whose
// text is secret, or access.ErrTokenInvalid; a malformed token is refused
// before any query. It records the use at most once a minute per token.
func (s *Store) Authenticate(ctx context.Context, secret string) (access.Token, error) {
	if !access.CheckTokenFormat(secret) {
		return access.Token{}, access.ErrTokenInvalid
	}
	row, err := s.q.TokenGetValidByHash(ctx, access.HashToken(secret))
	if errors.Is(err, pgx.ErrNoRows) {
		return access.Token{}, access.ErrTokenInvalid
	}
	if err != nil {
		return access.Token{}, classify(err)
	}
	if err := s.q.TokenTouch(ctx, row.ID); err != nil {
		return access.Token{}, classify(err)
	}
	return toToken(row), nil
}

// Tokens lists every token, revoked and expired ones included, oldest
// first; the list is audited (tokens.list).
func (s *Store) Tokens(ctx context.Context, c access.Caller) ([]access.Token, error) {
	var out []access.Token
	err := s.audited(ctx, c, "tokens.list", "token", func(q *dbsqlc.Queries) (string, error) {
		rows, err := q.TokenList(ctx)
		out = make([]access.Token, len(rows))
		for i, r := range rows {
			out[i] = toToken(r)
		}
		return "", err
	})
	return out, err
}

// RevokeToken revokes the token with id (audited as tokens.revoke); a token
// revoked before keeps its first revocation time. From the commit on, no
// request authenticates with it and no audited change commits under it.
func (s *Store) RevokeToken(ctx context.Context, c access.Caller, id string) (access.Token, error) {
	tokenID, err := uuid.Parse(id)
	if err != nil {
		return access.Token{}, application.ErrNotFound
	}
	var tok access.Token
	err = s.audited(ctx, c, "tokens.revoke", "token", func(q *dbsqlc.Queries) (string, error) {
		row, err := q.TokenRevoke(ctx, tokenID)
		if err != nil {
			return id, classify(err)
		}
		tok = toToken(row)
		return id, nil
	})
	return tok, err
}

func toToken(r dbsqlc.AdminToken) access.Token {
	return access.Token{
		ID: r.ID.String(), Name: r.Name, Role: access.Role(r.Role), CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt,
		ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt,
	}
}
