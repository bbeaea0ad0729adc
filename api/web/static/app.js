// Progressive enhancement: every page works without this file. A module, not an inline
// script, so the Content-Security-Policy can forbid inline script altogether.
import { initAll } from "./govuk/govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();
