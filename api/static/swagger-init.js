// Starts Swagger UI on /docs. A file, not an inline script, so the page runs under a
// Content-Security-Policy with script-src 'self' (api/_docs.py). The OpenAPI address comes
// from the page's data-openapi-url, so this file needs no templating.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    showExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
})();
