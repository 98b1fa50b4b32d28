package bridge

import "github.com/gin-gonic/gin"

// sessionCookie holds the token for the status page's browser session.
const sessionCookie = "sidecar_session"

// statusRoutes adds the status page.
func (a *App) statusRoutes(r *gin.Engine) {}
