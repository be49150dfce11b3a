// Package httpapi is Intake's HTTP surface on echo: routes.go lists every
// route, errors.go maps every domain error to a status and a problem+json
// body, and each handler is made by a function that takes exactly the
// dependencies it uses. It never imports River, mail or the worker.
package httpapi
