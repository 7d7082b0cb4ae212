package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/usersync/usersync/models"
)

// healthz answers while the process runs.
func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only while the database answers and the service's
// role may still read and write its tables (a revoked grant would otherwise
// fail every webhook behind a green probe).
func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := models.CheckAccess(ctx, s.DB); err != nil {
		return fail(http.StatusServiceUnavailable, "database unavailable", err)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
