"use strict";
// The schema needs a reader token: the one this tab signed in to the worklist with, or one asked for here.
let token = sessionStorage.getItem("dicomnode.token") || "";
if (!token) {
  token = (window.prompt("Reader token for the dicomnode API") || "").trim();
  if (token) sessionStorage.setItem("dicomnode.token", token);
}
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  requestInterceptor: (request) => { request.headers.Authorization = "Bearer " + token; return request; },
});
